#include "agents/user_emitter.hpp"

#include "agents/agent.hpp"
#include "agents/chunk_rollup.hpp"
#include "delivery/delivery.hpp"

#include <algorithm>
#include <thread>

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
  // Only text deltas are paced: they are what a fast producer makes thousands of.
  if (type == "agent_response_chunk") paceByReader();
  return send(type, std::move(data), {});
}

void UserEmitter::paceByReader() const {
  if (pace_max_.count() <= 0 || !delivery_.readerBehind(ctx_.user_id)) return;
  // A reader behind catches up from the stream as its queue drains; the agent waits for it, checking
  // with a short backoff (this is rare: a client reading slower than the agent writes), and never
  // longer than pace_max_ (a reader that stops reading is cut off after ws.send_timeout_ms anyway).
  auto start = std::chrono::steady_clock::now();
  auto step = std::chrono::milliseconds(1);
  if (pacing_now_ != nullptr) ++*pacing_now_;
  while (delivery_.readerBehind(ctx_.user_id) && !(token_ != nullptr && token_->cancelled()) &&
         std::chrono::steady_clock::now() - start < pace_max_) {
    std::this_thread::sleep_for(step);
    step = std::min(step * 2, std::chrono::milliseconds(16));
  }
  if (pacing_now_ != nullptr) --*pacing_now_;
  if (paced_us_ != nullptr) {
    *paced_us_ +=
        std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - start).count();
  }
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
