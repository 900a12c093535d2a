#pragma once

#include "agents/agent.hpp"
#include "agents/chunk_rollup.hpp"
#include "agents/user_emitter.hpp"
#include "analytics/record.hpp"
#include "lifecycle/component.hpp"
#include "monitoring/histogram.hpp"
#include "store/store.hpp"

#include <spdlog/logger.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string_view>
#include <thread>

namespace agentwire::delivery {
class Delivery;
}
namespace agentwire::bus {
class Bus;
}

namespace agentwire::agents {

// What a message does when its thread already has a run queued or executing on this node.
enum class OnBusy {
  Enqueue,    // its run starts once the earlier ones ended (the default)
  Reject,     // refused with thread_busy; nothing is stored
  Interrupt,  // the earlier runs end with agent_stopped {reason: "interrupted"}, then its run starts
};
// "enqueue" | "reject" | "interrupt"; nullopt for anything else.
std::optional<OnBusy> parseOnBusy(std::string_view s);

// The AgentWebSocketBridge: hands out one emitter per user run and runs agents off the I/O
// threads on a small worker pool with a bounded queue. A component ("agent_bridge"), healthy
// once started; there is no global instance.
//
// Limits: at most `max_running_per_user` runs of one user execute at once (others wait in the
// queue, and other users' runs go first); at most `max_queued_per_user` runs of one user and
// `max_queue` runs in all may be waiting; past either, startRun() fails with rate_limited. A run
// gets `run_timeout_ms`: its cancel token turns true at the deadline and the run ends with
// agent_error{timeout}.
//
// Runs of one thread never overlap on a node: a run waits in the queue while an earlier run of its
// thread executes (a new message's on_busy policy may instead refuse it or interrupt the earlier
// runs). Several nodes serialise only the runs each of them executes (docs/scaling.md).
//
// Every run emits exactly one agent_started first and exactly one of agent_completed,
// agent_error, agent_stopped last; the final answer is stored as a message of the thread.
class AgentWebSocketBridge final : public lifecycle::Component {
 public:
  struct Options {
    std::string node_id = "local";  // recorded with each run: the node that executes it
    int workers = 4;
    std::size_t max_queue = 1000;
    std::string default_agent = "echo";
    int max_running_per_user = 2;
    int max_queued_per_user = 16;
    int run_timeout_ms = 60000;
    // Several nodes on one database (0 = one node): this node holds a lease of `lease_ms`, renewed
    // every `lease_renew_ms`; a node whose lease expired is taken over (its runs end with
    // agent_error{interrupted}) by the first node that notices, within lease_ms + lease_renew_ms.
    int lease_ms = 0;
    int lease_renew_ms = 2000;
    // Text deltas of a run within this window (0 = off), up to chunk_max_bytes, become one
    // agent_response_chunk (ChunkRollup).
    int chunk_window_ms = 30;
    int chunk_max_bytes = 4096;
    // Tools an agent may call only once a person approved the call (tool_approval_requested); the
    // run parks meanwhile, holding no worker, for at most approval_timeout_ms.
    std::set<std::string> approval_required_tools{};
    int approval_timeout_ms = 600000;
    // Runs of one user parked at once: each holds a thread's place and its state in memory.
    int max_parked_per_user = 20;
    // A run's text deltas wait while a connection of its user is behind, up to this long each time
    // (0 = never): the agent is paced by its reader.
    int pace_max_ms = 30000;
    // Tokens a user's runs may use per UTC day, over every node (0 = no budget): past it new runs
    // are refused with quota_exceeded until the day ends.
    int64_t daily_token_budget = 0;
    // Resolved approvals no run needs anymore, and token counts of days, are deleted once older than
    // this (0 = kept for ever); checked soon after start, then hourly.
    int64_t history_retention_ms = int64_t{7} * 86400 * 1000;
  };

  AgentWebSocketBridge(delivery::Delivery& delivery, store::Store& store, Options options,
                       std::vector<std::string> dependencies);
  ~AgentWebSocketBridge() override;

