#pragma once

#include "agents/agent.hpp"

#include <string>

namespace agentwire::agents {

// Talks to any OpenAI-compatible Chat Completions endpoint with streaming (SSE) and tool
// calling. Streamed content becomes agent_response_chunk. Tool calls become tool_executing /
// tool_completed: the tool runs locally from the registry, its result goes back to the model, and
// the loop continues until the model answers (at most `max_steps` requests).
// Errors end the run with agent_error: `upstream_error` (HTTP status != 200, the status and body
// in the message), `upstream_timeout` (connect timeout, or no byte for `idle_timeout_ms`),
// `upstream_protocol` (a malformed stream), `too_many_steps`.
// libcurl, off the I/O threads (the agent runs on a bridge worker); cancellation aborts the transfer.
class LlmAgent final : public Agent {
 public:
  struct Options {
    std::string base_url;  // e.g. https://api.openai.com/v1
    std::string api_key;
    std::string model = "gpt-4o-mini";
    int idle_timeout_ms = 30000;
    int max_steps = 8;
    std::string system_prompt = "You are a helpful assistant.";
  };

  explicit LlmAgent(Options options);
  const std::string& name() const override;
  std::string run(const RunInput& input, RunContext& ctx) override;

 private:
  Options options_;
};

}  // namespace agentwire::agents
