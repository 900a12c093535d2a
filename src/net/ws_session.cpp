#include "net/ws_session.hpp"

#include "core/ids.hpp"
#include "core/logging.hpp"
#include "net/ws_codec.hpp"

#include <array>
#include <chrono>
#include <optional>
#include <vector>

namespace agentwire::net {
namespace {

using wsproto::Opcode;
using Clock = std::chrono::steady_clock;

// Frames written per gathered write: a header and a payload buffer each, within Asio's 64
// buffers per scatter-gather operation.
constexpr std::size_t kFramesPerWrite = 32;
// How long a peer may take to answer our close frame (or to read it) before the TCP connection is cut.
constexpr auto kCloseGrace = std::chrono::seconds(2);
// Reads per wake-up before other connections get their turn.
constexpr int kReadsPerWake = 4;

// The I/O thread's read buffer: an idle connection owns none.
std::array<char, 64 * 1024>& readBuffer() {
  thread_local std::array<char, 64 * 1024> buf;
  return buf;
}

// A WebSocket session after the upgrade: RFC 6455 framing of our own (net/ws_codec.hpp) over the
// TCP socket, on the connection's strand. Reads wait for readability without a buffer and land in
// the I/O thread's buffer; writes gather every queued frame (up to kFramesPerWrite) in one writev.
// Control frames (pong, close, keep-alive ping) go through the same writer, so nothing interleaves.
class WsSession final : public WsConnection,
                        public std::enable_shared_from_this<WsSession>,
                        private wsproto::Decoder::Handler {
 public:
  WsSession(tcp::socket&& socket, WsAdmission admission, WsHandler& handler, const WsLimits& limits)
      : socket_(std::move(socket)),
        id_(core::newId("conn")),
        user_id_(std::move(admission.user_id)),
        handler_(handler),
        limits_(limits),
        decoder_(limits.max_message_bytes),
        idle_timer_(socket_.get_executor()) {
    setAttachment(std::move(admission.attachment));
  }

  const std::string& id() const override { return id_; }
  const std::string& userId() const override { return user_id_; }
  bool isOpen() const override { return open_.load(); }

  void run() {
    beast::error_code ec;
    socket_.non_blocking(true, ec);
    if (ec) return;
    open_ = true;
    last_read_ = Clock::now();
    handler_.onOpen(std::static_pointer_cast<WsConnection>(shared_from_this()));
    armIdle();
    waitReadable();
  }

  bool send(std::shared_ptr<const std::string> frame) override {
    if (!open_.load()) return false;
    // Counted from here (not from the strand) so that a producer sees frames still in the post queue.
    backlog_frames_.fetch_add(1, std::memory_order_relaxed);
    backlog_bytes_.fetch_add(frame->size(), std::memory_order_relaxed);
    asio::post(socket_.get_executor(),
               [self = shared_from_this(), f = std::move(frame)]() mutable { self->enqueue(std::move(f)); });
    return true;
  }

  std::size_t queuedFrames() const override { return backlog_frames_.load(std::memory_order_relaxed); }
  std::size_t queuedBytes() const override { return backlog_bytes_.load(std::memory_order_relaxed); }

  void closeWith(int code, const std::string& reason) override { closeAfterFlush(code, reason); }

  void closeAfterFlush(int code, std::string reason) override {
    asio::post(socket_.get_executor(), [self = shared_from_this(), code, r = std::move(reason)]() mutable {
      if (self->close_requested_ || self->finished_) return;
      self->requestClose(code, r);
      self->flush();
    });
  }

  void notifyWhenDrained() override {
    asio::post(socket_.get_executor(), [self = shared_from_this()] {
      if (!self->open_.load() || self->close_requested_) return;
      if (self->queue_.empty() && !self->writing_) {
        self->handler_.onDrain(std::static_pointer_cast<WsConnection>(self));
      } else {
        self->drain_wanted_ = true;
      }
    });
  }

 private:
  // The buffers of one gathered write, allocated per write so that an idle connection keeps none.
  struct Batch {
    std::array<std::array<uint8_t, wsproto::kMaxHeader>, kFramesPerWrite + 2> headers{};
    std::vector<asio::const_buffer> buffers;
    std::size_t data_frames = 0;
    bool has_close = false;
  };

  // ---- reading

  void waitReadable() {
    socket_.async_wait(tcp::socket::wait_read,
                       [self = shared_from_this()](beast::error_code ec) { self->onReadable(ec); });
  }

  void onReadable(beast::error_code ec) {
    if (finished_) return;
    if (ec) return finish(lastCloseCode());
    auto& buf = readBuffer();
    for (int i = 0; i < kReadsPerWake; ++i) {
      std::size_t n = socket_.read_some(asio::buffer(buf), ec);
      if (ec == asio::error::would_block || ec == asio::error::try_again) break;
      if (ec) return finish(lastCloseCode());  // EOF or reset: the peer is gone
      last_read_ = Clock::now();
      ping_outstanding_ = false;
      if (decoder_.done()) continue;  // after a close frame only the TCP close is awaited
      if (int rc = decoder_.feed(buf.data(), n, *this); rc != 0) {
        // A protocol violation: close with its code, read no more.
        protocol_error_ = rc;
        requestClose(rc, rc == wsproto::kTooBig ? "message too big" : "protocol error");
        cutQueue();
        flush();
        break;
      }
      if (n < buf.size() || finished_) break;
    }
    if (!finished_) waitReadable();
  }

  void onMessage(std::string_view payload, bool text) override {
    if (!open_.load() || close_requested_) return;
    handler_.onMessage(std::static_pointer_cast<WsConnection>(shared_from_this()), payload, text);
  }

  void onPing(std::string_view payload) override {
    if (close_requested_) return;
    // Only the latest ping is answered while a pong waits (RFC 6455 5.5.3): a ping flood costs nothing.
    pending_pong_ = std::string(payload);
    flush();
  }

  void onPong(std::string_view) override {}

  void onClose(int code, std::string_view reason) override {
    peer_close_code_ = code == wsproto::kNoStatus ? 0 : code;
    if (close_sent_) {  // the answer to our close: the handshake is complete
      closeSocket();
      return finish(close_code_);
    }
    // The peer closes: answer with its code once the frame in flight is out; the rest of the queue
    // stays in the user's stream for the next connection.
    (void)reason;
    requestClose(code == wsproto::kNoStatus ? 1000 : code, {});
    cutQueue();
    flush();
  }

  // ---- writing

  void enqueue(std::shared_ptr<const std::string> frame) {
    if (close_requested_ || !open_.load()) return settled(frame->size());
    // A frame is accepted when the backlog in front of it is within the bound, so a backlog never
    // exceeds the bound by more than one frame and one large frame can always go out alone.
    if (!queue_.empty() && (queue_.size() >= limits_.max_queue_messages || queued_bytes_ >= limits_.max_queue_bytes)) {
      settled(frame->size());
      return cutOff("the send queue is full");
    }
    queued_bytes_ += frame->size();
    queue_.push_back(std::move(frame));
    flush();
  }

  // Starts a write when none is in flight and something waits.
  void flush() {
    if (writing_ || finished_) return;
    bool close_due = close_requested_ && !close_sent_ && queue_.empty();
    if (queue_.empty() && !pending_pong_ && !pending_ping_ && !close_due) return;
    auto batch = std::make_shared<Batch>();
    batch->buffers.reserve(2 * (std::min(queue_.size(), kFramesPerWrite) + 3));
    std::size_t h = 0;
    auto add = [&](Opcode op, const std::string* payload) {
      std::size_t n = payload != nullptr ? payload->size() : 0;
      std::size_t len = wsproto::encodeHeader(op, n, batch->headers[h].data());
      batch->buffers.emplace_back(batch->headers[h].data(), len);
      if (n > 0) batch->buffers.emplace_back(payload->data(), n);
      ++h;
    };
    if (pending_pong_) {
      pong_in_flight_ = std::move(*pending_pong_);
      pending_pong_.reset();
      add(Opcode::kPong, &pong_in_flight_);
    }
    if (pending_ping_) {
      pending_ping_ = false;
      add(Opcode::kPing, nullptr);
    }
    std::size_t frames = std::min(queue_.size(), kFramesPerWrite);
    for (std::size_t i = 0; i < frames; ++i) add(Opcode::kText, queue_[i].get());
    batch->data_frames = frames;
    in_flight_data_ = frames;
    if (close_requested_ && !close_sent_ && frames == queue_.size()) {
      close_payload_ = wsproto::closePayload(close_code_, close_reason_);
      add(Opcode::kClose, &close_payload_);
      batch->has_close = true;
    }
    writing_ = true;
    watchStall();
    asio::async_write(socket_, batch->buffers, [self = shared_from_this(), batch](beast::error_code ec, std::size_t) {
      self->onWrite(ec, *batch);
    });
  }

  void onWrite(beast::error_code ec, const Batch& batch) {
    writing_ = false;
    in_flight_data_ = 0;
    if (finished_) return;  // the queue went with the connection
    if (ec) {
      closeSocket();
      return finish(close_requested_ ? close_code_ : static_cast<int>(close_code::kInternal));
    }
    ++writes_done_;
    for (std::size_t i = 0; i < batch.data_frames; ++i) {
      queued_bytes_ -= queue_[i]->size();
      settled(queue_[i]->size());
    }
    queue_.erase(queue_.begin(), queue_.begin() + static_cast<std::ptrdiff_t>(batch.data_frames));
    if (queue_.empty() && queue_.capacity() > 16) std::vector<std::shared_ptr<const std::string>>().swap(queue_);
    if (batch.has_close) return afterCloseSent();
    if (!queue_.empty() || pending_pong_ || pending_ping_ || close_requested_) return flush();
    if (drain_wanted_) {
      drain_wanted_ = false;
      handler_.onDrain(std::static_pointer_cast<WsConnection>(shared_from_this()));
    }
  }

  // A frame leaves the backlog: written, or dropped.
  void settled(std::size_t bytes) {
    backlog_frames_.fetch_sub(1, std::memory_order_relaxed);
    backlog_bytes_.fetch_sub(bytes, std::memory_order_relaxed);
  }

  // Drops what waits behind the write in flight (those frames stay in the user's stream).
  void cutQueue() {
    std::size_t keep = writing_ ? in_flight_data_ : 0;  // the first frames of the queue
    while (queue_.size() > keep) {
      queued_bytes_ -= queue_.back()->size();
      settled(queue_.back()->size());
      queue_.pop_back();
    }
  }

  void requestClose(int code, const std::string& reason) {
    close_requested_ = true;
    close_code_ = code;
    close_reason_ = reason;
  }

  // The peer does not keep up: close 4001 with only the write in flight kept; the rest are in the
  // user's stream for resume.
  void cutOff(const char* why) {
    core::logger("ws")->warn("connection '{}' of user '{}' fell behind ({} frames, {} bytes queued: {}); closing 4001",
                             id_, user_id_, queue_.size(), queued_bytes_, why);
    requestClose(close_code::kSlowConsumer, "slow_consumer");
    cutQueue();
    armCloseGrace();  // a peer that does not read may never let the close frame out
    flush();
  }

  // Armed when writing starts after an idle spell; at each expiry, a write must have completed
  // since the last one, else the peer has stopped reading. One timer per busy spell, not per frame.
  void watchStall() {
    if (stall_timer_armed_ || limits_.send_timeout_ms <= 0) return;
    stall_timer_armed_ = true;
    writes_at_arm_ = writes_done_;
    if (!stall_timer_) stall_timer_ = std::make_unique<asio::steady_timer>(socket_.get_executor());
    stall_timer_->expires_after(std::chrono::milliseconds(limits_.send_timeout_ms));
    stall_timer_->async_wait([self = shared_from_this()](beast::error_code ec) {
      self->stall_timer_armed_ = false;
      if (ec || self->finished_ || self->close_requested_ || !self->writing_) return;
      if (self->writes_done_ == self->writes_at_arm_) {
        return self->cutOff("no write completed within ws.send_timeout_ms");
      }
      self->watchStall();
    });
  }

  // ---- closing

  void afterCloseSent() {
    close_sent_ = true;
    if (peer_close_code_ != 0 || decoder_.done() || protocol_error_ != 0) {
      // The peer closed first (this was the answer), or broke the protocol: done.
      closeSocket();
      return finish(protocol_error_ != 0 ? protocol_error_ : close_code_);
    }
    // Our close: the peer answers with its own, then the connection ends; a peer that does not
    // answer is cut after a grace period.
    beast::error_code ec;
    socket_.shutdown(tcp::socket::shutdown_send, ec);
    armCloseGrace();
  }

  void armCloseGrace() {
    if (close_timer_) return;
    close_timer_ = std::make_unique<asio::steady_timer>(socket_.get_executor(), kCloseGrace);
    close_timer_->async_wait([self = shared_from_this()](beast::error_code ec) {
      if (ec || self->finished_) return;
      self->closeSocket();
      self->finish(self->close_code_);
    });
  }

  // The code onClose reports: the one we closed with, else the peer's (0 when it sent none).
  int lastCloseCode() const {
    if (protocol_error_ != 0) return protocol_error_;
    return close_requested_ ? close_code_ : peer_close_code_;
  }

  void closeSocket() {
    beast::error_code ec;
    socket_.shutdown(tcp::socket::shutdown_both, ec);
    socket_.close(ec);
  }

  // ---- keep-alive: a ping after half the idle timeout without a read; closed at the timeout

  void armIdle() { armIdleAt(Clock::now() + std::chrono::milliseconds(limits_.idle_timeout_ms / 2)); }

  // Fires half the timeout after the last read (a ping goes out) and at the timeout (closed if
  // nothing was read since); a read in between moves both.
  void armIdleAt(Clock::time_point at) {
    if (limits_.idle_timeout_ms <= 0) return;
    idle_timer_.expires_at(at);
    idle_timer_.async_wait([self = shared_from_this()](beast::error_code ec) {
      if (!ec && !self->finished_) self->onIdleTimer();
    });
  }

  void onIdleTimer() {
    auto half = std::chrono::milliseconds(limits_.idle_timeout_ms / 2);
    auto full = std::chrono::milliseconds(limits_.idle_timeout_ms);
    auto since = Clock::now() - last_read_;
    if (since < half) return armIdleAt(last_read_ + half);
    if (!ping_outstanding_) {
      ping_outstanding_ = true;
      if (!close_requested_) {
        pending_ping_ = true;
        flush();
      }
      return armIdleAt(last_read_ + full);
    }
    if (since < full) return armIdleAt(last_read_ + full);
    closeSocket();  // no answer to the ping: the peer is gone
    finish(lastCloseCode());
  }

  void finish(int code) {
    if (finished_) return;
    finished_ = true;
    bool was_open = open_.exchange(false);
    beast::error_code ec;
    idle_timer_.cancel();
    if (stall_timer_) stall_timer_->cancel();
    if (close_timer_) close_timer_->cancel();
    socket_.close(ec);
    for (const auto& f : queue_) settled(f->size());
    queue_.clear();
    if (was_open) handler_.onClose(*this, code);
  }

  tcp::socket socket_;
  std::string id_;
  std::string user_id_;
  WsHandler& handler_;
  const WsLimits& limits_;
  wsproto::Decoder decoder_;
  std::vector<std::shared_ptr<const std::string>> queue_;  // text frames; control frames wait beside it
  std::size_t queued_bytes_ = 0;
  std::size_t in_flight_data_ = 0;  // data frames of the write in flight (the queue's first ones)
  std::optional<std::string> pending_pong_;
  std::string pong_in_flight_;
  std::string close_payload_;
  std::string close_reason_;
  int close_code_ = 1000;
  int peer_close_code_ = 0;
  int protocol_error_ = 0;
  bool pending_ping_ = false;
  bool ping_outstanding_ = false;
  bool writing_ = false;
  bool close_requested_ = false;
  bool close_sent_ = false;
  bool finished_ = false;
  bool drain_wanted_ = false;
  bool stall_timer_armed_ = false;
  uint64_t writes_done_ = 0;
  uint64_t writes_at_arm_ = 0;
  Clock::time_point last_read_;
  asio::steady_timer idle_timer_;
  std::unique_ptr<asio::steady_timer> stall_timer_;
  std::unique_ptr<asio::steady_timer> close_timer_;
  std::atomic<bool> open_{false};
  std::atomic<std::size_t> backlog_frames_{0};
  std::atomic<std::size_t> backlog_bytes_{0};
};

// Beast answers the upgrade (and closes a refused one with its code and reason); an accepted
// connection then leaves Beast's stream for a WsSession on the bare socket.
class Handshake : public std::enable_shared_from_this<Handshake> {
 public:
  Handshake(beast::tcp_stream&& stream, WsAdmission admission, WsHandler& handler, const WsLimits& limits)
      : ws_(std::move(stream)), admission_(std::move(admission)), handler_(handler), limits_(limits) {}

