#include "net/ws_session.hpp"

#include "core/ids.hpp"
#include "core/logging.hpp"

#include <deque>

namespace agentwire::net {
namespace {

class WsSession final : public WsConnection, public std::enable_shared_from_this<WsSession> {
 public:
  WsSession(beast::tcp_stream&& stream, WsAdmission admission, WsHandler& handler, const WsLimits& limits)
      : ws_(std::move(stream)),
        id_(core::newId("conn")),
        admission_(std::move(admission)),
        handler_(handler),
        limits_(limits) {}

  const std::string& id() const override { return id_; }
  const std::string& userId() const override { return admission_.user_id; }
  bool isOpen() const override { return open_.load(); }

  void run(http::request<http::string_body>&& req) {
    // Beast's own keep-alive pings: a ping after half the idle time, closed at the idle timeout.
    websocket::stream_base::timeout t{};
    t.handshake_timeout = std::chrono::seconds(10);
    t.idle_timeout = std::chrono::milliseconds(limits_.idle_timeout_ms);
    t.keep_alive_pings = true;
    ws_.set_option(t);
    ws_.set_option(websocket::stream_base::decorator([proto = admission_.subprotocol](websocket::response_type& res) {
      res.set(http::field::server, "agentwire");
      if (!proto.empty()) res.set(http::field::sec_websocket_protocol, proto);
    }));
    ws_.read_message_max(limits_.max_message_bytes);
    ws_.auto_fragment(false);
    ws_.async_accept(req, beast::bind_front_handler(&WsSession::onAccept, shared_from_this()));
  }

  bool send(std::shared_ptr<const std::string> frame) override {
    if (!open_.load()) return false;
    // Counted from here (not from the strand) so that a producer sees frames still in the post queue.
    backlog_frames_.fetch_add(1, std::memory_order_relaxed);
    backlog_bytes_.fetch_add(frame->size(), std::memory_order_relaxed);
    asio::post(ws_.get_executor(),
               [self = shared_from_this(), f = std::move(frame)]() mutable { self->enqueue(std::move(f)); });
    return true;
  }

  std::size_t queuedFrames() const override { return backlog_frames_.load(std::memory_order_relaxed); }
  std::size_t queuedBytes() const override { return backlog_bytes_.load(std::memory_order_relaxed); }

  void closeWith(int code, const std::string& reason) override { closeAfterFlush(code, reason); }

  void closeAfterFlush(int code, std::string reason) override {
    asio::post(ws_.get_executor(), [self = shared_from_this(), code, r = std::move(reason)]() mutable {
      if (self->close_requested_) return;
      self->close_requested_ = true;
      self->close_reason_ = websocket::close_reason(static_cast<websocket::close_code>(code), r);
      if (!self->writing_) self->doClose();
    });
  }

 private:
  void onAccept(beast::error_code ec) {
    if (ec) return;  // handshake failed: nothing was created for this connection
    if (!admission_.accepted) {
      websocket::close_reason cr(static_cast<websocket::close_code>(admission_.close_code), admission_.close_reason);
      ws_.async_close(cr, [self = shared_from_this()](beast::error_code) {});
      return;
    }
    open_ = true;
    setAttachment(std::move(admission_.attachment));
    handler_.onOpen(std::static_pointer_cast<WsConnection>(shared_from_this()));
    doRead();
  }

  void doRead() { ws_.async_read(buffer_, beast::bind_front_handler(&WsSession::onRead, shared_from_this())); }

  void onRead(beast::error_code ec, std::size_t) {
    if (ec) {
      // The code of the close we asked for (4001, 1012...) when the read failed because we cut the
      // connection after it; else the peer's close code (0 when it sent none: counted as 1006).
      int code = ec == websocket::error::message_too_big ? close_code::kTooBig
                 : close_requested_                      ? static_cast<int>(close_reason_.code)
                                                         : static_cast<int>(ws_.reason().code);
      return finish(code);
    }
    auto data = buffer_.cdata();
    handler_.onMessage(std::static_pointer_cast<WsConnection>(shared_from_this()),
                       std::string_view(static_cast<const char*>(data.data()), data.size()), ws_.got_text());
    buffer_.consume(buffer_.size());
    // An idle connection keeps no large buffer: drop capacity a big message left behind.
    if (buffer_.capacity() > 4096) buffer_ = beast::flat_buffer();
    if (open_.load()) doRead();
  }

  // A frame leaves the backlog: written, or dropped.
  void settled(const std::string& frame) {
    backlog_frames_.fetch_sub(1, std::memory_order_relaxed);
    backlog_bytes_.fetch_sub(frame.size(), std::memory_order_relaxed);
  }

  void enqueue(std::shared_ptr<const std::string> frame) {
    if (close_requested_ || !open_.load()) return settled(*frame);
    // A frame is accepted when the backlog in front of it is within the bound, so a backlog never
    // exceeds the bound by more than one frame and one large frame can always go out alone.
    if (!queue_.empty() && (queue_.size() >= limits_.max_queue_messages || queued_bytes_ >= limits_.max_queue_bytes)) {
      settled(*frame);
      return cutOff("the send queue is full");
    }
    queued_bytes_ += frame->size();
    queue_.push_back(std::move(frame));
    if (!writing_) doWrite();
  }

