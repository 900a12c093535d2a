#pragma once

#include "delivery/connection.hpp"
#include "net/http_types.hpp"

#include <atomic>
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

namespace agentwire::net {

// Close codes agentwire uses (docs/protocol.md).
namespace close_code {
inline constexpr int kNormal = 1000;
inline constexpr int kPolicy = 1008;  // authentication refused
inline constexpr int kTooBig = 1009;  // message over ws.max_message_bytes
inline constexpr int kInternal = 1011;
inline constexpr int kServiceRestart = 1012;   // server shutting down; reconnect and resume
inline constexpr int kTryAgainLater = 1013;    // the stream cannot be read right now; reconnect later
inline constexpr int kSlowConsumer = 4001;     // fell behind the send-queue bound; resume on reconnect
inline constexpr int kConnectionLimit = 4002;  // too many connections for this user
}  // namespace close_code

struct WsLimits {
  std::size_t max_message_bytes = std::size_t{64} * 1024;
  std::size_t max_queue_messages = 1024;
  std::size_t max_queue_bytes = std::size_t{4} * 1024 * 1024;
  int idle_timeout_ms = 30000;  // a ping goes out after half of this idle; no answer by the end closes
  int send_timeout_ms = 30000;  // frames waiting and no write completing this long: a stalled peer, closed 4001
};

// Whether an upgrade becomes a session. A refused upgrade still completes the handshake (so a
// browser sees the code and reason) and is then closed at once; no state is created for it.
struct WsAdmission {
  bool accepted = false;
  std::string user_id;
  std::string subprotocol;  // echoed in Sec-WebSocket-Protocol when not empty
  int close_code = close_code::kPolicy;
  std::string close_reason;
  std::shared_ptr<void> attachment;  // becomes the connection's attachment before onOpen
};

// A server-side WebSocket connection. send() is thread-safe and never blocks: it posts onto
// the connection's strand, where frames wait in a bounded queue with one write in flight. A
// connection whose queue passes the bound, or whose writes make no progress for send_timeout_ms
// while frames wait (a peer that stopped reading), is closed with 4001 (its events stay in its
// user's stream for resume).
class WsConnection : public delivery::Connection {
 public:
  // Closes after the frames already queued are written. Thread-safe; idempotent.
  virtual void closeAfterFlush(int code, std::string reason) = 0;
  virtual bool isOpen() const = 0;

  // Per-connection state owned by the WebSocket handler (net does not look inside).
  template <typename T>
  T* attachment() const {
    return static_cast<T*>(attachment_.get());
  }
  void setAttachment(std::shared_ptr<void> a) { attachment_ = std::move(a); }

 private:
  std::shared_ptr<void> attachment_;
};

// What the server calls for each WebSocket. Calls for one connection never overlap (they run
// on its strand); calls for different connections run concurrently.
class WsHandler {
 public:
  virtual ~WsHandler() = default;
  virtual WsAdmission admit(const HttpRequest& req) = 0;
  virtual void onOpen(const std::shared_ptr<WsConnection>& conn) = 0;
  virtual void onMessage(const std::shared_ptr<WsConnection>& conn, std::string_view payload, bool is_text) = 0;
  // The connection's send queue has just emptied (on its strand).
  virtual void onDrain(const std::shared_ptr<WsConnection>& conn) = 0;
  // Called once, whatever ended the connection.
  virtual void onClose(WsConnection& conn, int code) = 0;
};

}  // namespace agentwire::net
