#pragma once

#include "agents/agent.hpp"

#include <string>

namespace agentwire::agents {

// Runs an external agent program (any language) per run and speaks JSON Lines with it.
//
// agentwire writes one line to the program's stdin and closes it:
//   {"type":"run","run_id":...,"thread_id":...,"user_id":...,"input":"the user's message"}
// The program writes one JSON object per line to stdout:
//   {"type":"agent_thinking","reasoning":"...","step":1}
//   {"type":"tool_executing","tool_call_id":"c1","tool_name":"search","args":{...}}
//   {"type":"tool_completed","tool_call_id":"c1","tool_name":"search","result":...,"duration_ms":12}
//   {"type":"agent_response_chunk","delta":"partial text"}
//   {"type":"final","content":"the answer"}        (ends the run: agent_completed)
//   {"type":"error","code":"...","message":"..."}   (ends the run: agent_error)
// Anything else (a line that is not a JSON object, an unknown type, a line over 1 MiB) kills the
// program and ends the run with agent_error{agent_protocol}. Exiting without a final line ends it
// with agent_error{agent_exited}. A program still running at the run's deadline or on stop_agent
// is killed (SIGKILL). stderr is passed through to agentwire's stderr.
class ProcessAgent final : public Agent {
 public:
  // `command` runs under /bin/sh -c.
  ProcessAgent(std::string name, std::string command);

  const std::string& name() const override { return name_; }
  std::string run(const RunInput& input, RunContext& ctx) override;

 private:
  std::string name_;
  std::string command_;
};

}  // namespace agentwire::agents
