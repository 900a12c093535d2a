#pragma once

#include "net/http_server.hpp"

#include <cstddef>
#include <functional>

namespace agentwire::delivery {
class Delivery;
}

namespace agentwire::gateway {

class WsGateway;

// `GET /api/events`: the user's stream as server-sent events, for HTTP clients (EventSource and the
// like). Each event is `id: <seq>`, `event: <type>`, `data: <the WebSocket frame>`; frames without a
// seq (connection_established, resume_complete, resync_required, error) carry no id. `Last-Event-ID`
// (or `?last_event_id=`, with `?epoch=`) resumes exactly like the `resume` frame. Auth by Bearer
// header, or `?access_token=` for EventSource, which cannot set headers. It counts under
// ws.max_connections_per_user, and its backlog under the same bounds as a WebSocket's: a client that
// reads slowly catches up from the stream, one whose backlog passes ws.max_queue_bytes is cut off.
// A comment every `keepalive` keeps proxies from closing an idle stream.
struct EventStreamLimits {
  std::size_t max_queue_bytes = 4 << 20;
  std::chrono::milliseconds keepalive{15000};
  std::chrono::milliseconds send_timeout{30000};  // ws.send_timeout_ms: no write completing, cut off
};
void registerEventStream(net::HttpServer& server, delivery::Delivery& delivery, WsGateway& gateway,
                         EventStreamLimits limits, const std::function<bool()>& ready);

}  // namespace agentwire::gateway
