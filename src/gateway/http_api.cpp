#include "gateway/http_api.hpp"

#include "core/ids.hpp"
#include "delivery/connection.hpp"
#include "gateway/auth.hpp"
#include "gateway/message_router.hpp"
#include "gateway/ws_gateway.hpp"

#include <fmt/format.h>
#include <boost/json.hpp>

#include <atomic>
#include <charconv>
#include <optional>

namespace agentwire::gateway {
namespace {

namespace json = boost::json;

int statusFor(const std::string& code) {
  if (code == "missing_token" || code == "invalid_token" || code == "token_expired") return 401;
  if (code == "forbidden") return 403;
  if (code == "thread_not_found" || code == "run_not_found" || code == "approval_not_found") return 404;
  if (code == "rate_limited" || code == "quota_exceeded") return 429;
  if (code == "not_ready" || code == "unavailable") return 503;
  if (code == "thread_limit" || code == "thread_busy" || code == "approval_resolved") return 409;
  if (code == "internal") return 500;
  return 400;
}

// A query parameter that must be an integer goes into `data`; anything else is refused with 400
// invalid_field, never read as 0 (which would be a valid, different request).
std::optional<net::HttpReply> intQuery(const net::HttpRequest& req, const char* name, json::object& data) {
  auto it = req.query.find(name);
  if (it == req.query.end()) return std::nullopt;
  const std::string& text = it->second;
  int64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc{} || end != text.data() + text.size()) {
    return net::jsonError(400, "invalid_field", fmt::format("{} must be an integer", name));
  }
  data[name] = value;
  return std::nullopt;
}

}  // namespace

net::HttpReply shuttingDownReply() {
  auto r = net::jsonError(503, "not_ready", kShuttingDown);
  r.headers.emplace_back("Retry-After", "1");
  return r;
}

ApiCaller authenticateApiRequest(const net::HttpRequest& req, WsGateway& gateway, const std::function<bool()>& ready) {
  if (!ready() || gateway.authority() == nullptr) {
    auto r = net::jsonError(503, "not_ready", "the server is not ready");
    r.headers.emplace_back("Retry-After", "1");
    return {{}, std::move(r)};
  }
  auto token = extractToken(req);
  if (!token || token->via_subprotocol) {
    return {{}, net::jsonError(401, "missing_token", "send Authorization: Bearer <jwt>")};
  }
  auto user = gateway.authority()->verify(token->token);
  if (!user) return {{}, net::jsonError(401, user.error().code, user.error().message)};
  if (!gateway.allowApiCall(user.value())) {
    auto r = net::jsonError(429, "rate_limited", "too many requests for this user; retry later");
    r.headers.emplace_back("Retry-After", "1");
    return {{}, std::move(r)};
  }
  return {user.value(), std::nullopt};
}

namespace {

// The reply side of an HTTP API call: takes the handler's frames and answers the request with
// the first one that is the awaited type or an error. Lives as long as a handler or the writer
// (whose commit callback sends the ack) holds it; answers once.
class ReplyConnection final : public delivery::Connection {
 public:
  ReplyConnection(std::string user, std::string want, int ok_status, net::Respond respond)
      : id_(core::newId("http")),
        user_(std::move(user)),
        want_(std::move(want)),
        ok_status_(ok_status),
        respond_(std::move(respond)) {}

  const std::string& id() const override { return id_; }
  const std::string& userId() const override { return user_; }

  bool send(std::shared_ptr<const std::string> frame) override {
    if (answered_.load()) return false;
    boost::system::error_code ec;
    auto v = json::parse(*frame, ec);
    if (ec || !v.is_object()) return true;
    const auto& f = v.as_object();
    auto* type = f.if_contains("type");
    if (type == nullptr || !type->is_string()) return true;
    bool error = type->as_string() == "error";
    if (!error && type->as_string() != want_) return true;
    if (answered_.exchange(true)) return false;
    const auto& data = f.at("data");
    if (error) {
      std::string code(data.at("code").as_string());
      auto reply = net::jsonError(statusFor(code), code, std::string(data.at("message").as_string()));
      if (code == "unavailable" || code == "not_ready" || code == "rate_limited") {
        reply.headers.emplace_back("Retry-After", "1");
      }
      respond_(std::move(reply));
    } else {
      respond_(net::jsonReply(ok_status_, data));
    }
    return true;
  }

