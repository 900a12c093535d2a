#include "gateway/event_stream.hpp"

#include "core/ids.hpp"
#include "core/logging.hpp"
#include "delivery/delivery.hpp"
#include "gateway/http_api.hpp"
#include "gateway/ws_gateway.hpp"

#include <boost/json.hpp>

#include <charconv>

namespace agentwire::gateway {
namespace {

namespace json = boost::json;

// A live connection of delivery whose frames become server-sent events.
class SseConnection final : public delivery::Connection, public std::enable_shared_from_this<SseConnection> {
 public:
  SseConnection(std::string user, std::shared_ptr<net::StreamWriter> out, delivery::Delivery& delivery,
                WsGateway& gateway, std::size_t max_queue_bytes, std::shared_ptr<void> slot)
      : id_(core::newId("sse")),
        user_(std::move(user)),
        out_(std::move(out)),
        delivery_(delivery),
        gateway_(gateway),
        max_queue_bytes_(max_queue_bytes),
        slot_(std::move(slot)) {}

  const std::string& id() const override { return id_; }
  const std::string& userId() const override { return user_; }
  const std::shared_ptr<core::SerialPool::Lane>& lane() const { return lane_; }

  bool send(std::shared_ptr<const std::string> frame) override {
    if (cut_.load()) return false;
    if (out_->queuedBytes() + frame->size() > max_queue_bytes_) {
      // Delivery stops pushing at half the bound; past the whole of it the client has stopped reading.
      core::logger("sse")->warn("event stream '{}' of user '{}' fell behind ({} bytes queued); closing it", id_, user_,
                                out_->queuedBytes());
      cut_ = true;
      out_->abort();
      return false;
    }
    boost::system::error_code ec;
    auto v = json::parse(*frame, ec);
    std::string event;
    if (!ec && v.is_object()) {
      const auto& o = v.as_object();
      if (auto* seq = o.if_contains("seq"); seq != nullptr && seq->is_int64()) {
        event += "id: " + std::to_string(seq->as_int64()) + "\n";
      }
      if (auto* type = o.if_contains("type"); type != nullptr && type->is_string()) {
        event += "event: " + std::string(type->as_string()) + "\n";
      }
    }
    event += "data: " + *frame + "\n\n";  // one line: frames are compact JSON
    return out_->write(std::make_shared<const std::string>(std::move(event)));
  }

  std::size_t queuedFrames() const override { return out_->queuedChunks(); }
  std::size_t queuedBytes() const override { return out_->queuedBytes(); }

  void notifyWhenDrained() override {
    // The replay's next step reads the store: on this stream's lane of the store pool.
    out_->whenDrained([weak = weak_from_this()] {
      auto self = weak.lock();
      if (!self || !self->replaying.load()) return;
      self->gateway_.runOnLane(self->lane_, [self] { self->delivery_.pump(*self); });
    });
  }

  // EventSource reconnects by itself (with Last-Event-ID): the reason goes first, as an event.
  void closeWith(int code, const std::string& reason) override { endWith(code, reason); }
  void fail(const std::string& code, const std::string& message) { endWith(json::value(code), message); }

 private:
  void endWith(json::value code, const std::string& message) {
    json::object data{{"code", std::move(code)}, {"message", message}};
    send(std::make_shared<const std::string>(json::serialize(json::object{{"type", "error"}, {"data", data}})));
    out_->close();
  }

  std::string id_;
  std::string user_;
  std::shared_ptr<net::StreamWriter> out_;
  delivery::Delivery& delivery_;
  WsGateway& gateway_;
  std::size_t max_queue_bytes_;
  std::shared_ptr<void> slot_;  // the place under ws.max_connections_per_user, given back with this
  std::shared_ptr<core::SerialPool::Lane> lane_ = core::SerialPool::lane();
  std::atomic<bool> cut_{false};
};

std::optional<int64_t> parseSeq(const std::string& s) {
  int64_t v = -1;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc{} || p != s.data() + s.size() || v < 0) return std::nullopt;
  return v;
}

}  // namespace

void registerEventStream(net::HttpServer& server, delivery::Delivery& delivery, WsGateway& gateway,
                         EventStreamLimits limits, const std::function<bool()>& ready) {
  server.route("GET", "/api/events", [&delivery, &gateway, limits, ready](const net::HttpRequest& req) {
    net::HttpRequest authed = req;
    if (auto t = req.query.find("access_token"); req.header("authorization").empty() && t != req.query.end()) {
      authed.headers["authorization"] = "Bearer " + t->second;  // EventSource cannot set headers
    }
    auto caller = authenticateApiRequest(authed, gateway, ready);
    if (caller.refusal) return std::move(*caller.refusal);
    std::string last_id = req.header("last-event-id");
    if (auto q = req.query.find("last_event_id"); last_id.empty() && q != req.query.end()) last_id = q->second;
    std::optional<int64_t> resume_from;
    if (!last_id.empty()) {
      resume_from = parseSeq(last_id);
      if (!resume_from) return net::jsonError(400, "invalid_field", "Last-Event-ID must be a seq (an integer >= 0)");
    }
    std::string epoch;
    if (auto e = req.query.find("epoch"); e != req.query.end()) epoch = e->second;
    auto slot = gateway.holdConnectionSlot(caller.user_id);
    if (!slot) {
      return net::jsonError(429, "connection_limit",
                            "this user has the most connections allowed (ws.max_connections_per_user)");
    }
    net::HttpReply reply{200, "text/event-stream", {}, {{"X-Accel-Buffering", "no"}}, {}, {}};
    reply.stream = [&delivery, &gateway, limits, user = caller.user_id, resume_from, epoch,
                    slot = std::move(slot)](const std::shared_ptr<net::StreamWriter>& out) mutable {
      out->keepAlive(limits.keepalive, ": keepalive\n\n", limits.send_timeout);
      auto conn =
          std::make_shared<SseConnection>(user, out, delivery, gateway, limits.max_queue_bytes, std::move(slot));
      // Leaves delivery once the stream is over (the client left, or it was closed); the callback
      // holds the connection until then, a cycle through the stream that its end breaks.
      out->onClosed([&delivery, conn] { delivery.detach(*conn); });
      bool posted = gateway.runOnLane(conn->lane(), [&delivery, &gateway, conn, resume_from, epoch] {
        // Held until told what to send first, like a WebSocket: nothing is missed, nothing doubled.
        auto info = delivery.attach(conn, false);
        if (!info) return conn->fail(info.error().code, info.error().message);
        json::object established{{"type", "connection_established"},
                                 {"data", gateway.establishedData(conn->userId(), conn->id(), *info)}};
        conn->send(std::make_shared<const std::string>(json::serialize(established)));
        if (!resume_from) return delivery.goLive(*conn);
        auto r = delivery.resume(*conn, *resume_from, epoch, "sse");
        if (!r) conn->fail(r.error().code, r.error().message);
      });
      if (!posted) conn->fail("not_ready", kShuttingDown);
    };
    return reply;
  });
}

}  // namespace agentwire::gateway
