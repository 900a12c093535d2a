#pragma once

#include "agents/agent.hpp"

#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace agentwire::agents {

namespace llm {
class Wire;
}

// Talks to an LLM with streaming (SSE) and tool calling, in one of two dialects: OpenAI's Chat
// Completions (`openai`: OpenAI and the many servers compatible with it) or Anthropic's Messages
// API (`anthropic`). Streamed text becomes agent_response_chunk. Tool calls become tool_executing /
// tool_completed: the tool runs locally from the registry, its result goes back to the model, and
// the loop continues until the model answers (at most `max_steps` requests). The usage the
// upstream reports is summed over the run, and the last call's finish reason kept (RunUsage).
// Errors end the run with agent_error: `upstream_error` (HTTP status != 200, the status and body
// in the message; or an error event in the stream), `upstream_timeout` (connect timeout, or no
// byte for `idle_timeout_ms`), `upstream_protocol` (a malformed stream), `too_many_steps`.
// libcurl, off the I/O threads (the agent runs on a bridge worker); cancellation aborts the transfer.
class LlmAgent final : public Agent {
 public:
  struct Options {
    std::string name = "llm";
    std::string provider = "openai";  // or "anthropic"
    std::string base_url;             // e.g. https://api.openai.com/v1, https://api.anthropic.com/v1
    std::string api_key;
    std::string model = "gpt-4o-mini";
    int idle_timeout_ms = 30000;
    int max_steps = 8;
    std::string system_prompt = "You are a helpful assistant.";
    std::optional<double> temperature;
    int max_tokens = 0;              // 0: the upstream's default (4096 for Anthropic, which requires one)
    std::vector<std::string> tools;  // the tools it may call ("server.*" for all of a server); empty = all
  };

  explicit LlmAgent(Options options);
  ~LlmAgent() override;
  const std::string& name() const override { return options_.name; }
  std::string run(const RunInput& input, RunContext& ctx) override;

 private:
  Options options_;
  std::unique_ptr<llm::Wire> wire_;
};

}  // namespace agentwire::agents
