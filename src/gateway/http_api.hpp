#pragma once

#include "net/http_server.hpp"

#include <functional>
#include <optional>
#include <string>

namespace agentwire::gateway {

class MessageRouter;
class WsGateway;

// The HTTP API (same JWT auth, same error codes as the WebSocket protocol):
//   GET  /auth/dev-token?user=NAME      dev mode only
//   GET  /api/threads?limit=&before=    POST /api/threads {title?, agent?}
//   GET  /api/threads/{id}/messages     POST /api/threads/{id}/messages {content, agent?}
// Each call goes through the same handlers as the WebSocket frames; POSTing a message has the
// same effect as a `user_message` (the run's events go to the user's stream).
// The user of an HTTP API request (Authorization: Bearer), or the reply to refuse it with:
// 503 not_ready (with Retry-After) before ready, 401 missing_token / invalid_token / token_expired.
struct ApiCaller {
  std::string user_id;
  std::optional<net::HttpReply> refusal;
};
// Past the user's rate (ws.max_messages_per_second, shared by every HTTP call of the user):
// 429 rate_limited with Retry-After.
// 503 not_ready with Retry-After: the store pool no longer takes work (the server is stopping).
inline constexpr const char* kShuttingDown = "the server is shutting down; retry on another node";
net::HttpReply shuttingDownReply();

ApiCaller authenticateApiRequest(const net::HttpRequest& req, WsGateway& gateway, const std::function<bool()>& ready);

void registerHttpApi(net::HttpServer& server, MessageRouter& router, WsGateway& gateway, bool dev_mode,
                     int dev_token_ttl_s, const std::function<bool()>& ready);

}  // namespace agentwire::gateway
