#pragma once

#include "net/http_server.hpp"

namespace agentwire::gateway {

class MessageRouter;
class WsGateway;

// The HTTP API (same JWT auth, same error codes as the WebSocket protocol):
//   GET  /auth/dev-token?user=NAME      dev mode only
//   GET  /api/threads                   POST /api/threads {title?}
//   GET  /api/threads/{id}/messages     POST /api/threads/{id}/messages {content, agent?}
// Each call goes through the same handlers as the WebSocket frames; POSTing a message has the
// same effect as a `user_message` (the run's events go to the user's stream).
void registerHttpApi(net::HttpServer& server, MessageRouter& router, WsGateway& gateway, bool dev_mode,
                     int dev_token_ttl_s, std::function<bool()> ready);

}  // namespace agentwire::gateway