  void run(http::request<http::string_body>&& req) {
    websocket::stream_base::timeout t{};
    t.handshake_timeout = std::chrono::seconds(10);
    t.idle_timeout = websocket::stream_base::none();
    t.keep_alive_pings = false;
    ws_.set_option(t);
    ws_.set_option(websocket::stream_base::decorator([proto = admission_.subprotocol](websocket::response_type& res) {
      res.set(http::field::server, "agentwire");
      if (!proto.empty()) res.set(http::field::sec_websocket_protocol, proto);
    }));
    ws_.async_accept(req, [self = shared_from_this()](beast::error_code ec) { self->onAccept(ec); });
  }

 private:
  void onAccept(beast::error_code ec) {
    if (ec) return;  // handshake failed: nothing was created for this connection
    if (!admission_.accepted) {
      websocket::close_reason cr(static_cast<websocket::close_code>(admission_.close_code), admission_.close_reason);
      ws_.async_close(cr, [self = shared_from_this()](beast::error_code) {});
      return;
    }
    auto session =
        std::make_shared<WsSession>(ws_.next_layer().release_socket(), std::move(admission_), handler_, limits_);
    session->run();
  }

  websocket::stream<beast::tcp_stream> ws_;
  WsAdmission admission_;
  WsHandler& handler_;
  const WsLimits& limits_;
};

}  // namespace

void startWsSession(beast::tcp_stream&& stream, http::request<http::string_body>&& req, WsAdmission admission,
                    WsHandler& handler, const WsLimits& limits) {
  beast::get_lowest_layer(stream).expires_never();  // the session's own timeouts take over
  auto h = std::make_shared<Handshake>(std::move(stream), std::move(admission), handler, limits);
  h->run(std::move(req));
}

}  // namespace agentwire::net