  void addAgent(AgentPtr agent, AgentInfo info = {});           // before start()
  void setRecorder(analytics::Recorder& r) { recorder_ = &r; }  // before start()
  // Several nodes: stop_agent of a run that executes on another node is sent there (before start()).
  void setBus(bus::Bus& b);
  ToolRegistry& tools() { return tools_; }  // thread-safe; MCP servers add theirs when they come up

  void start() override;
  void stop() override;

  // An emitter bound to ctx's user, thread and run.
  std::unique_ptr<UserEmitter> createUserEmitter(const UserContext& ctx);

  // A user's message and the run it starts, from any entry point (WebSocket, HTTP API, AG-UI).
  struct Submission {
    UserContext ctx;  // user, thread (must exist and be the user's), run id, request id
    std::string content;
    std::string agent;  // empty = the configured default
    OnBusy on_busy = OnBusy::Enqueue;
  };
  // Accepting a message is one step: the run is admitted first (errors at once, nothing stored:
  // not_ready, unknown_agent, rate_limited, unavailable, thread_busy), then the message and its run are stored
  // in one commit and the run is queued. `accepted` is called exactly once: with the stored message
  // on the writer thread after the commit (the caller acks it there), or with the error. A run
  // whose message was stored always ends with a terminal event in the user's stream, even when it
  // cannot be queued after all (agent_error rate_limited) or the process dies (agent_error
  // interrupted on the next start). Never blocks (safe on I/O threads).
  using Accepted = std::function<void(const core::Result<store::Message>&)>;
  void submit(Submission s, Accepted accepted);

  // Queues a run. Errors: not_ready (bridge not started), rate_limited (queue full),
  // unknown_agent. ctx.run_id must be set.
  core::Result<std::string> startRun(const UserContext& ctx, std::string input, const std::string& agent_name);
  // A person's answer to one of the user's pending tool approvals; `by` names who answered (a
  // connection id, "http"). The first answer wins. The run takes up again on its node. Returns the
  // approval as resolved. Errors: approval_not_found (unknown, or another user's), approval_resolved
  // (answered before, or expired; the message says how), unavailable. Blocks on the store.
  core::Result<store::Approval> answerApproval(const std::string& user_id, const std::string& approval_id, bool approve,
                                               const std::string& reason, const std::string& by);
  // Runs waiting for a person's answer on this node.
  std::size_t parkedRuns() const;

  // Cooperative cancel, wherever the run executes. Errors: run_not_found (unknown, ended, or not
  // the user's), unavailable (the store cannot be read, or the bus to its node is down).
  core::Result<bool> stopRun(const std::string& user_id, const std::string& run_id);
  const std::string& nodeId() const { return options_.node_id; }

  struct LeaseStats {
    std::atomic<uint64_t> takeovers{0};  // nodes whose lease expired, taken over by this node
    std::atomic<uint64_t> lost{0};       // times this node found its own lease taken over
    std::atomic<uint64_t> renew_failures{0};
  };
  const LeaseStats& leaseStats() const { return lease_stats_; }
  // Time agents waited for a reader that was behind (UserEmitter pacing), in microseconds.
  uint64_t pacedMicros() const { return paced_us_.load(); }
  // Runs waiting for a reader right now.
  int pacingNow() const { return pacing_now_.load(); }

  std::size_t activeRuns() const;
  // Finished runs by (agent, outcome); outcome is completed, error, stopped, timeout or
  // interrupted (found unfinished at start: the process ended while they ran).
  std::map<std::pair<std::string, std::string>, uint64_t> runOutcomes() const;
  // Tokens the agents' model calls used, by (agent, "input" | "output").
  std::map<std::pair<std::string, std::string>, uint64_t> tokensUsed() const;
  // Run durations (seconds, start of execution to the last event) by agent.
  std::map<std::string, monitoring::Histogram::Snapshot> runDurations() const;
  // (user, thread) of every run queued or executing.
  std::vector<std::pair<std::string, std::string>> activeRunThreads() const;
  // The runs of a thread of the user queued, executing or parked on this node, oldest first:
  // (run id, "queued" | "running" | "awaiting_approval").
  std::vector<std::pair<std::string, std::string>> threadRuns(const std::string& user_id,
                                                              const std::string& thread_id) const;
  std::vector<std::string> agentNames() const;
  const std::string& defaultAgent() const { return options_.default_agent; }
  // The agents users may pick, by name (list_agents, GET /api/agents).
  std::vector<std::pair<std::string, AgentInfo>> agentInfos() const;
  bool hasAgent(const std::string& name) const { return agents_.count(name) > 0; }
  // Whether this node has a run of the thread queued or executing, counted from its message's
  // submission (before the store has its run): the store alone would miss a message in flight.
  bool threadBusy(const std::string& thread_id) const;

