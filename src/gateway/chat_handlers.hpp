#pragma once

#include "core/ids.hpp"

#include "analytics/record.hpp"
#include "core/config.hpp"
#include "core/result.hpp"
#include "gateway/message_router.hpp"

namespace agentwire::store {
class Store;
struct Thread;
}  // namespace agentwire::store
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

// Creates a thread for the user if they are under `max_threads` (the self-check's system user is not
// counted) and makes it known to delivery. Errors: thread_limit, store errors. Every way of making a
// thread goes through here (create_thread, a user_message without thread, AG-UI), so the cap holds.
core::Result<store::Thread> createUserThread(store::Store& store, delivery::Delivery& delivery, int max_threads,
                                             const std::string& user_id, const std::string& title,
                                             const std::string& agent = {}, const std::string& on_busy = {});

// Registers the protocol's client frames: ping, user_message, create_thread, list_threads,
// get_thread_history, resume, ack_events, stop_agent (docs/protocol.md).
void registerChatHandlers(MessageRouter& router, ChatServices services);

}  // namespace agentwire::gateway
