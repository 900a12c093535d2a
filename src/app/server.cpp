#include "app/server.hpp"

#include "app/metrics_wiring.hpp"
#include "app/startup_history.hpp"
#include "app/systemd_notify.hpp"
#include "app/web_assets.hpp"
#include "app/wiring.hpp"
#include "core/logging.hpp"
#include "core/version.hpp"
#include "gateway/agui.hpp"
#include "gateway/event_stream.hpp"
#include "gateway/http_api.hpp"
#include "gateway/ws_gateway.hpp"
#include "health/probes.hpp"
#include "health/self_check.hpp"
#include "lifecycle/registry.hpp"
#include "monitoring/alert_monitor.hpp"
#include "net/http_server.hpp"
#include "store/sqlite/sqlite_store.hpp"

#include <fmt/format.h>
#include <boost/json.hpp>

#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <thread>

namespace agentwire::app {
namespace {

// Sends WATCHDOG=1 at half the interval systemd asked for, until stopped.
class Watchdog {
 public:
  Watchdog() {
    auto interval = serviceWatchdogInterval();
    if (!interval) return;
    thread_ = std::jthread([half = *interval / 2](const std::stop_token& st) {
      std::mutex m;
      std::condition_variable_any cv;
      std::unique_lock lock(m);
      while (!st.stop_requested()) {
        notifyServiceManager("WATCHDOG=1");
        cv.wait_for(lock, st, half, [] { return false; });
      }
    });
  }

 private:
  std::jthread thread_;
};

void writePortFile(const std::string& path, uint16_t port) {
  if (path.empty()) return;
  std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp);
    f << port << "\n";
  }
  std::rename(tmp.c_str(), path.c_str());  // atomic: readers never see a partial file
}

}  // namespace

