#pragma once

#include "agents/run_journal.hpp"
#include "agents/tools.hpp"
#include "agents/user_emitter.hpp"

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <set>
#include <stdexcept>
#include <string>

namespace agentwire::agents {

struct RunInput {
  std::string content;  // the user's message
};

// Cooperative cancellation: agents poll cancelled() between steps (and pass it to blocking I/O
// as a deadline). It turns true on stop_agent, on shutdown, and when the run's deadline passes.
class CancelToken {
 public:
  using Clock = std::chrono::steady_clock;

  void cancel() { stopped_ = true; }
  // A newer message on the same thread asked to take over (on_busy "interrupt"): a stop that the
  // run reports with reason "interrupted".
  void interrupt() {
    interrupted_ = true;
    stopped_ = true;
  }
  bool interrupted() const { return interrupted_.load(); }
  // Another node ended this run (this node lost its lease): stop, and emit nothing more.
  void abandon() {
    abandoned_ = true;
    stopped_ = true;
  }
  bool abandoned() const { return abandoned_.load(); }
  void setDeadline(Clock::time_point d) { deadline_ = d; }
  bool stopRequested() const { return stopped_.load(); }
  bool timedOut() const { return Clock::now() >= deadline_; }
  bool cancelled() const { return stopRequested() || timedOut(); }
  Clock::time_point deadline() const { return deadline_; }

 private:
  std::atomic<bool> stopped_{false};
  std::atomic<bool> abandoned_{false};
  std::atomic<bool> interrupted_{false};
  Clock::time_point deadline_ = Clock::time_point::max();
};

// What a running agent may use: its emitter (bound to one user, thread and run), its cancel
// token, and the tools. Agents call tools through callTool (never tools.call directly), so that a
// tool that needs a person's approval parks the run, and wrap any other step whose result must not
// change when the run takes up again (a model completion) in step().
// Whether a tool needs a person's approval: named in `required`, or its MCP server is there as
// "server.*".
bool requiresApproval(const std::set<std::string>& required, const std::string& tool);

// What a run's model calls cost and how the last one ended, reported in agent_completed.
struct RunUsage {
  bool known = false;  // the agent reported usage (an LLM agent whose upstream sends it)
  int64_t input_tokens = 0;
  int64_t output_tokens = 0;
  std::string finish_reason = "stop";  // stop, length, tool_calls, content_filter, ...
};

struct RunContext {
  const UserEmitter& emitter;
  const CancelToken& cancel;
  const ToolRegistry& tools;
  RunJournal* journal = nullptr;                             // set by the bridge when runs can park (see RunJournal)
  const std::set<std::string>* approval_required = nullptr;  // agents.approval_required_tools
  // Set by an agent limited to some tools: a call of any other is refused with tool_not_allowed.
  const std::vector<std::string>* allowed_tools = nullptr;
  RunUsage usage;  // filled in by the agent

  // Runs a tool (tool_executing, tool_completed) and returns its result. A tool in
  // approval_required first parks the run (throws RunParked); when the run takes up again, the
  // tool runs if the person approved, and otherwise its result is the error approval_denied or
  // approval_expired (given to the agent like any tool error; tool_completed says so).
  core::Result<boost::json::value> callTool(const std::string& name, const boost::json::object& args,
                                            std::string call_id = {});
  // Does `fn` once per run: its result is recorded, and returned unchanged when the run replays.
  boost::json::value step(const std::function<boost::json::value()>& fn);
};

// Thrown by an agent to end its run with agent_error{code, message} (any other exception becomes
// code "internal").
class AgentError : public std::runtime_error {
 public:
  AgentError(std::string code, const std::string& message) : std::runtime_error(message), code_(std::move(code)) {}
  const std::string& code() const { return code_; }

 private:
  std::string code_;
};

// An agent produces the middle of a run through its emitter (thinking, tools, chunks) and
// returns its final answer. The runner emits agent_started before and agent_completed /
// agent_error / agent_stopped after, so an agent cannot break the first/last invariant.
// Throwing is allowed: the runner turns it into agent_error{internal}.
class Agent {
 public:
  virtual ~Agent() = default;
  virtual const std::string& name() const = 0;
  virtual std::string run(const RunInput& input, RunContext& ctx) = 0;
};

using AgentPtr = std::unique_ptr<Agent>;

// How an agent is shown to the people who pick one (list_agents, GET /api/agents).
struct AgentInfo {
  std::string kind = "echo";  // echo, llm, process
  std::string description;
  std::string provider;            // llm: openai or anthropic
  std::string model;               // llm
  std::vector<std::string> tools;  // the tools it may call ("server.*" for all of a server)
  bool all_tools = false;          // every tool in the registry, MCP tools included
};

}  // namespace agentwire::agents
