#pragma once

#include "gateway/event_stream.hpp"
#include "net/http_server.hpp"

#include <functional>

namespace agentwire::store {
class Store;
}
namespace agentwire::delivery {
class Delivery;
}
namespace agentwire::agents {
class AgentWebSocketBridge;
}

namespace agentwire::gateway {

class WsGateway;

// AG-UI (the Agent-User Interaction Protocol): `POST /agui` with a RunAgentInput body
// {threadId, runId, messages: [{id, role, content}], tools, state, context, forwardedProps}
// answers text/event-stream with RUN_STARTED, STEP_STARTED/FINISHED, TEXT_MESSAGE_START/CONTENT/END,
// TOOL_CALL_START/ARGS/END/RESULT and RUN_FINISHED or RUN_ERROR, mapped from the run's events
// (table in docs/protocol.md). Same JWT auth as the API. The run is an ordinary run of the
// user: stored, in the user's stream, visible to their WebSocket connections too. A tool approval
// is a CUSTOM event (name tool_approval_requested / tool_approval_resolved); the stream stays open
// while the run waits, with a comment line every limits.keepalive. A new thread counts against
// max_threads_per_user (409 thread_limit), as over the WebSocket.
void registerAgui(net::HttpServer& server, store::Store& store, delivery::Delivery& delivery,
                  agents::AgentWebSocketBridge& bridge, WsGateway& gateway, EventStreamLimits limits,
                  int max_threads_per_user, const std::function<bool()>& ready);

}  // namespace agentwire::gateway