int runServer(const core::Config& cfg) {
  auto log = core::logger("main");
  // Signals are taken synchronously by this thread; every thread started below inherits the mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  std::signal(SIGPIPE, SIG_IGN);  // a peer or agent program that went away is an error code, not a death
  // A file size limit reached (RLIMIT_FSIZE) is a failed write (EFBIG), handled like a full disk.
  std::signal(SIGXFSZ, SIG_IGN);

  const std::string data_dir = cfg.dataDir();
  std::error_code dir_ec;
  if (!data_dir.empty()) std::filesystem::create_directories(data_dir, dir_ec);  // reported by config
  // Not kept when the store is in memory (an empty path: counted in this process only).
  StartupHistory history(data_dir.empty() ? std::string() : (std::filesystem::path(data_dir) / "startups").string());
  history.begin();

  lifecycle::StartupTrace trace;
  lifecycle::Registry registry(trace);

  auto c = buildDefaultGraph(registry, cfg);

  try {
    registry.validate();
  } catch (const lifecycle::GraphError& e) {
    std::fprintf(stderr, "agentwire: invalid component graph: %s\n", e.what());
    history.finish(false, false);
    return 1;
  }

  health::Probes probes(registry);
  net::HttpServer::Options http_options;
  http_options.host = cfg.server.host;
  http_options.port = static_cast<uint16_t>(cfg.server.port);
  http_options.threads = cfg.server.threads;
  // The same bound as a WebSocket message: an HTTP body carries one.
  http_options.max_body_bytes = static_cast<std::size_t>(cfg.ws.max_message_bytes);
  http_options.request_timeout = std::chrono::milliseconds(cfg.server.request_timeout_ms);
  http_options.max_http_connections = static_cast<std::size_t>(cfg.server.max_http_connections);
  http_options.max_http_connections_per_ip = static_cast<std::size_t>(cfg.server.max_http_connections_per_ip);
  net::HttpServer server(http_options);
  server.route("GET", "/health/live", [&](const net::HttpRequest&) { return probes.live(); });
  server.route("GET", "/health/ready", [&](const net::HttpRequest&) { return probes.ready(); });
  server.route("GET", "/health/startup", [&](const net::HttpRequest&) { return probes.startup(); });
  server.route("GET", "/health", [&](const net::HttpRequest&) { return probes.overall(); });
  server.route("GET", "/health/alerts", [&](const net::HttpRequest&) {
    boost::json::array active;
    for (const auto& a : c.alerts.active()) {
      active.push_back(boost::json::object{{"name", a.name},
                                           {"severity", std::string(monitoring::toString(a.severity))},
                                           {"summary", a.summary},
                                           {"detail", a.detail},
                                           {"since_ms", a.since_ms}});
    }
    boost::json::array rules;
    for (const auto& n : c.alerts.ruleNames()) rules.push_back(boost::json::string(n));
    return net::jsonReply(200, boost::json::object{{"active", std::move(active)}, {"rules", std::move(rules)}});
  });
  server.route("GET", "/health/trends", [&](const net::HttpRequest&) {
    const auto* trends = c.alerts.trends();
    boost::json::object body{{"step_ms", trends != nullptr ? trends->step().count() : 0},
                             {"points", trends != nullptr ? trends->json() : boost::json::array{}}};
    return net::jsonReply(200, std::move(body));
  });
  server.route("GET", "/health/selfcheck", [&](const net::HttpRequest&) {
    if (!probes.isReady()) return net::jsonError(503, "not_ready", "the server is not ready");
    // Answered when the check is done, on the self-check's thread: no I/O thread waits for it.
    net::HttpReply reply;
    reply.deferred = [&c](net::Respond respond) {
      c.self_check.request([respond = std::move(respond)](const core::Result<health::SelfCheck::Report>& r) {
        if (!r) return respond(net::jsonError(503, r.error().code, r.error().message));
        respond(net::jsonReply(200, boost::json::object{{"ok", true}, {"took_ms", r->took_ms}, {"reused", r->reused}}));
      });
    };
    return reply;
  });
  server.setUpgradeGate([&](const net::HttpRequest& req) {
    if (req.path != "/ws") return net::jsonError(404, "not_found", "WebSocket endpoint is /ws");
    if (!probes.isReady() || !c.ws_gateway.accepting()) {
      auto r = net::jsonError(503, "not_ready", "the server is not ready");
      r.headers.emplace_back("Retry-After", "1");
      return r;
    }
    return net::HttpReply{0, {}, {}, {}, {}, {}};
  });

  server.setWsHandler(&c.ws_gateway, c.ws_gateway.limits());
  gateway::registerHttpApi(server, c.router, c.ws_gateway, cfg.devModeEnabled(), cfg.auth.dev_token_ttl_s,
                           [&probes] { return probes.isReady(); });
  monitoring::MetricsEndpoint metrics;
  monitoring::addProcessMetrics(metrics);
  registerGatewayMetrics(metrics, c, registry, probes, history);
  metrics.addSource([&server](std::vector<monitoring::Family>& out) {
    const auto& n = server.counters();
    out.emplace_back("agentwire_http_refused_total",
                     "HTTP connections and requests the listener refused or dropped, by reason.",
                     monitoring::Family::Type::Counter);
    out.back().add(static_cast<double>(n.accept_errors.load()), {{"reason", "accept_error"}});
    out.back().add(static_cast<double>(n.refused_over_cap.load()), {{"reason", "over_connection_cap"}});
    out.back().add(static_cast<double>(n.bad_requests.load()), {{"reason", "bad_request"}});
    out.back().add(static_cast<double>(n.request_timeouts.load()), {{"reason", "request_timeout"}});
  });
  server.route("GET", "/metrics", [&metrics](const net::HttpRequest&) {
    return net::HttpReply{200, "text/plain; version=0.0.4; charset=utf-8", metrics.scrape(), {}, {}, {}};
  });
  registerWebRoutes(server, cfg.server.web_dir);
  const gateway::EventStreamLimits stream_limits{static_cast<std::size_t>(cfg.ws.max_queue_bytes),
                                                 std::chrono::milliseconds(cfg.ws.sse_keepalive_ms),
                                                 std::chrono::milliseconds(cfg.ws.send_timeout_ms)};
  gateway::registerAgui(server, c.store, c.delivery, c.bridge, c.ws_gateway, stream_limits,
                        cfg.limits.max_threads_per_user, [&probes] { return probes.isReady(); });
  gateway::registerEventStream(server, c.delivery, c.ws_gateway, stream_limits, [&probes] { return probes.isReady(); });

  try {
    server.start();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "agentwire: %s\n", e.what());
    history.finish(false, false);
    return 1;
  }
  writePortFile(cfg.server.port_file, server.port());
  log->info("agentwire {} listening on http://{}:{} (probes answer while starting)", core::kVersion, cfg.server.host,
            server.port());

  lifecycle::StartResult started;
  try {
    started = registry.startAll();
  } catch (const lifecycle::GraphError& e) {
    started = lifecycle::StartResult{false, "registry", e.what()};
  }
  if (!started.ok) {
    std::fprintf(stderr, "agentwire: startup failed: component '%s': %s\n", started.failed_component.c_str(),
                 started.error.c_str());
    history.finish(false, false);
    server.stop();
    return 1;
  }
  bool clean = true;
  for (const auto& span : trace.spans()) clean = clean && span.outcome == "ok";
  history.finish(true, clean);
  log->info("ready in {:.2f} ms", trace.sinceOriginMs());
  notifyServiceManager("READY=1");
  Watchdog watchdog;

  int sig = 0;
  sigwait(&signals, &sig);
  log->info("received {}, shutting down", sig == SIGTERM ? "SIGTERM" : "SIGINT");
  registry.beginShutdown();  // readiness is false from here on
  notifyServiceManager("STOPPING=1");
  if (cfg.server.shutdown_delay_ms > 0) {
    std::this_thread::sleep_for(std::chrono::milliseconds(cfg.server.shutdown_delay_ms));
  }
  server.stopAccepting();
  registry.stopAll();
  server.stop();
  log->info("stopped cleanly");
  return 0;
}

}  // namespace agentwire::app
