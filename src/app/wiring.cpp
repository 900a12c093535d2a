#include "app/wiring.hpp"

#include "agents/bridge.hpp"
#include "agents/echo_agent.hpp"
#include "agents/llm_agent.hpp"
#include "agents/process_agent.hpp"
#include "analytics/analytics_component.hpp"
#include "app/components.hpp"
#include "bus/redis/redis_bus.hpp"
#include "core/ids.hpp"
#include "delivery/delivery.hpp"
#include "gateway/chat_handlers.hpp"
#include "gateway/frame.hpp"
#include "gateway/message_router.hpp"
#include "gateway/ws_gateway.hpp"
#include "health/probes.hpp"
#include "health/self_check.hpp"
#include "mcp/mcp_server.hpp"
#include "monitoring/alert_monitor.hpp"
#include "store/postgres/postgres_store.hpp"
#include "store/sqlite/sqlite_store.hpp"

#include <unistd.h>

#include <cstdlib>

namespace agentwire::app {

using Deps = std::vector<std::string>;

namespace {
// Recorded with each run: at start a node ends the runs of its own id that a crash left in flight.
// Nodes that share a PostgreSQL need distinct ids: <host name>:<port> unless node.id says otherwise
// (port 0, chosen at run time, gets a random suffix: such a node's runs are recovered by the lease).
std::string nodeId(const core::Config& cfg) {
  if (!cfg.node.id.empty()) return cfg.node.id;
  char host[256] = {};
  std::string name = gethostname(host, sizeof host - 1) == 0 && host[0] != '\0' ? host : "local";
  if (cfg.server.port != 0) return name + ":" + std::to_string(cfg.server.port);
  return name + ":0-" + core::newId("n").substr(2, 8);
}

store::Store& addStore(lifecycle::Registry& registry, const core::Config& cfg) {
  if (cfg.store.backend == "postgres") {
    auto pg = std::make_unique<store::PostgresStore>(cfg.store.url, cfg.store.pool_size, Deps{"config"});
    pg->setIdleTransactionTimeout(cfg.node.lease_ms / 2);
    return registry.add(std::move(pg));
  }
  auto sqlite = std::make_unique<store::SqliteStore>(cfg.store.path, Deps{"config"});
  sqlite->setSyncFull(cfg.store.sync == "full");
  sqlite->setCacheMb(cfg.store.cache_mb);
  return registry.add(std::move(sqlite));
}
// The built-in echo agent, the agents.llm_* and agents.process_command ones (named llm and
// process, as before named agents existed), and every [[agents.defs]].
void addAgents(agents::AgentWebSocketBridge& bridge, const core::Config& cfg) {
  bridge.addAgent(std::make_unique<agents::EchoAgent>(),
                  agents::AgentInfo{
                      "echo", "Counts your words and echoes your message (no model).", "", "", {"word_count"}, false});
  if (!cfg.agents.llm_base_url.empty()) {
    agents::LlmAgent::Options o;
    o.base_url = cfg.agents.llm_base_url;
    o.api_key = cfg.agents.llm_api_key;
    o.model = cfg.agents.llm_model;
    o.idle_timeout_ms = cfg.agents.llm_idle_timeout_ms;
    bridge.addAgent(std::make_unique<agents::LlmAgent>(o),
                    agents::AgentInfo{"llm", "The model at agents.llm_base_url.", o.provider, o.model, {}, true});
  }
  if (!cfg.agents.process_command.empty()) {
    bridge.addAgent(std::make_unique<agents::ProcessAgent>("process", cfg.agents.process_command),
                    agents::AgentInfo{"process", "The program at agents.process_command.", "", "", {}, true});
  }
  for (const auto& d : cfg.agents.defs) {
    if (d.kind == "echo") {
      bridge.addAgent(std::make_unique<agents::EchoAgent>(d.name),
                      agents::AgentInfo{"echo", d.description, "", "", {"word_count"}, false});
    } else if (d.kind == "process") {
      bridge.addAgent(std::make_unique<agents::ProcessAgent>(d.name, d.command, d.tools),
                      agents::AgentInfo{"process", d.description, "", "", d.tools, true});
    } else {
      agents::LlmAgent::Options o;
      o.name = d.name;
      o.provider = d.provider;
      o.base_url = d.base_url;
      o.api_key = d.api_key_env.empty() ? d.api_key : std::string(std::getenv(d.api_key_env.c_str()));
      o.model = !d.model.empty() ? d.model : d.provider == "anthropic" ? "claude-sonnet-4-5" : "gpt-4o-mini";
      o.system_prompt = d.system_prompt;
      o.max_steps = d.max_steps;
      o.temperature = d.temperature;
      o.max_tokens = d.max_tokens;
      o.idle_timeout_ms = d.idle_timeout_ms;
      o.tools = d.tools;
      agents::AgentInfo info{"llm", d.description, o.provider, o.model, d.tools, true};
      bridge.addAgent(std::make_unique<agents::LlmAgent>(std::move(o)), std::move(info));
    }
  }
}

}  // namespace

Components buildDefaultGraph(lifecycle::Registry& registry, const core::Config& cfg) {
  registry.add(std::make_unique<ConfigComponent>(cfg));
  // Built first so every component can record into it; it starts at its place in the graph.
  auto analytics_owned = std::make_unique<analytics::AnalyticsComponent>(cfg, Deps{"message_handlers"});
  analytics::Recorder& recorder = analytics_owned->recorder();
  auto& store = addStore(registry, cfg);
  const std::string node_id = nodeId(cfg);
  Deps delivery_deps{"store"};
  bus::RedisBus* redis = nullptr;
  if (cfg.bus.backend == "redis") {
    auto options = bus::RedisBus::parseUrl(cfg.bus.url);
    options.node_id = node_id;
    options.required = cfg.bus.required;
    redis = &registry.add(std::make_unique<bus::RedisBus>(options, Deps{"config"}));
    delivery_deps.push_back("bus");
  }
  auto& delivery = registry.add(std::make_unique<delivery::Delivery>(store, delivery_deps));
  if (redis != nullptr) {
    delivery.setBus(*redis, std::chrono::milliseconds(cfg.bus.head_check_ms),
                    std::chrono::milliseconds(cfg.bus.head_check_down_ms));
    redis->setResync([&delivery] { delivery.checkHeads(); });
  }
  // Half the send-queue bound per replay step: a resume never trips the slow-consumer cut-off.
  delivery.setUncountedUser(core::systemUserFor(node_id));  // the self-check stays out of the metrics
  delivery.setRecorder(recorder);
  delivery.setRetention({cfg.store.retention_events, int64_t{cfg.store.retention_age_s} * 1000});
  delivery.setReplayBudget(
      {std::max<std::size_t>(1, cfg.ws.max_queue_messages / 2), std::max<std::size_t>(1, cfg.ws.max_queue_bytes / 2)});
  // MCP tool servers: their tools need a person's approval as configured ("server.*": all of them).
  std::set<std::string> approval_required(cfg.agents.approval_required_tools.begin(),
                                          cfg.agents.approval_required_tools.end());
  Deps bridge_deps{"delivery", "message_handlers", "analytics"};
  for (const auto& m : cfg.agents.mcp_servers) {
    for (const auto& t : m.approval_required) approval_required.insert(m.name + "." + t);
    bridge_deps.push_back("mcp_" + m.name);
  }
  // The bridge is built before the router (the handlers hold a reference to it) but starts after.
  auto bridge_owned = std::make_unique<agents::AgentWebSocketBridge>(
      delivery, store,
      agents::AgentWebSocketBridge::Options{
          node_id, cfg.agents.workers, static_cast<std::size_t>(cfg.agents.max_queue), cfg.agents.default_agent,
          cfg.agents.max_running_per_user, cfg.agents.max_queued_per_user, cfg.agents.run_timeout_ms,
          cfg.store.backend == "postgres" ? cfg.node.lease_ms : 0, cfg.node.lease_renew_ms, cfg.agents.chunk_window_ms,
          cfg.agents.chunk_max_bytes, approval_required, cfg.agents.approval_timeout_ms, cfg.agents.max_parked_per_user,
          cfg.agents.pace_max_ms, cfg.agents.user_daily_token_budget, int64_t{cfg.store.retention_age_s} * 1000},
      bridge_deps);
  auto* bridge_ptr = bridge_owned.get();
  auto& router = registry.add(std::make_unique<gateway::MessageRouter>(
      registry.trace(),
      [&store, &delivery, bridge_ptr, &recorder, limits = cfg.limits](gateway::MessageRouter& r) {
        gateway::registerChatHandlers(r, gateway::ChatServices{store, delivery, *bridge_ptr, recorder, limits});
      },
      Deps{"delivery"}));
  auto& analytics = registry.add(std::move(analytics_owned));
  // Started before the bridge (its dependencies), so that their tools are there for the first run.
  std::vector<mcp::McpServer*> mcp_servers;
  for (const auto& m : cfg.agents.mcp_servers) {
    mcp::McpServer::Options o;
    o.name = m.name;
    o.process = mcp::ProcessSpec{m.command, m.args, m.env, m.cwd};
    o.http.url = m.url;
    o.http.headers = m.headers;
    // A POST's answer may be a long call's SSE stream: the call's own timeout ends it first.
    o.http.max_transfer = std::chrono::milliseconds(m.call_timeout_ms) + std::chrono::seconds(5);
    o.allow = std::set<std::string>(m.tools.begin(), m.tools.end());
    o.call_timeout = std::chrono::milliseconds(m.call_timeout_ms);
    mcp_servers.push_back(
        &registry.add(std::make_unique<mcp::McpServer>(std::move(o), bridge_ptr->tools(), Deps{"config"})));
  }
  auto& bridge = registry.add(std::move(bridge_owned));
  bridge.setRecorder(recorder);
  if (redis != nullptr) bridge.setBus(*redis);
  agents::addBuiltinTools(bridge.tools());
  addAgents(bridge, cfg);
  auto& self_check = registry.add(std::make_unique<health::SelfCheck>(
      router, delivery, store, registry.trace(), std::chrono::milliseconds(cfg.selfcheck.timeout_ms),
      cfg.selfcheck.enabled, Deps{"agent_bridge"}));
  self_check.setUser(core::systemUserFor(node_id));
  auto& ws_gateway = registry.add(std::make_unique<gateway::WsGateway>(cfg, router, delivery, Deps{"self_check"}));
  ws_gateway.setRecorder(recorder);
  gateway::setErrorObserver([&recorder, &ws_gateway](const delivery::Connection& conn, const std::string& code) {
    if (core::isSystemUser(conn.userId())) return;
    ws_gateway.countError(code);
    if (!recorder.enabled()) return;
    analytics::Record r;
    r.kind = "client_error";
    r.user_id = conn.userId();
    r.connection_id = conn.id();
    r.reason = code;
    recorder.record(std::move(r));
  });
  auto& alerts = registry.add(std::make_unique<monitoring::AlertMonitor>(
      defaultAlertRules(registry, router, delivery, bridge, ws_gateway, analytics, redis), std::chrono::seconds(1),
      Deps{"config"}));
  const auto& stats = delivery.stats();
  alerts.setTrends(std::make_unique<monitoring::Trends>(
      monitoring::Trends::Readings{[&stats] { return static_cast<double>(stats.appended.load()); },
                                   [&stats] { return stats.latency.snapshot(); },
                                   [&delivery] { return static_cast<int64_t>(delivery.connectionCount()); },
                                   [&bridge] { return static_cast<int64_t>(bridge.activeRuns()); }},
      std::chrono::milliseconds(cfg.status.trend_step_ms), static_cast<std::size_t>(cfg.status.trend_points)));
  return Components{store, delivery, router, bridge, self_check, ws_gateway, analytics, alerts, redis, mcp_servers};
}

std::vector<monitoring::AlertRule> defaultAlertRules(lifecycle::Registry& registry, gateway::MessageRouter& router,
                                                     delivery::Delivery& delivery, agents::AgentWebSocketBridge& bridge,
                                                     gateway::WsGateway& ws_gateway,
                                                     analytics::AnalyticsComponent& analytics, bus::RedisBus* redis) {
  using namespace monitoring;
  auto count = [](auto& atomic) { return [&atomic] { return static_cast<double>(atomic.load()); }; };
  const auto& d = delivery.stats();
  const analytics::Pipeline* pipeline = analytics.pipeline();
  std::vector<AlertRule> rules{
      deliveryFailureRule(count(d.failures)),
      noHandlersRule([&router] { return static_cast<double>(router.handlerCount()); },
                     [&registry] { return registry.trace().sinceOriginMs() / 1000.0; }),
      clickHouseDownRule([pipeline] { return pipeline != nullptr; },
                         [pipeline] { return pipeline == nullptr || pipeline->up(); },
                         [pipeline] { return pipeline == nullptr ? std::string{} : pipeline->lastError(); }),
      notReadyRule([&registry] { return health::Probes(registry).isReady() || registry.shuttingDown(); },
                   std::chrono::seconds(30)),
      slowConsumerRule([&ws_gateway] {
        auto closes = ws_gateway.closesByCode();
        auto it = closes.find(4001);
        return it == closes.end() ? 0.0 : static_cast<double>(it->second);
      }),
      runErrorRatioRule(
          [&bridge] {
            double n = 0;
            for (const auto& [key, v] : bridge.runOutcomes()) n += static_cast<double>(v);
            return n;
          },
          [&bridge] {
            double n = 0;
            for (const auto& [key, v] : bridge.runOutcomes()) {
              if (key.second == "error" || key.second == "timeout") n += static_cast<double>(v);
            }
            return n;
          }),
      analyticsDroppingRule([pipeline] {
        if (pipeline == nullptr) return 0.0;
        const auto& s = pipeline->stats();
        return static_cast<double>(s.dropped_queue_full.load() + s.dropped_spool_full.load() +
                                   s.dropped_rejected.load());
      }),
      nodeTakeoverRule(count(bridge.leaseStats().takeovers)),
  };
  if (redis != nullptr) {
    rules.push_back(busDownRule([redis] { return redis->live(); }, [redis] { return redis->health().reason; },
                                std::chrono::seconds(10)));
  }
  return rules;
}

}  // namespace agentwire::app