 private:
  struct Run {
    UserContext ctx;
    std::string input;
    Agent* agent = nullptr;
    std::shared_ptr<CancelToken> cancel;
    bool thread_released = false;           // its thread takes an on_busy "reject" message again (worker only)
    std::shared_ptr<RunJournal> journal{};  // when it can park on a tool approval
    bool resumed = false;                   // it parked before: agent_started was sent
    std::string approval_id{};              // resumed: the approval it waited for
    bool parked = false;                    // execute() parked it: the worker leaves its place alone
    // The tokens counted for it so far (in the store, the metric): a run that parked was counted then,
    // and taken up again it replays its recorded completions, whose usage is not counted twice.
    RunUsage counted{};
  };
  // A run waiting for a person's answer: it holds its thread's place, not a worker.
  struct Parked {
    Run run;
    std::string approval_id;
    int64_t expires_ms = 0;
    // Ended without an answer (stop_agent, an interrupting message): resolved "expired" by `by`.
    std::string end_by{};
    std::string end_reason{};
    int64_t retry_ms = 0;  // the store failed: tried again then
    // Its approval is stored and announced: until then park() owns it (nothing expires, ends or
    // takes it up), and an answer given meanwhile waits here for park() to take the run up.
    bool stored = false;
    // tool_approval_requested is in the stream: an answer's tool_approval_resolved may follow it.
    bool announced = false;
    std::optional<store::Approval> answered{};
  };
  // Admission of a new run (the checks of startRun without queueing it).
  core::Result<Agent*> admit(const std::string& user_id, const std::string& agent_name) const;
  // Queues an admitted run; `reserved`: its thread's count was taken by submit(). Caller holds mutex_.
  core::Result<std::string> enqueueLocked(const UserContext& ctx, std::string input, const std::string& agent_name,
                                          bool reserved);
  // Gives back one run of the thread (ended, or never queued); caller holds mutex_.
  void releaseThread(const std::string& thread_id);
  // Ends every run the store still has in flight on `node_id` with agent_error{interrupted}: the
  // process that ran them is gone. Returns how many.
  core::Result<std::size_t> interruptUnfinishedRuns(const std::string& node_id, const std::string& message,
                                                    const std::set<std::string>& parked = {});
  void leaseLoop();
  void renewAndTakeOver();
  // This node's lease was taken over: its runs were ended elsewhere; they stop here silently.
  void abandonRuns();
  void workerLoop();
  void execute(Run& run);
  // A run about to emit its terminal event no longer makes its thread busy for admission: a client
  // that sees that event may send the thread's next message at once, even with on_busy "reject"
  // (which would otherwise race the worker's return). Its next run still starts only after release().
  void releaseThreadOf(Run& run);
  // The rest of the run's place (its user's running count, its thread's turn, its stop token), once
  // its terminal event is queued, so that the thread's next run's events follow it. Idempotent.
  void release(Run& run);
  // The analytics row of a run, with who, where and which agent filled in.
  static analytics::Record runRecord(const Run& run, const char* kind);
  // quota_exceeded when the user's tokens of `day` reached the budget. Under mutex_.
  std::optional<core::Error> overBudgetLocked(const std::string& user_id, const std::string& day) const;
  // `usage` is the run's whole usage so far (recorded steps included): what was not counted yet is.
  void finish(Run& run, const UserEmitter& emitter, std::chrono::steady_clock::time_point t0,
              const std::string& outcome, const std::string& reason, const RunUsage* usage = nullptr);
  // The run asked for a tool that needs approval: stores the approval, parks the run (its worker
  // goes on to the next), emits tool_approval_requested.
  void park(Run& run, const UserEmitter& emitter, std::chrono::steady_clock::time_point t0, RunParked parked,
            const RunUsage& usage);
  // Adds what `total` has beyond run.counted to the metric and the user's day in the store.
  void countTokens(Run& run, const RunUsage& total);
  // Resolves a pending approval (first answer wins), announces it in the user's stream, and takes
  // its run up again. Errors as answerApproval.
  core::Result<store::Approval> resolve(const std::string& approval_id, const std::string& status,
                                        const std::string& reason, const std::string& by);
  // tool_approval_resolved {approval_id, tool_call_id, tool_name, decision, by, reason?} of a resolved
  // approval, in its user's stream.
  void announceResolved(const store::Approval& approval);
  // Puts a parked run back in front of the queue with its decision; one parked elsewhere is sent to its node.
  void resumeParked(const store::Approval& approval);
  // A parked run ends without an answer: its approval is resolved "expired" on the approvals thread.
  // Caller holds mutex_.
  void endParkedLocked(const std::string& run_id, const std::string& by, const std::string& reason);
  // Deletes the history no run needs (Options::history_retention_ms). On the approvals thread.
  void pruneHistory(int64_t now_ms);
  // At start: the runs this node parked before it stopped wait again (or take up again when answered meanwhile).
  core::Result<std::set<std::string>> loadParkedRuns();
  // Expires the pending approvals of a node that stopped (its runs are ended next).
  void expireApprovalsOf(const std::string& node_id);
  void approvalsLoop();  // expiries, ends and resumes sent by other nodes
  void dropParked(const std::string& approval_id);
  // The first queued run whose user is under the running limit; caller holds mutex_.
  std::optional<Run> takeRunnable();

