#pragma once

#include "lifecycle/component.hpp"
#include "store/postgres/pg_connection.hpp"
#include "store/store.hpp"

#include <spdlog/logger.h>

#include <atomic>
#include <memory>

namespace agentwire::store {

// The store for several nodes: PostgreSQL through libpq, a small pool of connections.
// A component ("store"): start() connects and runs the schema migrations (versioned, under an
// advisory lock, so nodes starting together apply each one once); stop() closes the pool.
//
// The sequencer of a user's stream is its row in `user_streams`: a commit raises `head` by the
// number of the user's events in the batch (upsert ... RETURNING head) and gives them the seqs below
// it, in the transaction that stores them. Rows are locked in user-id order, so two nodes' batches
// cannot deadlock on each other; a serialization failure or deadlock is retried (up to 5 times).
//
// Errors never throw after start(): a lost connection, a database that refuses connections or is
// out of space is `unavailable` (the component turns unhealthy until a write succeeds again);
// anything else is `internal`.
class PostgresStore final : public Store, public lifecycle::Component {
 public:
  PostgresStore(std::string url, int pool_size, std::vector<std::string> dependencies);
  ~PostgresStore() override;
  // PostgreSQL ends a session of ours that stays idle inside a transaction longer than this (0 =
  // never), releasing its locks: a node paused (SIGSTOP, a VM freeze) in the middle of a commit
  // otherwise holds the rows of its users' streams and runs, and the node that takes over its runs
  // waits on them until it resumes. Half of node.lease_ms. Before start().
  void setIdleTransactionTimeout(int ms) { idle_tx_timeout_ms_ = ms; }

  void start() override;
  void stop() override;

  core::Result<Thread> createThread(const std::string& user_id, const std::string& title, bool system,
                                    const std::string& agent = {}, const std::string& on_busy = {}) override;
  core::Result<std::optional<Thread>> findThread(const std::string& thread_id) override;
  core::Result<std::vector<Thread>> listThreads(const std::string& user_id, int limit,
                                                const ThreadCursor& before) override;
  core::Result<int64_t> countThreads(const std::string& user_id) override;
  core::Result<bool> renameThread(const std::string& thread_id, const std::string& title) override;
  core::Result<ThreadDeletion> deleteThread(const std::string& thread_id, bool force) override;
  core::Result<std::vector<Message>> listMessages(const std::string& thread_id, int limit, int64_t before_ms) override;
  core::Result<CommitStats> commit(const WriteBatch& batch) override;
  core::Result<std::vector<StoredEvent>> eventsAfter(const std::string& user_id, int64_t after_seq, int limit) override;
  core::Result<std::vector<StoredEvent>> runEvents(const std::string& user_id, const std::string& run_id) override;
  core::Result<std::vector<StoredEvent>> threadEvents(const std::string& user_id,
                                                      const std::string& thread_id) override;
  core::Result<std::vector<std::pair<std::string, int64_t>>> streamHeads(
      const std::vector<std::string>& users) override;
  core::Result<StreamInfo> streamInfo(const std::string& user_id) override;
  core::Result<int64_t> pruneEvents(const std::string& user_id, int64_t keep_last, int64_t older_than_ms) override;
  core::Result<std::vector<std::pair<std::string, int64_t>>> unackedThreadsByUser(int limit) override;
  core::Result<bool> probeWrite() override;
  core::Result<std::vector<RunRecord>> unfinishedRuns(const std::string& node_id) override;
  core::Result<std::optional<RunRecord>> findRun(const std::string& run_id) override;
  core::Result<bool> addApproval(const Approval& approval) override;
  core::Result<std::optional<Approval>> findApproval(const std::string& approval_id) override;
  core::Result<std::optional<std::pair<bool, Approval>>> resolveApproval(const std::string& approval_id,
                                                                         const std::string& status,
                                                                         const std::string& reason,
                                                                         const std::string& by) override;
  core::Result<std::vector<Approval>> pendingApprovals(const std::string& user_id) override;
  core::Result<std::vector<Approval>> parkedApprovals(const std::string& node_id) override;
  core::Result<bool> markApprovalResumed(const std::string& approval_id) override;
  core::Result<int64_t> addTokenUsage(const std::string& user_id, const std::string& day, int64_t tokens) override;
  core::Result<int64_t> tokenUsage(const std::string& user_id, const std::string& day) override;
  core::Result<int64_t> pruneHistory(int64_t before_ms, const std::string& before_day) override;
  boost::json::object details() const override { return {{"backend", "postgres"}, {"pool_size", pool_size_}}; }
  core::Result<bool> acquireLease(const std::string& node_id, int64_t lease_ms) override;
  core::Result<bool> renewLease(const std::string& node_id, int64_t lease_ms) override;
  core::Result<std::vector<std::string>> claimExpiredLeases(const std::string& claimer, int64_t lease_ms) override;
  core::Result<bool> dropLease(const std::string& node_id) override;

  // Tests: empties every table (the schema stays).
  core::Result<bool> truncateForTest();

 private:
  template <typename T, typename F>
  core::Result<T> withConnection(const char* what, bool write, F&& body);
  void noteWrite(const core::Result<bool>& outcome, const char* what);

  std::string url_;
  int pool_size_;
  int idle_tx_timeout_ms_ = 0;
  std::shared_ptr<spdlog::logger> log_;
  std::unique_ptr<pg::Pool> pool_;
  std::atomic<bool> write_failing_{false};
};

}  // namespace agentwire::store
