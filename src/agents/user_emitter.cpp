#include "agents/user_emitter.hpp"

#include "agents/agent.hpp"
#include "delivery/delivery.hpp"

namespace agentwire::agents {

bool UserEmitter::abandoned() const {
  return token_ != nullptr && token_->abandoned();
}

core::Result<bool> UserEmitter::emit(const std::string& type, boost::json::object data) const {
  if (abandoned()) return core::Error{"run_abandoned", "the run was ended by another node"};
  if (type == "tool_executing") ++tool_calls_;
  return delivery_.deliver(ctx_.user_id, delivery::Event{type, ctx_.thread_id, ctx_.run_id, std::move(data), {}, true});
}

core::Result<bool> UserEmitter::emitLifecycle(const std::string& type, boost::json::object data,
                                              const std::string& run_status) const {
  if (abandoned()) return core::Error{"run_abandoned", "the run was ended by another node"};
  return delivery_.deliver(ctx_.user_id,
                           delivery::Event{type, ctx_.thread_id, ctx_.run_id, std::move(data), run_status, true});
}

}  // namespace agentwire::agents
