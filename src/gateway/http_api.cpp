#include "gateway/http_api.hpp"

#include "core/ids.hpp"
#include "delivery/in_process_connection.hpp"
#include "gateway/auth.hpp"
#include "gateway/message_router.hpp"
#include "gateway/ws_gateway.hpp"

#include <boost/json.hpp>

namespace agentwire::gateway {
namespace {

namespace json = boost::json;

int statusFor(const std::string& code) {
  if (code == "missing_token" || code == "invalid_token" || code == "token_expired") return 401;
  if (code == "forbidden") return 403;
  if (code == "thread_not_found" || code == "run_not_found") return 404;
  if (code == "rate_limited") return 429;
  if (code == "not_ready" || code == "unavailable") return 503;
  if (code == "thread_limit") return 409;
  if (code == "internal") return 500;
  return 400;
}

}  // namespace

ApiCaller authenticateApiRequest(const net::HttpRequest& req, const WsGateway& gateway,
                                 const std::function<bool()>& ready) {
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
  return {user.value(), std::nullopt};
}

void registerHttpApi(net::HttpServer& server, MessageRouter& router, WsGateway& gateway, bool dev_mode,
                     int dev_token_ttl_s, const std::function<bool()>& ready) {
  // Authenticates, runs one frame through the router, and maps the reply to HTTP.
  auto call = [&router, &gateway, ready](const net::HttpRequest& req, Frame frame, const std::string& want_type,
                                         int ok_status) -> net::HttpReply {
    auto caller = authenticateApiRequest(req, gateway, ready);
    if (caller.refusal) return std::move(*caller.refusal);
    // The handlers answer on a connection; this one only collects the reply. A user_message is
    // acked from the delivery writer once the message is committed, so this may wait that long.
    auto conn = std::make_shared<delivery::InProcessConnection>(core::newId("http"), caller.user_id);
    frame.id = "http";
    router.dispatch(ClientContext{conn, caller.user_id}, frame);
    auto f = conn->waitFor(
        [&](const json::object& o) {
          auto t = o.at("type").as_string();
          return t == want_type || t == "error";
        },
        std::chrono::seconds(10));
    if (!f) return net::jsonError(500, "internal", "no reply from handler");
    if (f->at("type").as_string() == "error") {
      const auto& d = f->at("data").as_object();
      std::string code(d.at("code").as_string());
      return net::jsonError(statusFor(code), code, std::string(d.at("message").as_string()));
    }
    return net::jsonReply(ok_status, f->at("data"));
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
    if (gateway.authority() == nullptr) return net::jsonError(503, "not_ready", "the server is not ready");
    auto it = req.query.find("user");
    if (it == req.query.end() || !validUserId(it->second)) {
      return net::jsonError(400, "invalid_user", "user must be 1-128 characters of [A-Za-z0-9_.@-]");
    }
    auto token = gateway.authority()->issue(it->second, std::chrono::seconds(dev_token_ttl_s));
    return net::jsonReply(200,
                          json::object{{"token", token}, {"user_id", it->second}, {"expires_in", dev_token_ttl_s}});
  });

  server.route("GET", "/api/threads", [call](const net::HttpRequest& req) {
    return call(req, Frame{"list_threads", "", {}}, "threads", 200);
  });
  server.route("POST", "/api/threads", [call, bodyObject](const net::HttpRequest& req) {
    auto body = bodyObject(req);
    if (!body) return net::jsonError(400, body.error().code, body.error().message);
    return call(req, Frame{"create_thread", "", std::move(body.value())}, "thread_created", 201);
  });
  // /api/threads/{id}/messages
  auto messages = [call, bodyObject](const net::HttpRequest& req) {
    const std::string prefix = "/api/threads/";
    std::string rest = req.path.substr(prefix.size());
    auto slash = rest.find('/');
    if (slash == std::string::npos || rest.substr(slash) != "/messages" || slash == 0) {
      return net::jsonError(404, "not_found", "no such endpoint: " + req.path);
    }
    std::string thread_id = rest.substr(0, slash);
    if (req.method == "GET" || req.method == "HEAD") {
      json::object data{{"thread_id", thread_id}};
      if (auto it = req.query.find("limit"); it != req.query.end()) data["limit"] = std::atoll(it->second.c_str());
      if (auto it = req.query.find("before"); it != req.query.end()) data["before"] = std::atoll(it->second.c_str());
      return call(req, Frame{"get_thread_history", "", std::move(data)}, "thread_history", 200);
    }
    auto body = bodyObject(req);
    if (!body) return net::jsonError(400, body.error().code, body.error().message);
    body->insert_or_assign("thread_id", thread_id);
    return call(req, Frame{"user_message", "", std::move(body.value())}, "ack", 202);
  };
  server.route("GET", "/api/threads/", messages, true);
  server.route("POST", "/api/threads/", messages, true);
}

}  // namespace agentwire::gateway