  // The peer does not keep up: close 4001 with only the frame in flight kept; the rest are in the
  // user's stream for resume.
  void cutOff(const char* why) {
    core::logger("ws")->warn("connection '{}' of user '{}' fell behind ({} frames, {} bytes queued: {}); closing 4001",
                             id_, admission_.user_id, queue_.size(), queued_bytes_, why);
    while (queue_.size() > (writing_ ? 1u : 0u)) {
      queued_bytes_ -= queue_.back()->size();
      settled(*queue_.back());
      queue_.pop_back();
    }
    close_requested_ = true;
    close_reason_ =
        websocket::close_reason(static_cast<websocket::close_code>(close_code::kSlowConsumer), "slow_consumer");
    forceCloseSoon();
    if (!writing_) doClose();
  }

  // Armed when writing starts after an idle spell; at each expiry, a write must have completed
  // since the last one, else the peer has stopped reading. One timer per busy spell, not per frame.
  void watchStall() {
    if (stall_timer_armed_ || limits_.send_timeout_ms <= 0) return;
    stall_timer_armed_ = true;
    writes_at_arm_ = writes_done_;
    if (!stall_timer_) stall_timer_ = std::make_unique<asio::steady_timer>(ws_.get_executor());
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

  void doWrite() {
    writing_ = true;
    watchStall();
    ws_.text(true);
    ws_.async_write(asio::buffer(*queue_.front()), beast::bind_front_handler(&WsSession::onWrite, shared_from_this()));
  }

  void onWrite(beast::error_code ec, std::size_t) {
    writing_ = false;
    if (ec) return finish(close_code::kInternal);
    ++writes_done_;
    queued_bytes_ -= queue_.front()->size();
    settled(*queue_.front());
    queue_.pop_front();
    if (!queue_.empty()) return doWrite();
    if (close_requested_) return doClose();
    if (drain_wanted_) {
      drain_wanted_ = false;
      handler_.onDrain(std::static_pointer_cast<WsConnection>(shared_from_this()));
    }
  }

 public:
  void notifyWhenDrained() override {
    asio::post(ws_.get_executor(), [self = shared_from_this()] {
      if (!self->open_.load() || self->close_requested_) return;
      if (self->queue_.empty() && !self->writing_) {
        self->handler_.onDrain(std::static_pointer_cast<WsConnection>(self));
      } else {
        self->drain_wanted_ = true;
      }
    });
  }

 private:
  void doClose() {
    if (close_sent_) return;
    close_sent_ = true;
    ws_.async_close(close_reason_,
                    [self = shared_from_this()](beast::error_code) { self->finish(self->close_reason_.code); });
  }

  // A peer that does not read may never let the close frame out: cut the TCP connection.
  void forceCloseSoon() {
    timer_ = std::make_unique<asio::steady_timer>(ws_.get_executor(), std::chrono::seconds(2));
    timer_->async_wait([self = shared_from_this()](beast::error_code ec) {
      if (ec) return;
      beast::get_lowest_layer(self->ws_).close();
    });
  }

  void finish(int code) {
    if (finished_) return;
    finished_ = true;
    bool was_open = open_.exchange(false);
    if (timer_) timer_->cancel();
    if (stall_timer_) stall_timer_->cancel();
    if (was_open) handler_.onClose(*this, code);
  }

  websocket::stream<beast::tcp_stream> ws_;
  beast::flat_buffer buffer_;
  std::string id_;
  WsAdmission admission_;
  WsHandler& handler_;
  const WsLimits& limits_;
  std::deque<std::shared_ptr<const std::string>> queue_;
  std::size_t queued_bytes_ = 0;
  bool writing_ = false;
  bool close_requested_ = false;
  bool close_sent_ = false;
  bool finished_ = false;
  bool drain_wanted_ = false;
  websocket::close_reason close_reason_;
  std::unique_ptr<asio::steady_timer> timer_;
  std::unique_ptr<asio::steady_timer> stall_timer_;
  bool stall_timer_armed_ = false;
  uint64_t writes_done_ = 0;
  uint64_t writes_at_arm_ = 0;
  std::atomic<bool> open_{false};
  std::atomic<std::size_t> backlog_frames_{0};
  std::atomic<std::size_t> backlog_bytes_{0};
};

}  // namespace

void startWsSession(beast::tcp_stream&& stream, http::request<http::string_body>&& req, WsAdmission admission,
                    WsHandler& handler, const WsLimits& limits) {
  beast::get_lowest_layer(stream).expires_never();  // the websocket timeouts take over
  auto s = std::make_shared<WsSession>(std::move(stream), std::move(admission), handler, limits);
  s->run(std::move(req));
}

}  // namespace agentwire::net