 private:
  std::string id_;
  std::string user_;
  std::string want_;
  int ok_status_;
  net::Respond respond_;
  std::atomic<bool> answered_{false};
};

}  // namespace

void registerHttpApi(net::HttpServer& server, MessageRouter& router, WsGateway& gateway, bool dev_mode,
                     int dev_token_ttl_s, const std::function<bool()>& ready) {
  // Authenticates, runs one frame through the router, and answers with its reply when it comes:
  // a user_message is acked from the delivery writer once it is durable, and no I/O thread waits
  // for that (the reply is deferred).
  auto call = [&router, &gateway, ready](const net::HttpRequest& req, Frame frame, const std::string& want_type,
                                         int ok_status) -> net::HttpReply {
    auto caller = authenticateApiRequest(req, gateway, ready);
    if (caller.refusal) return std::move(*caller.refusal);
    net::HttpReply reply;
    reply.deferred = [&router, &gateway, user = caller.user_id, frame = std::move(frame), want_type,
                      ok_status](net::Respond respond) mutable {
      auto conn = std::make_shared<ReplyConnection>(user, want_type, ok_status, respond);
      frame.id = "http";
      // Handlers may read or write the store: on the store pool, not on this I/O thread.
      bool posted = gateway.runOffIoThread([&router, conn, user, frame = std::move(frame)] {
        router.dispatch(ClientContext{conn, user}, frame);
      });
      if (!posted) respond(shuttingDownReply());
    };
    return reply;
  };

  auto bodyObject = [](const net::HttpRequest& req) -> core::Result<json::object> {
    if (req.body.empty()) return json::object{};
    boost::system::error_code ec;
    auto v = json::parse(req.body, ec);
    if (ec || !v.is_object()) return core::Error{"invalid_json", "body must be a JSON object"};
    return std::move(v.as_object());
  };

  server.route("GET", "/auth/dev-token", [&gateway, dev_mode, dev_token_ttl_s](const net::HttpRequest& req) {
    if (!dev_mode) return net::jsonError(403, "dev_mode_disabled", "dev tokens are only issued in dev mode");
    // A page whose name was rebound to 127.0.0.1 (DNS rebinding) sends its own name as Host.
    if (!loopbackHostHeader(req.header("host"))) {
      return net::jsonError(403, "forbidden_host", "dev tokens are only issued to requests for a loopback host name");
    }
    if (gateway.authority() == nullptr) return net::jsonError(503, "not_ready", "the server is not ready");
    auto it = req.query.find("user");
    if (it == req.query.end() || !validUserId(it->second)) {
      return net::jsonError(400, "invalid_user", "user must be 1-128 characters of [A-Za-z0-9_.@-]");
    }
    auto token = gateway.authority()->issue(it->second, std::chrono::seconds(dev_token_ttl_s));
    return net::jsonReply(200,
                          json::object{{"token", token}, {"user_id", it->second}, {"expires_in", dev_token_ttl_s}});
  });

  server.route("GET", "/api/agents", [call](const net::HttpRequest& req) {
    return call(req, Frame{"list_agents", "", json::object{}}, "agents", 200);
  });
  server.route("GET", "/api/threads", [call](const net::HttpRequest& req) {
    json::object data;
    if (auto bad = intQuery(req, "limit", data)) return std::move(*bad);
    if (auto it = req.query.find("before"); it != req.query.end()) data["before"] = it->second;
    return call(req, Frame{"list_threads", "", std::move(data)}, "threads", 200);
  });
  server.route("POST", "/api/threads", [call, bodyObject](const net::HttpRequest& req) {
    auto body = bodyObject(req);
    if (!body) return net::jsonError(400, body.error().code, body.error().message);
    return call(req, Frame{"create_thread", "", std::move(body.value())}, "thread_created", 201);
  });
  // /api/threads/{id}/messages, GET /api/threads/{id}/runs
  auto messages = [call, bodyObject](const net::HttpRequest& req) {
    const std::string prefix = "/api/threads/";
    std::string rest = req.path.substr(prefix.size());
    auto slash = rest.find('/');
    bool runs = slash != std::string::npos && rest.substr(slash) == "/runs" && req.method != "POST";
    if (slash == std::string::npos || (rest.substr(slash) != "/messages" && !runs) || slash == 0) {
      return net::jsonError(404, "not_found", "no such endpoint: " + req.path);
    }
    std::string thread_id = rest.substr(0, slash);
    if (runs) return call(req, Frame{"list_runs", "", {{"thread_id", thread_id}}}, "runs", 200);
    if (req.method == "GET" || req.method == "HEAD") {
      json::object data{{"thread_id", thread_id}};
      if (auto bad = intQuery(req, "limit", data)) return std::move(*bad);
      if (auto bad = intQuery(req, "before", data)) return std::move(*bad);
      return call(req, Frame{"get_thread_history", "", std::move(data)}, "thread_history", 200);
    }
    auto body = bodyObject(req);
    if (!body) return net::jsonError(400, body.error().code, body.error().message);
    body->insert_or_assign("thread_id", thread_id);
    return call(req, Frame{"user_message", "", std::move(body.value())}, "ack", 202);
  };
  server.route("GET", "/api/threads/", messages, true);
  server.route("POST", "/api/threads/", messages, true);
  // PATCH /api/threads/{id} renames, DELETE /api/threads/{id} deletes.
  auto thread = [call, bodyObject](const net::HttpRequest& req) {
    std::string thread_id = req.path.substr(std::string("/api/threads/").size());
    if (thread_id.empty() || thread_id.find('/') != std::string::npos) {
      return net::jsonError(404, "not_found", "no such endpoint: " + req.path);
    }
    if (req.method == "DELETE") {
      return call(req, Frame{"delete_thread", "", {{"thread_id", thread_id}}}, "thread_deleted", 200);
    }
    auto body = bodyObject(req);
    if (!body) return net::jsonError(400, body.error().code, body.error().message);
    body->insert_or_assign("thread_id", thread_id);
    return call(req, Frame{"rename_thread", "", std::move(body.value())}, "thread_renamed", 200);
  };
  server.route("PATCH", "/api/threads/", thread, true);
  server.route("DELETE", "/api/threads/", thread, true);
  server.route(
      "GET", "/api/runs/",
      [call](const net::HttpRequest& req) {
        std::string run_id = req.path.substr(std::string("/api/runs/").size());
        if (run_id.empty() || run_id.find('/') != std::string::npos) {
          return net::jsonError(404, "not_found", "no such endpoint: " + req.path);
        }
        return call(req, Frame{"get_run", "", {{"run_id", run_id}}}, "run", 200);
      },
      true);
  server.route("GET", "/api/approvals", [call](const net::HttpRequest& req) {
    return call(req, Frame{"list_approvals", "", {}}, "approvals", 200);
  });
  server.route(
      "POST", "/api/approvals/",
      [call, bodyObject](const net::HttpRequest& req) {
        std::string approval_id = req.path.substr(std::string("/api/approvals/").size());
        if (approval_id.empty() || approval_id.find('/') != std::string::npos) {
          return net::jsonError(404, "not_found", "no such endpoint: " + req.path);
        }
        auto body = bodyObject(req);
        if (!body) return net::jsonError(400, body.error().code, body.error().message);
        body->insert_or_assign("approval_id", approval_id);
        return call(req, Frame{"approve_tool", "", std::move(body.value())}, "approval_recorded", 200);
      },
      true);
}

}  // namespace agentwire::gateway
