#pragma once

#include "agents/agent.hpp"

namespace agentwire::agents {

// Deterministic agent for demos and tests: thinks, calls the word_count tool on the input,
// streams its answer in chunks and completes. Emits every event kind of a successful run.
class EchoAgent final : public Agent {
 public:
  const std::string& name() const override;
  std::string run(const RunInput& input, UserEmitter& emitter, const CancelToken& cancel) override;
};

}  // namespace agentwire::agents