  delivery::Delivery& delivery_;
  store::Store& store_;
  Options options_;
  std::shared_ptr<spdlog::logger> log_;
  std::map<std::string, AgentPtr> agents_;
  std::map<std::string, AgentInfo> infos_;
  ToolRegistry tools_;

  mutable std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<Run> queue_;
  std::map<std::string, std::pair<std::string, std::shared_ptr<CancelToken>>> runs_;  // run -> (user, token)
  std::map<std::string, std::pair<std::string, std::string>> run_threads_;            // run -> (user, thread)
  std::set<std::string> executing_;                                                   // runs taken by a worker
  std::map<std::string, std::unique_ptr<monitoring::Histogram>> durations_;           // by agent, made in addAgent
  std::map<std::string, int> running_per_user_;
  std::map<std::string, int> queued_per_user_;
  std::map<std::string, int> thread_runs_;  // thread -> runs admitted, queued or executing here
  std::set<std::string> running_threads_;   // threads with a run executing here
  std::map<std::pair<std::string, std::string>, uint64_t> outcomes_;
  std::map<std::pair<std::string, std::string>, uint64_t> tokens_;
  // Per user: (UTC day, tokens used that day) as last read from or written to the store. Admission
  // refuses from it without a store read (it may run on an I/O thread); a run's start reads the store
  // (other nodes' runs count too) before its agent runs.
  std::map<std::string, std::pair<std::string, int64_t>> usage_;
  analytics::Recorder* recorder_ = &analytics::NullRecorder::instance();
  bus::Bus* bus_ = nullptr;
  LeaseStats lease_stats_;
  std::atomic<uint64_t> paced_us_{0};
  std::atomic<int> pacing_now_{0};
  std::mutex lease_mutex_;
  std::condition_variable lease_cv_;
  bool lease_stopping_ = false;
  std::thread lease_thread_;
  bool accepting_ = false;
  bool stopping_ = false;
  std::vector<std::thread> workers_;
  std::unique_ptr<RollupTimer> rollup_timer_;  // when chunk_window_ms > 0
  std::map<std::string, Parked> parked_;       // by run id; guarded by mutex_
  std::deque<std::string> resume_requests_;    // approval ids from other nodes; guarded by mutex_
  std::condition_variable approvals_cv_;
  std::condition_variable announced_cv_;  // a parked run's tool_approval_requested was delivered
  bool approvals_stopping_ = false;
  std::thread approvals_thread_;
};

}  // namespace agentwire::agents
