#pragma once

#include "core/ids.hpp"

#include "analytics/record.hpp"
#include "core/config.hpp"
#include "gateway/message_router.hpp"

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

// The reserved user of the routing self-check; its threads are system threads.
inline constexpr const char* kSystemUser = core::kSystemUser;

struct ChatServices {
  store::Store& store;
  delivery::Delivery& delivery;
  agents::AgentWebSocketBridge& bridge;
  analytics::Recorder& recorder;
  core::Config::Limits limits;
};

// Registers the protocol's client frames: ping, user_message, create_thread, list_threads,
// get_thread_history, resume, ack_events, stop_agent (docs/protocol.md).
void registerChatHandlers(MessageRouter& router, ChatServices services);

}  // namespace agentwire::gateway
