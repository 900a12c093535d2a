#include "app/metrics_wiring.hpp"

#include "mcp/mcp_server.hpp"

#include "app/startup_history.hpp"

#include "agents/bridge.hpp"
#include "bus/redis/redis_bus.hpp"
#include "gateway/frame.hpp"

#include <chrono>
#include <mutex>
#include <set>
#include "analytics/analytics_component.hpp"
#include "delivery/delivery.hpp"
#include "gateway/message_router.hpp"
#include "gateway/ws_gateway.hpp"
#include "store/store.hpp"

namespace agentwire::app {

using monitoring::Family;

namespace {

// The unacknowledged-threads figure, refreshed at most every 10 s (it is a store read).
struct UnackedCache {
  std::mutex mutex;
  std::chrono::steady_clock::time_point at{};
  int64_t value = 0;

  int64_t get(const Components& c) {
    std::lock_guard lock(mutex);
    auto now = std::chrono::steady_clock::now();
    if (at != std::chrono::steady_clock::time_point{} && now - at < std::chrono::seconds(10)) return value;
    auto users = c.store.unackedThreadsByUser(100000);
    if (!users) return value;  // keep the last figure while the store cannot be read
    int64_t n = 0;
    for (const auto& [user, threads] : *users) {
      if (c.delivery.connectionsOf(user) == 0) n += threads;
    }
    value = n;
    at = now;
    return value;
  }
};

}  // namespace

void registerGatewayMetrics(monitoring::MetricsEndpoint& m, const Components& c, lifecycle::Registry& registry,
                            const health::Probes& probes, const StartupHistory& history) {
  auto unacked = std::make_shared<UnackedCache>();
  m.addSource([&c, &registry, &probes, &history, unacked](std::vector<Family>& out) {
    out.emplace_back("agentwire_ready", "1 when every critical component is healthy and no shutdown began.",
                     Family::Type::Gauge);
    out.back().add(probes.isReady() ? 1 : 0);

    Family healthy("agentwire_component_healthy", "1 when the component reports healthy.", Family::Type::Gauge);
    Family degraded("agentwire_component_degraded", "1 when the component reports degraded.", Family::Type::Gauge);
    for (const auto& comp : registry.components()) {
      auto h = comp->health();
      healthy.add(h.state == lifecycle::HealthState::Healthy ? 1 : 0, {{"component", comp->name()}});
      degraded.add(h.state == lifecycle::HealthState::Degraded ? 1 : 0, {{"component", comp->name()}});
    }
    out.push_back(std::move(healthy));
    out.push_back(std::move(degraded));

    Family took("agentwire_component_start_duration_seconds", "Time each component's start() took.",
                Family::Type::Gauge);
    for (const auto& s : registry.trace().spans()) {
      if (s.end_ms >= 0) took.add((s.end_ms - s.start_ms) / 1000.0, {{"component", s.component}});
    }
    out.push_back(std::move(took));
    // Kept in the data directory across restarts (a failed start is counted before the process
    // exits): clean / attempts is the startup success rate.
    auto starts = history.counts();
    out.emplace_back("agentwire_starts_total", "Start attempts with this data directory, failed ones included.",
                     Family::Type::Counter);
    out.back().add(static_cast<double>(starts.attempts));
    out.emplace_back("agentwire_ready_starts_total", "Starts that reached ready.", Family::Type::Counter);
    out.back().add(static_cast<double>(starts.ready));
    out.emplace_back("agentwire_clean_starts_total", "Starts that reached ready with every component ok.",
                     Family::Type::Counter);
    out.back().add(static_cast<double>(starts.clean));

    out.emplace_back("agentwire_handlers_registered", "Message handlers registered.", Family::Type::Gauge);
    out.back().add(static_cast<double>(c.router.handlerCount()));
    for (const auto& e : registry.trace().events()) {
      if (e.what.rfind("handlers_registered", 0) == 0) {
        out.emplace_back("agentwire_handlers_registered_after_seconds",
                         "Time from process start to the handlers being registered.", Family::Type::Gauge);
        out.back().add(e.at_ms / 1000.0);
        break;
      }
    }

    const auto& d = c.delivery.stats();
    out.emplace_back("agentwire_events_appended_total", "Events committed to user streams.", Family::Type::Counter);
    out.back().add(static_cast<double>(d.appended.load()));
    out.emplace_back("agentwire_events_sent_total", "Events queued to a live connection.", Family::Type::Counter);
    out.back().add(static_cast<double>(d.sent.load()));
    out.emplace_back("agentwire_events_replayed_total", "Events sent by resume or catch-up.", Family::Type::Counter);
    out.back().add(static_cast<double>(d.replayed.load()));
    out.emplace_back("agentwire_delivery_failures_total",
                     "Events refused (unknown or foreign thread) or not committed.", Family::Type::Counter);
    out.back().add(static_cast<double>(d.failures.load()));
    out.emplace_back("agentwire_events_fenced_total",
                     "Events of runs that had already ended (another node ended them as interrupted), not stored.",
                     Family::Type::Counter);
    out.back().add(static_cast<double>(d.fenced.load()));
    out.emplace_back("agentwire_delivery_failures_by_reason_total", "Delivery failures by reason.",
                     Family::Type::Counter);
    out.back().add(static_cast<double>(d.failures_thread_not_found.load()), {{"reason", "thread_not_found"}});
    out.back().add(static_cast<double>(d.failures_forbidden.load()), {{"reason", "forbidden"}});
    out.back().add(static_cast<double>(d.failures_store_error.load()), {{"reason", "store_error"}});
    out.emplace_back("agentwire_events_appended_acking_total",
                     "Events committed to acking streams (whose user has acked before): the delivery success "
                     "ratio's denominator.",
                     Family::Type::Counter);
    out.back().add(static_cast<double>(d.appended_acking.load()));
    out.emplace_back("agentwire_events_acked_acking_total",
                     "Events acknowledged on acking streams: the delivery success ratio's numerator.",
                     Family::Type::Counter);
    out.back().add(static_cast<double>(d.acked_acking.load()));
    out.emplace_back("agentwire_events_acked_total", "Events acknowledged by clients (ack_events), each counted once.",
                     Family::Type::Counter);
    out.back().add(static_cast<double>(d.acked.load()));
    out.emplace_back("agentwire_delivery_latency_seconds",
                     "From an event's deliver() to it being committed and queued on every live connection.",
                     Family::Type::Histogram);
    out.back().addHistogram(d.latency.snapshot());
    out.emplace_back("agentwire_store_commit_seconds",
                     "One group commit of the event stream writer (all shards): the store transaction's duration, "
                     "failed attempts included. Every user's events wait behind a long one.",
                     Family::Type::Histogram);
    out.back().addHistogram(d.commit_seconds.snapshot());
    out.emplace_back("agentwire_store_commit_items",
                     "Items (messages, runs, events, acks) per group commit: how much the commit batches.",
                     Family::Type::Histogram);
    out.back().addHistogram(d.commit_items.snapshot());
    out.emplace_back("agentwire_connections_opened_total", "WebSocket connections opened (authenticated).",
                     Family::Type::Counter);
    out.back().add(static_cast<double>(c.ws_gateway.connectionsOpened()));
    out.emplace_back("agentwire_connections_closed_total",
                     "WebSocket connections closed, by close code (4001 = fell behind, 1008 = refused token, 1006 = no "
                     "close frame, other = a code outside the protocol).",
                     Family::Type::Counter);
    for (const auto& [code, n] : c.ws_gateway.closesByCode()) {
      out.back().add(static_cast<double>(n), {{"code", code == 0 ? std::string("other") : std::to_string(code)}});
    }
    // Runs in progress on threads whose user has no live connection: their events wait in the
    // stream (not an error), but many of them mean clients are not coming back.
    std::set<std::pair<std::string, std::string>> offline;
    for (const auto& [user, thread] : c.bridge.activeRunThreads()) {
      if (c.delivery.connectionsOf(user) == 0) offline.emplace(user, thread);
    }
    out.emplace_back("agentwire_threads_running_without_connection",
                     "Threads with a run in progress whose user has no live connection.", Family::Type::Gauge);
    out.back().add(static_cast<double>(offline.size()));
    // Threads with events their (acking) user has not acknowledged and no live connection to
    // receive them: the seed's connection consistency, beyond runs in progress. A store read,
    // so it is refreshed at most every 10 s.
    out.emplace_back("agentwire_threads_unacked_without_connection",
                     "Threads with events not acknowledged by their user, who has no live connection (acking "
                     "streams only; refreshed at most every 10 s).",
                     Family::Type::Gauge);
    out.back().add(static_cast<double>(unacked->get(c)));
    out.emplace_back("agentwire_agent_runs_total", "Finished agent runs by agent and outcome.", Family::Type::Counter);
    for (const auto& [key, n] : c.bridge.runOutcomes()) {
      out.back().add(static_cast<double>(n), {{"agent", key.first}, {"outcome", key.second}});
    }
    out.emplace_back(
        "agentwire_agent_tokens_total",
        "Tokens used by agents' model calls, by agent and kind (input, output), as their upstreams report.",
        Family::Type::Counter);
    for (const auto& [key, n] : c.bridge.tokensUsed()) {
      out.back().add(static_cast<double>(n), {{"agent", key.first}, {"kind", key.second}});
    }
    if (!c.mcp_servers.empty()) {
      out.emplace_back("agentwire_mcp_server_up", "1 while the MCP tool server runs and answered its handshake.",
                       Family::Type::Gauge);
      for (const auto* m : c.mcp_servers) out.back().add(m->up() ? 1 : 0, {{"server", m->serverName()}});
      std::vector<std::pair<std::string, std::map<std::string, mcp::McpServer::ToolStats>>> stats;
      for (const auto* m : c.mcp_servers) stats.emplace_back(m->serverName(), m->toolStats());
      out.emplace_back("agentwire_mcp_tool_calls_total", "Calls of MCP tools, by server and tool.",
                       Family::Type::Counter);
      for (const auto& [server, tools] : stats) {
        for (const auto& [tool, t] : tools)
          out.back().add(static_cast<double>(t.calls), {{"server", server}, {"tool", tool}});
      }
      out.emplace_back("agentwire_mcp_tool_errors_total",
                       "MCP tool calls that failed (a tool error, a timeout, the server gone), by server and tool.",
                       Family::Type::Counter);
      for (const auto& [server, tools] : stats) {
        for (const auto& [tool, t] : tools)
          out.back().add(static_cast<double>(t.errors), {{"server", server}, {"tool", tool}});
      }
      out.emplace_back("agentwire_mcp_tool_call_duration_seconds", "MCP tool call durations, by server and tool.",
                       Family::Type::Histogram);
      for (const auto& [server, tools] : stats) {
        for (const auto& [tool, t] : tools) out.back().addHistogram(t.durations, {{"server", server}, {"tool", tool}});
      }
    }
    out.emplace_back("agentwire_agent_run_duration_seconds", "Agent run durations by agent.", Family::Type::Histogram);
    for (const auto& [agent, h] : c.bridge.runDurations()) out.back().addHistogram(h, {{"agent", agent}});
    out.emplace_back("agentwire_client_errors_total", "Error frames sent to clients, by code.", Family::Type::Counter);
    for (const auto& [code, n] : c.ws_gateway.errorsByCode()) out.back().add(static_cast<double>(n), {{"code", code}});

    out.emplace_back("agentwire_connections", "Live connections attached to delivery.", Family::Type::Gauge);
    out.back().add(static_cast<double>(c.delivery.connectionCount()));
    out.emplace_back("agentwire_users_connected", "Users with at least one live connection.", Family::Type::Gauge);
    out.back().add(static_cast<double>(c.delivery.userCount()));
    out.emplace_back("agentwire_websocket_connections", "Open WebSocket connections.", Family::Type::Gauge);
    out.back().add(static_cast<double>(c.ws_gateway.openConnections()));
    out.emplace_back("agentwire_agent_runs_active", "Agent runs queued or executing.", Family::Type::Gauge);
    out.back().add(static_cast<double>(c.bridge.activeRuns()));
    out.emplace_back("agentwire_agent_paced_seconds_total",
                     "Time agents waited for a reader that was behind (their text deltas paced by it).",
                     Family::Type::Counter);
    out.back().add(static_cast<double>(c.bridge.pacedMicros()) / 1e6);
    out.emplace_back("agentwire_agent_runs_paced", "Agent runs waiting for a reader that is behind, now.",
                     Family::Type::Gauge);
    out.back().add(static_cast<double>(c.bridge.pacingNow()));
    out.emplace_back("agentwire_agent_runs_awaiting_approval", "Agent runs parked on a tool approval on this node.",
                     Family::Type::Gauge);
    out.back().add(static_cast<double>(c.bridge.parkedRuns()));

    const auto& lease = c.bridge.leaseStats();
    out.emplace_back("agentwire_node_takeovers_total",
                     "Nodes whose lease expired, taken over by this node (their runs ended as interrupted).",
                     Family::Type::Counter);
    out.back().add(static_cast<double>(lease.takeovers.load()));
    out.emplace_back("agentwire_node_lease_lost_total",
                     "Times this node found its own lease taken over by another node (it was paused or cut off).",
                     Family::Type::Counter);
    out.back().add(static_cast<double>(lease.lost.load()));
    out.emplace_back("agentwire_node_lease_renew_failures_total", "Failed renewals of this node's lease.",
                     Family::Type::Counter);
    out.back().add(static_cast<double>(lease.renew_failures.load()));
    if (c.redis_bus != nullptr) addBusMetrics(out, *c.redis_bus);
  });
  m.addSource([&c](std::vector<Family>& out) { addAnalyticsMetrics(out, c.analytics); });
}

void addBusMetrics(std::vector<Family>& out, const bus::RedisBus& b) {
  const auto& st = b.stats();
  out.emplace_back("agentwire_bus_live", "1 while Redis answers PING through this node's subscription.",
                   Family::Type::Gauge);
  out.back().add(b.live() ? 1 : 0);
  out.emplace_back("agentwire_bus_published_total", "Messages published to Redis (stream heads and control).",
                   Family::Type::Counter);
  out.back().add(static_cast<double>(st.published.load()));
  out.emplace_back("agentwire_bus_publish_failures_total",
                   "Messages whose publish failed (kept and sent again once Redis answers).", Family::Type::Counter);
  out.back().add(static_cast<double>(st.publish_failures.load()));
  out.emplace_back("agentwire_bus_notices_received_total", "Stream-head notices received from other nodes.",
                   Family::Type::Counter);
  out.back().add(static_cast<double>(st.received.load()));
  out.emplace_back("agentwire_bus_notices_dropped_total",
                   "Notices dropped past the pending bound while Redis was down (the head check covers them).",
                   Family::Type::Counter);
  out.back().add(static_cast<double>(st.notices_dropped.load()));
  out.emplace_back("agentwire_bus_reconnects_total", "Reconnections of the subscription to Redis.",
                   Family::Type::Counter);
  out.back().add(static_cast<double>(st.reconnects.load()));
}

void addAnalyticsMetrics(std::vector<Family>& out, const analytics::AnalyticsComponent& a) {
  const analytics::Pipeline* p = a.pipeline();
  out.emplace_back("agentwire_analytics_enabled", "1 when analytics rows are sent to ClickHouse.", Family::Type::Gauge);
  out.back().add(p != nullptr ? 1 : 0);
  if (p == nullptr) return;
  const auto& s = p->stats();
  out.emplace_back("agentwire_clickhouse_up", "1 when the last ClickHouse request succeeded.", Family::Type::Gauge);
  out.back().add(p->up() ? 1 : 0);
  out.emplace_back("agentwire_analytics_queue_rows", "Analytics rows waiting in memory.", Family::Type::Gauge);
  out.back().add(static_cast<double>(p->queueDepth()));
  out.emplace_back("agentwire_analytics_spool_bytes", "Bytes of analytics batches in the on-disk spool.",
                   Family::Type::Gauge);
  out.back().add(static_cast<double>(p->spool().bytes()));
  out.emplace_back("agentwire_analytics_spool_batches", "Analytics batches in the on-disk spool.", Family::Type::Gauge);
  out.back().add(static_cast<double>(p->spool().batches()));
  out.emplace_back("agentwire_analytics_rows_total", "Analytics rows produced, by kind (inserted, queued or dropped).",
                   Family::Type::Counter);
  for (const auto& [kind, n] : p->producedByKind()) out.back().add(static_cast<double>(n), {{"kind", kind}});
  out.emplace_back("agentwire_clickhouse_rows_inserted_total", "Analytics rows stored in ClickHouse.",
                   Family::Type::Counter);
  out.back().add(static_cast<double>(s.inserted.load()));
  out.emplace_back("agentwire_clickhouse_insert_errors_total",
                   "Failed ClickHouse requests (inserts, schema, duplicate checks).", Family::Type::Counter);
  out.back().add(static_cast<double>(s.insert_errors.load()));
  out.emplace_back("agentwire_analytics_rows_dropped_total", "Analytics rows dropped, by reason.",
                   Family::Type::Counter);
  out.back().add(static_cast<double>(s.dropped_queue_full.load()), {{"reason", "queue_full"}});
  out.back().add(static_cast<double>(s.dropped_spool_full.load()), {{"reason", "spool_full"}});
  out.back().add(static_cast<double>(s.dropped_rejected.load()), {{"reason", "rejected"}});
  out.back().add(static_cast<double>(s.dropped_after_stop.load()), {{"reason", "after_stop"}});
  out.emplace_back("agentwire_analytics_duplicate_batches_skipped_total",
                   "Retried batches found already stored, not sent again.", Family::Type::Counter);
  out.back().add(static_cast<double>(s.duplicates_skipped.load()));
}

}  // namespace agentwire::app
