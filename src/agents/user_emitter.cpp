#include "agents/user_emitter.hpp"

#include "agents/agent.hpp"
#include "agents/chunk_rollup.hpp"
#include "delivery/delivery.hpp"

namespace agentwire::agents {

bool UserEmitter::abandoned() const {
  return token_ != nullptr && token_->abandoned();
}

UserEmitter::~UserEmitter() {
  // Held text of a run that ended without its terminal event (abandoned) is not sent afterwards.
  if (rollup_) rollup_->close();
}

void UserEmitter::useRollup(std::shared_ptr<ChunkRollup> rollup, RollupTimer& timer) {
  rollup_ = std::move(rollup);
  timer_ = &timer;
}

core::Result<bool> UserEmitter::emit(const std::string& type, boost::json::object data) const {
  if (abandoned()) return core::Error{"run_abandoned", "the run was ended by another node"};
  if (journal_ != nullptr && journal_->replaying()) return true;
  if (type == "tool_executing") ++tool_calls_;
  return send(type, std::move(data), {});
}

core::Result<bool> UserEmitter::emitLifecycle(const std::string& type, boost::json::object data,
                                              const std::string& run_status) const {
  if (abandoned()) return core::Error{"run_abandoned", "the run was ended by another node"};
  return send(type, std::move(data), run_status);
}

core::Result<bool> UserEmitter::send(const std::string& type, boost::json::object data,
                                     const std::string& run_status) const {
  if (!rollup_) return deliver(type, std::move(data), run_status);
  auto sent = rollup_->send(type, std::move(data), run_status);
  if (sent.due) timer_->schedule(rollup_, *sent.due);
  return sent.result;
}

core::Result<bool> UserEmitter::deliver(const std::string& type, boost::json::object data,
                                        const std::string& run_status) const {
  return delivery_.deliver(ctx_.user_id,
                           delivery::Event{type, ctx_.thread_id, ctx_.run_id, std::move(data), run_status, true});
}

}  // namespace agentwire::agents
