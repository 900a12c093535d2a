#pragma once

#include "agents/agent.hpp"

namespace agentwire::agents {

// Deterministic agent for demos and tests: thinks, calls the word_count tool on the input,
// streams its answer in chunks and completes. Emits every event kind of a successful run.
// Needs the built-in word_count tool in the registry.
class EchoAgent final : public Agent {
 public:
  explicit EchoAgent(std::string name = "echo") : name_(std::move(name)) {}
  const std::string& name() const override { return name_; }
  std::string run(const RunInput& input, RunContext& ctx) override;

 private:
  std::string name_;
};

}  // namespace agentwire::agents
