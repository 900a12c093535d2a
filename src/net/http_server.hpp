#pragma once

#include "net/http_types.hpp"
#include "net/websocket.hpp"

#include <spdlog/logger.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace agentwire::net {

// Decides whether a WebSocket upgrade may proceed. Returning a reply refuses the upgrade with it
// (e.g. 503 + Retry-After before ready); returning nullopt-equivalent (status 0) accepts it.
using UpgradeGate = std::function<HttpReply(const HttpRequest&)>;

// The HTTP listener: one io_context run by a small thread pool, one strand per connection,
// keep-alive, routes by exact path (and by prefix for routes ending in '/').
// It opens before the components start so that probes answer during startup; WebSocket
// upgrades are refused by the gate until the process is ready.
class HttpServer {
 public:
  struct Options {
    std::string host = "127.0.0.1";
    uint16_t port = 8080;
    int threads = 2;
    std::size_t max_body_bytes = 1 << 20;
    // A request (headers and body) must arrive within this; also the keep-alive idle limit.
    std::chrono::milliseconds request_timeout{10000};
    // A deferred reply not given within this is answered 504.
    std::chrono::milliseconds deferred_timeout{30000};
    // HTTP connections not (yet) upgraded to WebSocket: past either cap a new connection is
    // closed at once, before anything is read from it.
    std::size_t max_http_connections = 4096;
    std::size_t max_http_connections_per_ip = 256;
  };

  // What the listener refused or survived (for metrics).
  struct Counters {
    std::atomic<uint64_t> accept_errors{0};
    std::atomic<uint64_t> refused_over_cap{0};
    std::atomic<uint64_t> bad_requests{0};
    std::atomic<uint64_t> request_timeouts{0};
  };

  explicit HttpServer(Options options);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Routes must be added before start(). Path "/api/threads/" with prefix=true matches below it.
  void route(const std::string& method, const std::string& path, HttpHandler handler, bool prefix = false);
  void setUpgradeGate(UpgradeGate gate);
  // The handler of upgrades that pass the gate; it must outlive the server's I/O threads.
  void setWsHandler(WsHandler* handler, WsLimits limits);

  // Binds and starts the I/O threads; throws std::runtime_error naming the address on failure.
  void start();
  uint16_t port() const { return bound_port_.load(); }
  // Closes the listening socket; open connections keep being served.
  void stopAccepting();
  // Number of open HTTP connections (for draining).
  std::size_t openConnections() const;
  const Counters& counters() const;
  // Stops the I/O threads and closes every connection.
  void stop();

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
  std::atomic<uint16_t> bound_port_{0};
};

}  // namespace agentwire::net
