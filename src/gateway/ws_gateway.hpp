#pragma once

#include "analytics/record.hpp"
#include "core/config.hpp"
#include "core/serial_pool.hpp"
#include "gateway/auth.hpp"
#include "gateway/message_router.hpp"
#include "gateway/rate_limiter.hpp"
#include "lifecycle/component.hpp"
#include "net/websocket.hpp"
#include "store/store.hpp"

#include <boost/json/object.hpp>

#include <spdlog/logger.h>

#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <thread>

namespace agentwire::delivery {
class Delivery;
}

namespace agentwire::gateway {

// The WebSocket side of the gateway and the last component to start ("ws_gateway"): once it
// has started, upgrades on /ws are authenticated (JWT), attached to delivery and routed.
//
// Each connection starts *held*: it receives `connection_established` and then no stream events
// until its first frame (a `resume` replays from the client's last seq; anything else goes live
// from the seq announced in connection_established) or until ws.resume_window_ms passes. That
// is what keeps replayed and live events from interleaving. `/ws?last_seq=N&epoch=E` resumes at
// connect time instead.
//
// stop() drains: every connection is closed with 1012 after its queued frames are written,
// waiting up to server.drain_timeout_ms.
class WsGateway final : public lifecycle::Component, public net::WsHandler {
 public:
  WsGateway(const core::Config& config, MessageRouter& router, delivery::Delivery& delivery,
            std::vector<std::string> dependencies);
  ~WsGateway() override;

  void start() override;
  void stop() override;
  bool accepting() const { return accepting_.load(); }

  // Valid after start(); null before.
  const TokenAuthority* authority() const { return authority_.get(); }
  net::WsLimits limits() const;
  std::size_t openConnections() const;
  uint64_t connectionsOpened() const { return opened_.load(); }
  // Closed connections by WebSocket close code (1000, 1001, 1006, 1008, 1009, 1012, 4001...),
  // including upgrades refused after the handshake (bad token, connection limit). Codes outside
  // the protocol's are counted under 0; a connection that ended without a close frame is 1006.
  std::map<int, uint64_t> closesByCode() const;
  // Error frames sent to clients, by error code (fed by the error observer, see frame.hpp).
  void countError(const std::string& code);
  std::map<std::string, uint64_t> errorsByCode() const;
  void setRecorder(analytics::Recorder& r) { recorder_ = &r; }  // before start()
  // HTTP API and AG-UI calls of a user, under the same rate as a WebSocket's messages.
  bool allowApiCall(const std::string& user_id);
  // A place under ws.max_connections_per_user (a WebSocket's, from admission, or an event stream's),
  // held while the returned token lives; nullptr past the limit.
  std::shared_ptr<void> holdConnectionSlot(const std::string& user_id);
  // The connection_established frame's data for a connection of `user_id` attached at `info`.
  boost::json::object establishedData(const std::string& user_id, const std::string& connection_id,
                                      const store::StreamInfo& info) const;

  net::WsAdmission admit(const net::HttpRequest& req) override;
  // Runs a task that may wait on the store on the store pool (never on an I/O thread); false when
  // the gateway is stopping (the task is not run).
  bool runOffIoThread(std::function<void()> task) {
    return store_work_.post(core::SerialPool::lane(), std::move(task));
  }
  // The same on one lane: the tasks of one lane run one at a time, in order (one stream's steps).
  bool runOnLane(const std::shared_ptr<core::SerialPool::Lane>& lane, std::function<void()> task) {
    return store_work_.post(lane, std::move(task));
  }

  void onOpen(const std::shared_ptr<net::WsConnection>& conn) override;
  void onMessage(const std::shared_ptr<net::WsConnection>& conn, std::string_view payload, bool is_text) override;
  void onDrain(const std::shared_ptr<net::WsConnection>& conn) override;
  void onClose(net::WsConnection& conn, int code) override;

 private:
  struct ConnState;
  struct UserSlots;
  void sweepLoop();
  void countClose(int code);
  net::WsAdmission decide(const net::HttpRequest& req);
  // Whether handling this frame may wait on the store (then it runs on store_work_, never on an I/O thread).
  bool mayBlock(const Frame& frame) const;
  // Runs `task` on the connection's lane of the store pool, counted as pending (offloaded) so that
  // the connection's later frames, and their replies, follow it. False when the pool is stopping.
  bool onLane(const std::shared_ptr<net::WsConnection>& conn, std::function<void()> task);
  // onOpen's work on the store pool: attach to the user's stream, connection_established.
  void open(const std::shared_ptr<net::WsConnection>& conn);
  // Undoes what open() registered, once, whichever of open() and onClose() comes last.
  void forget(net::WsConnection& conn);

  const core::Config& config_;
  MessageRouter& router_;
  delivery::Delivery& delivery_;
  std::shared_ptr<spdlog::logger> log_;
  std::unique_ptr<TokenAuthority> authority_;
  std::atomic<bool> accepting_{false};
  std::atomic<uint64_t> opened_{0};
  // Counters have their own lock: they are bumped from paths that may hold mutex_ or none.
  mutable std::mutex counts_mutex_;
  std::map<int, uint64_t> closes_;          // guarded by counts_mutex_
  std::map<std::string, uint64_t> errors_;  // guarded by counts_mutex_
  analytics::Recorder* recorder_ = &analytics::NullRecorder::instance();
  std::shared_ptr<UserSlots> slots_;
  UserRateLimiter api_limiter_;
  core::SerialPool store_work_;  // frames whose handling may wait on the store, in order per connection

  mutable std::mutex mutex_;
  std::condition_variable cv_;
  std::map<std::string, std::weak_ptr<net::WsConnection>> sessions_;
  std::map<std::string, std::chrono::steady_clock::time_point> held_;  // connection id -> go-live deadline
  bool sweeping_ = false;
  std::thread sweeper_;
};

}  // namespace agentwire::gateway
