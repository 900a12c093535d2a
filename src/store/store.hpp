#pragma once

#include "core/result.hpp"

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace agentwire::store {

struct Thread {
  std::string id;
  std::string user_id;
  std::string title;
  int64_t created_ms = 0;
  bool system = false;  // self-check threads: never listed, never counted
  std::string agent;    // the thread's agent; empty = the configured default
  std::string on_busy;  // default on_busy of its messages ("reject", "interrupt"); empty = "enqueue"
};

struct Message {
  std::string id;
  std::string thread_id;
  std::string user_id;
  std::string role;  // user, agent
  std::string content;
  std::string run_id;
  int64_t created_ms = 0;
};

// One event of a user's durable stream.
struct StoredEvent {
  int64_t seq = 0;  // assigned by the store when the event is committed (see Store::commit)
  std::string user_id;
  std::string type;
  std::string thread_id;
  std::string run_id;
  int64_t ts_ms = 0;
  std::string data_json;  // the event's `data` object, serialized
  // Set on a run's lifecycle events (running; completed, error, stopped, interrupted): a terminal
  // status ends the run's record in the same commit.
  std::string run_status;
  // The run's fence: stored only while run_id is in flight (its record is there, its terminal event
  // not stored). A node that was paused, and whose runs another node ended as interrupted meanwhile,
  // cannot add events after that terminal event; two terminal events of one run cannot both land.
  bool requires_run_in_flight = false;
};

struct StreamInfo {
  std::string epoch;      // changes when history was lost
  int64_t last_seq = 0;   // highest seq appended
  int64_t first_seq = 1;  // lowest seq still retained
  int64_t acked_seq = 0;  // highest seq the user acknowledged
};

// A run in flight: stored with its user message (status "queued") and removed in the same commit
// as its terminal event (an event whose run_status is completed, error, stopped or interrupted).
// What is left at start was in flight when the process died.
struct RunRecord {
  std::string id;
  std::string user_id;
  std::string thread_id;
  std::string agent;
  std::string node_id;  // the node that executes it
  std::string status;
  int64_t created_ms = 0;
};

// A person's answer to a tool call that needs approval (agents.approval_required_tools). Stored
// when the run parks; the run's state to resume from is kept with it, so the run continues on any
// worker, or after a restart.
struct Approval {
  std::string id;
  std::string user_id;
  std::string thread_id;
  std::string run_id;
  std::string tool_call_id;
  std::string tool_name;
  std::string args_json;       // the tool call's arguments (a JSON object)
  std::string run_state_json;  // what the run needs to resume (the bridge's format)
  std::string node_id;         // the node where the run waits
  std::string status;          // pending | approved | denied | expired
  std::string reason;          // the person's, or why it expired
  std::string by;              // who resolved it: a connection id, "http", "timeout", ...
  int64_t created_ms = 0;
  int64_t expires_ms = 0;
  int64_t resolved_ms = 0;
  bool resumed = false;  // its run took up again after the answer
};

// A run status that ends the run (its record leaves the runs in flight).
inline bool endsRun(const std::string& run_status) {
  return run_status == "completed" || run_status == "error" || run_status == "stopped" || run_status == "interrupted";
}

// What the delivery writer commits in one transaction: all or none.
struct WriteBatch {
  std::vector<Message> messages;                      // ids and times set
  std::vector<RunRecord> runs;                        // new runs
  std::vector<StoredEvent> events;                    // in order per user; their seqs are assigned by commit
  std::vector<std::pair<std::string, int64_t>> acks;  // (user, cumulative seq); never moves backwards

  bool empty() const { return messages.empty() && runs.empty() && events.empty() && acks.empty(); }
  std::size_t size() const { return messages.size() + runs.size() + events.size() + acks.size(); }
};

// What a commit wrote.
struct CommitStats {
  std::size_t items = 0;
  // The seq given to each event of the batch, in the batch's order: each the next of its user's
  // stream, assigned in the same transaction that stores it (the one sequencer of a stream).
  // kFenced for an event not stored because its run had ended (see requires_run_in_flight).
  std::vector<int64_t> seqs;
  static constexpr int64_t kFenced = -1;
  std::size_t fenced = 0;
  int64_t newly_acked = 0;  // events the batch's acks acknowledged for the first time
  // The same two figures for streams whose user had acked before ("acking streams"): the
  // denominator and numerator of the delivery success ratio. Streams nobody acks (HTTP-only
  // users, the self-check) and a stream's history before its first ack are left out of both.
  int64_t appended_acking = 0;
  int64_t acked_acking = 0;
};

enum class ThreadDeletion { Deleted, NotFound, Busy };

// Where a page of a user's threads starts: threads strictly older than this (created_ms, id).
struct ThreadCursor {
  int64_t created_ms = 0;  // 0 = from the newest
  std::string id;
};

// Error codes of every call: `unavailable` when the storage cannot be used right now (disk full,
// I/O error, locked, connection lost): the same call may succeed later. `internal` for anything
// else (a broken invariant). Nothing throws once start() returned.
inline constexpr const char* kUnavailable = "unavailable";

// Durable storage of threads, messages, runs and per-user event streams.
// Implementations are thread-safe. Calls block on disk or network: they belong off the I/O threads.
class Store {
 public:
  virtual ~Store() = default;

  virtual core::Result<Thread> createThread(const std::string& user_id, const std::string& title, bool system,
                                            const std::string& agent = {}, const std::string& on_busy = {}) = 0;
  // nullopt when there is no such thread.
  virtual core::Result<std::optional<Thread>> findThread(const std::string& thread_id) = 0;
  // The user's threads, newest first, without system threads; at most `limit`, older than `before`.
  virtual core::Result<std::vector<Thread>> listThreads(const std::string& user_id, int limit,
                                                        const ThreadCursor& before) = 0;
  // How many (non-system) threads the user has.
  virtual core::Result<int64_t> countThreads(const std::string& user_id) = 0;
  // A new title; false when there is no such thread.
  virtual core::Result<bool> renameThread(const std::string& thread_id, const std::string& title) = 0;
  // Removes a thread with its messages, runs and approvals, in one transaction. Refused (Busy)
  // while the thread has a run in progress (a row in runs: queued, executing or parked on an
  // approval) unless `force`, which the self-check uses to clean up after itself. The user's
  // stream keeps the thread's events: they are history, and seqs are never reused.
  virtual core::Result<ThreadDeletion> deleteThread(const std::string& thread_id, bool force) = 0;

  // Oldest first; at most `limit` messages created before `before_ms` (0 = no bound).
  virtual core::Result<std::vector<Message>> listMessages(const std::string& thread_id, int limit,
                                                          int64_t before_ms) = 0;

  // The group commit of the delivery writer. Every event gets the next seq of its user's stream in
  // this transaction (events of one user keep their order in the batch), so two writers of one
  // stream (two nodes) can never give one seq twice or leave a gap.
  virtual core::Result<CommitStats> commit(const WriteBatch& batch) = 0;
  // Events with seq > after_seq, in order, at most `limit`.
  virtual core::Result<std::vector<StoredEvent>> eventsAfter(const std::string& user_id, int64_t after_seq,
                                                             int limit) = 0;
  // The retained events of one run of the user, in order. A scan of the user's retained stream (no
  // index on run_id, which every append would pay for): for API calls, never the event path.
  virtual core::Result<std::vector<StoredEvent>> runEvents(const std::string& user_id, const std::string& run_id) = 0;
  // The retained events of one thread of the user, in order; the same kind of scan as runEvents.
  virtual core::Result<std::vector<StoredEvent>> threadEvents(const std::string& user_id,
                                                              const std::string& thread_id) = 0;
  // The heads (last seq) of these users' streams; users without a stream are left out. One query:
  // how a node checks that its connections have not missed a commit of another node.
  virtual core::Result<std::vector<std::pair<std::string, int64_t>>> streamHeads(
      const std::vector<std::string>& users) = 0;
  // The user's stream; created (empty, with a new epoch) on first use.
  virtual core::Result<StreamInfo> streamInfo(const std::string& user_id) = 0;
  // Retention: deletes the user's events beyond the newest `keep_last` and those older than
  // `older_than_ms` (0 = no age bound); the newest event is always kept. Returns the new first_seq.
  virtual core::Result<int64_t> pruneEvents(const std::string& user_id, int64_t keep_last, int64_t older_than_ms) = 0;
  // Per user whose stream is acking (see CommitStats): how many threads have events past the
  // user's acknowledged seq. For the connection-consistency gauge (with users that have no live
  // connection). At most `limit` users.
  virtual core::Result<std::vector<std::pair<std::string, int64_t>>> unackedThreadsByUser(int limit) = 0;
  // A small real write (a heartbeat row), to learn whether writes succeed again after failures.
  virtual core::Result<bool> probeWrite() = 0;
  // Runs in flight (no terminal event stored) that `node_id` executes.
  virtual core::Result<std::vector<RunRecord>> unfinishedRuns(const std::string& node_id) = 0;
  // A run in flight, by id (nullopt once it ended or when unknown): where stop_agent finds the node
  // that executes it.
  virtual core::Result<std::optional<RunRecord>> findRun(const std::string& run_id) = 0;

  // Tool approvals (see Approval). Stores a new, pending one; the run's earlier approvals count as
  // taken up from now on (a run waits for one at a time, even if marking one failed before).
  virtual core::Result<bool> addApproval(const Approval& approval) = 0;
  virtual core::Result<std::optional<Approval>> findApproval(const std::string& approval_id) = 0;
  // The first answer wins: a pending approval takes `status` (approved, denied, expired), `reason`
  // and `by`; anything else is left as it is. Returns whether this call resolved it, and the
  // approval as it is now; nullopt when there is no such approval.
  virtual core::Result<std::optional<std::pair<bool, Approval>>> resolveApproval(const std::string& approval_id,
                                                                                 const std::string& status,
                                                                                 const std::string& reason,
                                                                                 const std::string& by) = 0;
  // The user's pending approvals, oldest first.
  virtual core::Result<std::vector<Approval>> pendingApprovals(const std::string& user_id) = 0;
  // Approvals whose run waits for them (or for taking up again after them) on `node_id`: not
  // resumed, their run still in flight. Oldest first.
  virtual core::Result<std::vector<Approval>> parkedApprovals(const std::string& node_id) = 0;
  // Its run took up again: after a restart it is not waited for anymore.
  virtual core::Result<bool> markApprovalResumed(const std::string& approval_id) = 0;
  // Tokens a user's runs used on a UTC day ("2026-11-30"), summed over every node: added when a run
  // ends (returns the day's new total), read to enforce agents.user_daily_token_budget.
  virtual core::Result<int64_t> addTokenUsage(const std::string& user_id, const std::string& day, int64_t tokens) = 0;
  virtual core::Result<int64_t> tokenUsage(const std::string& user_id, const std::string& day) = 0;
  // Housekeeping: deletes the approvals resolved before `before_ms` whose run no longer needs them
  // (taken up again, or ended), and the token counts of days before `before_day`. Returns the rows
  // deleted. Nothing else keeps these from growing for as long as the store lives.
  virtual core::Result<int64_t> pruneHistory(int64_t before_ms, const std::string& before_day) = 0;

  // Node leases, for several nodes on one database (the store's clock decides, so nodes' clocks
  // need not agree). A node holds a lease while it runs; when one expires, another node claims it
  // and ends the dead node's runs. The defaults are one process's: nothing to lease.
  //
  // Takes (or re-takes) the node's lease for `lease_ms`.
  virtual core::Result<bool> acquireLease(const std::string& /*node_id*/, int64_t /*lease_ms*/) { return true; }
  // Extends it; false when the node no longer has one (another node claimed it: its runs were ended).
  virtual core::Result<bool> renewLease(const std::string& /*node_id*/, int64_t /*lease_ms*/) { return true; }
  // The nodes (other than `claimer`) whose lease expired, each now held by `claimer` for
  // `lease_ms`: one claimant at a time, and a claimant that dies lets its claim expire in turn.
  virtual core::Result<std::vector<std::string>> claimExpiredLeases(const std::string& /*claimer*/,
                                                                    int64_t /*lease_ms*/) {
    return std::vector<std::string>{};
  }
  // Gives up a lease (a clean stop, or a takeover finished).
  virtual core::Result<bool> dropLease(const std::string& /*node_id*/) { return true; }

  // Convenience for tests and tools: appends events alone in one commit.
  core::Result<CommitStats> appendEvents(std::vector<StoredEvent> events) {
    WriteBatch b;
    b.events = std::move(events);
    return commit(b);
  }
};

}  // namespace agentwire::store
