#pragma once

#include "lifecycle/component.hpp"
#include "store/sqlite/wal_checkpointer.hpp"
#include "store/store.hpp"

#include <spdlog/logger.h>

#include <functional>
#include <mutex>
#include <unordered_map>

struct sqlite3;
struct sqlite3_stmt;

namespace agentwire::store {

// The embedded default store: one SQLite file in WAL mode, one connection guarded by a mutex.
// A component: start() opens the file and creates the schema (idempotent); stop() closes it.
//
// Errors never throw after start(): SQLITE_FULL, SQLITE_IOERR, SQLITE_BUSY and the like come back
// as `unavailable` (the call may succeed later, e.g. once disk space returns), anything else as
// `internal`. A failed write also sets the component unhealthy with the reason (so the server is
// not ready) until a write succeeds again.
//
// One process owns the file (an flock on "<path>-lock"; a second process fails to start), so every
// unfinished run in it belongs to this process (unfinishedRuns ignores the node id). WAL
// checkpoints run on their own thread and connection (WalCheckpointer), never inside a commit.
class SqliteStore final : public Store, public lifecycle::Component {
 public:
  SqliteStore(std::string path, std::vector<std::string> dependencies);
  ~SqliteStore() override;

  // WAL with synchronous=NORMAL (false, the default): a committed transaction survives a crash of
  // the process but the last ones may be lost on power loss or an OS crash. FULL (true): every
  // commit is synced before it returns, so an acked message survives a power loss too. Before start().
  void setSyncFull(bool full) { sync_full_ = full; }
  // The writer connection's page cache, in MiB (SQLite allocates it as pages are read, up to this).
  // Before start().
  void setCacheMb(int mb) { cache_mb_ = mb; }
  // The writer connection's value of PRAGMA `name` (synchronous: 1 NORMAL, 2 FULL; cache_size:
  // negative = KiB). For tests.
  core::Result<int64_t> pragma(const std::string& name);

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
  boost::json::object details() const override { return {{"backend", "sqlite"}, {"path", path_}}; }

  // Tests: caps the database at `pages` pages (SQLite's max_page_count), so writes fail with
  // SQLITE_FULL as on a full disk; 0 lifts the cap.
  void limitPagesForTest(int64_t pages);
  WalCheckpointer::Counts checkpointCounts() const;

 private:
  // Runs `body` under the mutex; an SQLite failure inside becomes an Error (and rolls back an
  // open transaction). `write` marks calls whose failure makes the component unhealthy.
  template <typename T>
  core::Result<T> guarded(const char* what, bool write, const std::function<T()>& body);
  void exec(const char* sql);
  void closeLocked();
  sqlite3_stmt* prepared(const char* sql);  // cached for the connection's life; caller holds mutex_
  StreamInfo streamInfoLocked(const std::string& user_id);
  // Returns (newly acknowledged, of which on a stream that had acked before).
  std::pair<int64_t, int64_t> ackLocked(const std::string& user_id, int64_t seq);

  bool sync_full_ = false;
  int cache_mb_ = 16;
  std::string path_;
  std::shared_ptr<spdlog::logger> log_;
  mutable std::mutex mutex_;
  sqlite3* db_ = nullptr;
  int owner_lock_ = -1;
  std::unique_ptr<WalCheckpointer> checkpointer_;
  std::unordered_map<const char*, sqlite3_stmt*> statements_;
  bool write_failing_ = false;  // guarded by mutex_: one log line per episode
};

// Takes the flock on "<path>-lock" that a running store holds (a separate file: closing any other
// descriptor of the database itself would drop SQLite's own POSIX locks on it). Returns the
// descriptor (closing it releases the lock); throws when another process holds it.
int lockSqliteOwner(const std::string& path);

}  // namespace agentwire::store
