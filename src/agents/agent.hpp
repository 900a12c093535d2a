#pragma once

#include "agents/user_emitter.hpp"

#include <atomic>
#include <memory>
#include <string>

namespace agentwire::agents {

struct RunInput {
  std::string content;  // the user's message
};

// Cooperative cancellation: agents poll it between steps.
class CancelToken {
 public:
  void cancel() { cancelled_ = true; }
  bool cancelled() const { return cancelled_.load(); }

 private:
  std::atomic<bool> cancelled_{false};
};

// An agent produces the middle of a run through its emitter (thinking, tools, chunks) and
// returns its final answer. The runner emits agent_started before and agent_completed /
// agent_error / agent_stopped after, so an agent cannot break the first/last invariant.
// Throwing is allowed: the runner turns it into agent_error{internal}.
class Agent {
 public:
  virtual ~Agent() = default;
  virtual const std::string& name() const = 0;
  virtual std::string run(const RunInput& input, UserEmitter& emitter, const CancelToken& cancel) = 0;
};

using AgentPtr = std::unique_ptr<Agent>;

}  // namespace agentwire::agents
