#pragma once

#include "agents/agent.hpp"

#include <spdlog/logger.h>

#include <memory>
#include <string>
#include <vector>

namespace agentwire::agents {

// Runs an external agent program (any language) per run and speaks JSON Lines with it.
//
// agentwire writes one line to the program's stdin:
//   {"type":"run","run_id":...,"thread_id":...,"user_id":...,"input":"the user's message",
//    "tools":[{"name":"calculator","description":...,"parameters":{JSON Schema}}, ...]}
// and keeps stdin open for tool results. The program writes one JSON object per line to stdout:
//   {"type":"agent_thinking","reasoning":"...","step":1}
//   {"type":"tool_executing","tool_call_id":"c1","tool_name":"search","args":{...}}
//   {"type":"tool_completed","tool_call_id":"c1","tool_name":"search","result":...,"duration_ms":12}
//   {"type":"agent_response_chunk","delta":"partial text"}
//   {"type":"final","content":"the answer"}        (ends the run: agent_completed)
//   {"type":"error","code":"...","message":"..."}   (ends the run: agent_error)
//   {"type":"tool_call","tool_call_id":"c1","tool_name":"calculator","args":{...}}
//       agentwire runs the tool (tool_executing, tool_completed, and approval when it needs one)
//       and writes {"type":"tool_result","tool_call_id":"c1","result":...} (or "error":{code,
//       message}) to the program's stdin. A call that needs a person's approval parks the run: the
//       program is stopped, and when the person answers it runs again from its start; its calls
//       up to that one get their recorded results at once and its events are not sent twice, so
//       it must make the same calls in the same order (RunJournal).
// A program reading its stdin to the end (not line by line) would wait forever: read lines.
// Anything else (a line that is not a JSON object, an unknown type, a line over 1 MiB) kills the
// program and ends the run with agent_error{agent_protocol}. Exiting without a final line ends it
// with agent_error{agent_exited}. A program still running at the run's deadline or on stop_agent
// is killed (SIGKILL). What it writes to stderr goes to agentwire's log (logger `agent.<name>`,
// warning level, with the run's id), at most 64 KiB per run.
class ProcessAgent final : public Agent {
 public:
  // `command` runs under /bin/sh -c. `tools`: the tools it may call ("server.*" for all of an MCP
  // server); empty = all.
  ProcessAgent(std::string name, std::string command, std::vector<std::string> tools = {});

  const std::string& name() const override { return name_; }
  std::string run(const RunInput& input, RunContext& ctx) override;

 private:
  std::string name_;
  std::string command_;
  std::vector<std::string> tools_;
  std::shared_ptr<spdlog::logger> log_;
};

}  // namespace agentwire::agents
