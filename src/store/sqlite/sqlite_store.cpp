#include "store/sqlite/sqlite_store.hpp"

#include "store/sqlite/sqlite_schema.hpp"
#include "store/sqlite/wal_frame_vfs.hpp"

#include "core/ids.hpp"
#include "core/logging.hpp"

#include <fmt/format.h>
#include <sqlite3.h>

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <map>
#include <stdexcept>

namespace agentwire::store {
namespace {

// `runs` holds the runs in flight only: a row is inserted with the run's message and deleted in the
// commit that stores the run's terminal event, so the table stays as small as the work in progress
// (no index to maintain, and the scan at startup reads only what a crash left). Finished runs are
// in their users' streams (and in analytics).

const std::string kQueued = "queued";

// An SQLite failure inside SqliteStore; turned into an Error at the public boundary (guarded()).
struct SqliteFailure : std::runtime_error {
  SqliteFailure(int rc, const std::string& what) : std::runtime_error(what), code(rc) {}
  int code;
};

// Failures that go away by themselves: space, I/O, locks, memory.
bool transient(int rc) {
  switch (rc & 0xff) {
    case SQLITE_FULL:
    case SQLITE_IOERR:
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
    case SQLITE_CANTOPEN:
    case SQLITE_READONLY:
    case SQLITE_NOMEM:
    case SQLITE_PROTOCOL: return true;
    default: return false;
  }
}

// A borrowed prepared statement (from SqliteStore's cache) with bind helpers; reset on scope
// exit so the next user finds it clean.
class Stmt {
 public:
  Stmt(sqlite3* db, sqlite3_stmt* s) : db_(db), s_(s) {}
  ~Stmt() { reset(); }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;

  // A named string outlives the statement's use of it (every bind is followed by its step in the
  // same scope, and reset() drops the bindings): SQLite reads it in place instead of copying it,
  // which was about a tenth of the allocations per stored event.
  Stmt& bind(int i, const std::string& v) {
    sqlite3_bind_text(s_, i, v.data(), static_cast<int>(v.size()), SQLITE_STATIC);
    return *this;
  }
  // A temporary dies before the step: SQLite keeps its own copy. `const&&` catches const
  // temporaries too (e.g. `cond ? std::string("x") : some_const_string`), which `&&` would leave
  // to the in-place overload above.
  Stmt& bind(int i, const std::string&& v) {
    sqlite3_bind_text(s_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
    return *this;
  }
  Stmt& bind(int i, int64_t v) {
    sqlite3_bind_int64(s_, i, v);
    return *this;
  }
  bool step() {
    int rc = sqlite3_step(s_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    throw SqliteFailure(sqlite3_extended_errcode(db_), sqlite3_errmsg(db_));
  }
  std::string text(int i) const {
    auto p = sqlite3_column_text(s_, i);
    return p ? std::string(reinterpret_cast<const char*>(p), sqlite3_column_bytes(s_, i)) : std::string{};
  }
  int64_t integer(int i) const { return sqlite3_column_int64(s_, i); }
  bool null(int i) const { return sqlite3_column_type(s_, i) == SQLITE_NULL; }
  void reset() {
    sqlite3_reset(s_);
    sqlite3_clear_bindings(s_);
  }

 private:
  sqlite3* db_;
  sqlite3_stmt* s_ = nullptr;
};

Thread readThread(const Stmt& s) {
  return Thread{s.text(0), s.text(1), s.text(2), s.integer(3), s.integer(4) != 0, s.text(5), s.text(6)};
}

// Columns: seq, user_id, type, thread_id, run_id, ts_ms, data.
StoredEvent readEvent(const Stmt& s) {
  return StoredEvent{s.integer(0), s.text(1), s.text(2), s.text(3), s.text(4), s.integer(5), s.text(6), {}};
}

RunRecord readRun(const Stmt& s) {
  return RunRecord{s.text(0), s.text(1), s.text(2), s.text(3), s.text(4), s.text(5), s.integer(6)};
}

// A literal (statements are cached by their literal's address), in readApproval's column order.
#define AW_SELECT_APPROVALS                                                                                        \
  "SELECT id, user_id, thread_id, run_id, tool_call_id, tool_name, args, run_state, node_id, status, reason, by, " \
  "created_ms, expires_ms, resolved_ms, resumed FROM approvals "
Approval readApproval(const Stmt& s) {
  return Approval{s.text(0),     s.text(1),     s.text(2),     s.text(3),         s.text(4),  s.text(5),
                  s.text(6),     s.text(7),     s.text(8),     s.text(9),         s.text(10), s.text(11),
                  s.integer(12), s.integer(13), s.integer(14), s.integer(15) != 0};
}

// SQLite counts the memory it allocates (sqlite3_memory_used) under one process-wide mutex, taken
// on every malloc and free of every connection; nothing here reads the count. Only possible before
// SQLite initialises, so it takes effect when the store is the first to use SQLite (as in the
// server); otherwise it is a no-op.
void disableMemoryStatistics() {
  static std::once_flag once;
  std::call_once(once, [] { sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0); });
}

}  // namespace

// An flock on "<path>-lock", held while the store is open (a separate file: closing any other
// descriptor of the database itself would drop SQLite's own POSIX locks on it).
int lockSqliteOwner(const std::string& path) {
  std::string lock_path = path + "-lock";
  int fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) throw std::runtime_error(fmt::format("cannot open '{}': {}", lock_path, std::strerror(errno)));
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    int err = errno;
    ::close(fd);
    if (err == EWOULDBLOCK) {
      throw std::runtime_error(fmt::format("the SQLite database '{}' is in use by another agentwire process", path));
    }
    throw std::runtime_error(fmt::format("cannot lock '{}': {}", lock_path, std::strerror(err)));
  }
  return fd;
}

SqliteStore::SqliteStore(std::string path, std::vector<std::string> dependencies)
    : Component("store", std::move(dependencies)), path_(std::move(path)), log_(core::logger("store")) {}

SqliteStore::~SqliteStore() {
  stop();
}

template <typename T>
core::Result<T> SqliteStore::guarded(const char* what, bool write, const std::function<T()>& body) {
  std::lock_guard lock(mutex_);
  if (db_ == nullptr) return core::Error{kUnavailable, "the store is not open"};
  try {
    T out = body();
    if (write && write_failing_) {
      write_failing_ = false;
      log_->info("SQLite writes succeed again");
      setHealth(lifecycle::HealthState::Healthy);
    }
    return out;
  } catch (const SqliteFailure& f) {
    // A failed statement inside a transaction leaves it open: roll it back so the next call
    // starts clean (a no-op when SQLite already rolled back).
    if (sqlite3_get_autocommit(db_) == 0) sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    bool retry_later = transient(f.code);
    std::string message = fmt::format("{} failed: {} (SQLite code {})", what, f.what(), f.code);
    if (write && retry_later) {
      if (!write_failing_) {
        write_failing_ = true;
        log_->error("SQLite writes fail: {}; the server is not ready until a write succeeds", message);
      }
      setHealth(lifecycle::HealthState::Unhealthy, "writes fail: " + std::string(f.what()));
    }
    return core::Error{retry_later ? kUnavailable : "internal", message};
  }
}

sqlite3_stmt* SqliteStore::prepared(const char* sql) {
  // Keyed by the literal's address: every call site passes a string literal.
  auto it = statements_.find(sql);
  if (it != statements_.end()) return it->second;
  sqlite3_stmt* st = nullptr;
  int rc = sqlite3_prepare_v3(db_, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, nullptr);
  if (rc != SQLITE_OK) throw SqliteFailure(rc, fmt::format("prepare: {}", sqlite3_errmsg(db_)));
  statements_.emplace(sql, st);
  return st;
}

void SqliteStore::exec(const char* sql) {
  char* err = nullptr;
  int rc = sqlite3_exec(db_, sql, nullptr, nullptr, &err);
  if (rc != SQLITE_OK) {
    std::string msg = err ? err : "unknown error";
    sqlite3_free(err);
    throw SqliteFailure(rc, msg);
  }
}

void SqliteStore::start() {
  std::lock_guard lock(mutex_);
  auto parent = std::filesystem::path(path_).parent_path();
  if (!parent.empty()) std::filesystem::create_directories(parent);
  disableMemoryStatistics();
  // The writer's WAL frames go out in one pwrite per commit, not two per frame (wal_frame_vfs.hpp). No mutex
  // of SQLite's own on the connection: every use of it is under mutex_ already, and SQLite's would
  // be taken and released again on each bind, step, column and reset.
  if (sqlite3_open_v2(path_.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                      walFrameVfs()) != SQLITE_OK) {
    std::string msg = db_ ? sqlite3_errmsg(db_) : "out of memory";
    sqlite3_close(db_);
    db_ = nullptr;
    throw std::runtime_error(fmt::format("cannot open SQLite database '{}': {}", path_, msg));
  }
  setBusyWait(db_, 5000);
  try {
    // One process owns the file (unfinishedRuns relies on it): a second server on the same path
    // stops here with a clear error instead of sharing it.
    // An in-memory database is this connection's alone: no file to own.
    if (path_ != ":memory:") owner_lock_ = lockSqliteOwner(path_);
    // The sync level first: switching a new file to WAL is itself a rollback-journal transaction,
    // which syncs less at NORMAL.
    exec(sync_full_ ? "PRAGMA synchronous=FULL;" : "PRAGMA synchronous=NORMAL;");
    exec("PRAGMA journal_mode=WAL;");
    // Events are clustered by user: every active user keeps a leaf (and its parents) of the events
    // B-tree hot, so the working set grows with active users, not with the database. SQLite's 2 MB
    // default made the writer read 5-6 pages per chat run back from the WAL or the file at 100
    // users; 8 MB none (performance.md).
    exec(fmt::format("PRAGMA cache_size=-{};", int64_t{cache_mb_} * 1024).c_str());
    // Checkpoints run beside the writer, on their own connection (WalCheckpointer), so that no
    // commit waits for one. They copy the newest version of each page once: ten times SQLite's
    // default interval copies hot pages (stream heads, index interiors) a tenth as often, about
    // 10% less server CPU per event (bench/ab-chat.sh, performance.md); the WAL grows to about
    // 40 MB between checkpoints.
    checkpointer_ = std::make_unique<WalCheckpointer>(
        path_, WalCheckpointer::Options{.frames = 10000, .restart_frames = 40000, .sync_full = sync_full_}, log_);
    checkpointer_->start(db_);
    // Numbered migrations, all in one transaction; a database written by a newer agentwire (which
    // this binary could misread or lose data of) is refused.
    auto migrated = sqlite_schema::migrate(db_);
    if (!migrated) {
      throw std::runtime_error(fmt::format("the SQLite database '{}': {}", path_, migrated.error().message));
    }
    if (*migrated != sqlite_schema::latestVersion()) {
      log_->info("{} the SQLite schema: version {} to {}", *migrated == 0 ? "created" : "migrated", *migrated,
                 sqlite_schema::latestVersion());
    }
  } catch (const SqliteFailure& f) {
    closeLocked();
    throw std::runtime_error(fmt::format("cannot set up SQLite database '{}': {}", path_, f.what()));
  } catch (...) {
    closeLocked();
    throw;
  }
  log_->info("opened SQLite store at {} (WAL, synchronous={})", path_, sync_full_ ? "FULL" : "NORMAL");
}

void SqliteStore::stop() {
  std::lock_guard lock(mutex_);
  closeLocked();
}

void SqliteStore::closeLocked() {
  // The checkpointer first: the writer's close, the last one, then checkpoints the rest.
  if (checkpointer_) checkpointer_->stop();
  checkpointer_.reset();
  for (auto& [sql, st] : statements_) sqlite3_finalize(st);
  statements_.clear();
  if (db_ != nullptr) {
    sqlite3_close_v2(db_);
    db_ = nullptr;
  }
  if (owner_lock_ >= 0) ::close(owner_lock_);
  owner_lock_ = -1;
}

WalCheckpointer::Counts SqliteStore::checkpointCounts() const {
  std::lock_guard lock(mutex_);
  return checkpointer_ ? checkpointer_->counts() : WalCheckpointer::Counts{};
}

void SqliteStore::limitPagesForTest(int64_t pages) {
  std::lock_guard lock(mutex_);
  // SQLite never lowers max_page_count below the current size; 2^31-2 is its "no cap".
  exec(fmt::format("PRAGMA max_page_count={}", pages > 0 ? pages : int64_t{2147483646}).c_str());
}

core::Result<Thread> SqliteStore::createThread(const std::string& user_id, const std::string& title, bool system,
                                               const std::string& agent, const std::string& on_busy) {
  return guarded<Thread>("create thread", true, [&] {
    Thread t{core::newId("thr"), user_id, title.empty() ? "New thread" : title, core::nowMs(), system, agent, on_busy};
    Stmt s(db_, prepared("INSERT INTO threads(id, user_id, title, created_ms, system, agent, on_busy) "
                         "VALUES (?,?,?,?,?,?,?)"));
    s.bind(1, t.id).bind(2, t.user_id).bind(3, t.title).bind(4, t.created_ms).bind(5, int64_t{system});
    s.bind(6, t.agent).bind(7, t.on_busy);
    s.step();
    return t;
  });
}

core::Result<std::optional<Thread>> SqliteStore::findThread(const std::string& thread_id) {
  return guarded<std::optional<Thread>>("find thread", false, [&]() -> std::optional<Thread> {
    Stmt s(db_, prepared("SELECT id, user_id, title, created_ms, system, agent, on_busy FROM threads WHERE id = ?"));
    s.bind(1, thread_id);
    if (!s.step()) return std::nullopt;
    return readThread(s);
  });
}

core::Result<std::vector<Thread>> SqliteStore::listThreads(const std::string& user_id, int limit,
                                                           const ThreadCursor& before) {
  return guarded<std::vector<Thread>>("list threads", false, [&] {
    Stmt s(db_,
           prepared("SELECT id, user_id, title, created_ms, system, agent, on_busy FROM threads WHERE user_id = ? AND "
                    "system = 0 AND (? = 0 OR (created_ms, id) < (?, ?)) ORDER BY created_ms DESC, id DESC "
                    "LIMIT ?"));
    s.bind(1, user_id).bind(2, before.created_ms).bind(3, before.created_ms).bind(4, before.id);
    s.bind(5, int64_t{limit});
    std::vector<Thread> out;
    while (s.step()) out.push_back(readThread(s));
    return out;
  });
}

core::Result<int64_t> SqliteStore::pragma(const std::string& name) {
  return guarded<int64_t>("read a PRAGMA", false, [&] {
    // Not through prepared(): its cache is keyed by literals' addresses.
    sqlite3_stmt* st = nullptr;
    const std::string sql = "PRAGMA " + name;
    int rc = sqlite3_prepare_v2(db_, sql.c_str(), -1, &st, nullptr);
    if (rc == SQLITE_OK) rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
      std::string why = sqlite3_errmsg(db_);
      sqlite3_finalize(st);
      throw SqliteFailure(rc == SQLITE_DONE ? SQLITE_ERROR : rc, sql + ": " + (rc == SQLITE_DONE ? "no value" : why));
    }
    int64_t v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
  });
}

core::Result<int64_t> SqliteStore::countThreads(const std::string& user_id) {
  return guarded<int64_t>("count threads", false, [&] {
    Stmt s(db_, prepared("SELECT COUNT(*) FROM threads WHERE user_id = ? AND system = 0"));
    s.bind(1, user_id);
    s.step();
    return s.integer(0);
  });
}

core::Result<bool> SqliteStore::renameThread(const std::string& thread_id, const std::string& title) {
  return guarded<bool>("rename thread", true, [&] {
    Stmt s(db_, prepared("UPDATE threads SET title = ? WHERE id = ?"));
    s.bind(1, title).bind(2, thread_id).step();
    return sqlite3_changes(db_) > 0;
  });
}

core::Result<ThreadDeletion> SqliteStore::deleteThread(const std::string& thread_id, bool force) {
  return guarded<ThreadDeletion>("delete thread", true, [&] {
    Stmt(db_, prepared("BEGIN IMMEDIATE")).step();
    if (!force) {
      Stmt busy(db_, prepared("SELECT 1 FROM runs WHERE thread_id = ? LIMIT 1"));
      busy.bind(1, thread_id);
      bool running = busy.step();
      busy.reset();
      if (running) {
        Stmt(db_, prepared("ROLLBACK")).step();
        return ThreadDeletion::Busy;
      }
    }
    Stmt m(db_, prepared("DELETE FROM messages WHERE thread_id = ?"));
    m.bind(1, thread_id).step();
    Stmt r(db_, prepared("DELETE FROM runs WHERE thread_id = ?"));
    r.bind(1, thread_id).step();
    Stmt a(db_, prepared("DELETE FROM approvals WHERE thread_id = ?"));
    a.bind(1, thread_id).step();
    Stmt t(db_, prepared("DELETE FROM threads WHERE id = ?"));
    t.bind(1, thread_id).step();
    bool found = sqlite3_changes(db_) > 0;
    Stmt(db_, prepared("COMMIT")).step();
    return found ? ThreadDeletion::Deleted : ThreadDeletion::NotFound;
  });
}

core::Result<std::vector<Message>> SqliteStore::listMessages(const std::string& thread_id, int limit,
                                                             int64_t before_ms) {
  return guarded<std::vector<Message>>("list messages", false, [&] {
    // Newest `limit` before the bound, returned oldest first.
    Stmt s(db_, prepared("SELECT id, thread_id, user_id, role, content, run_id, created_ms FROM ("
                         " SELECT rowid AS rid, * FROM messages WHERE thread_id = ? AND (? = 0 OR created_ms < ?)"
                         " ORDER BY created_ms DESC, rowid DESC LIMIT ?) ORDER BY created_ms ASC, rid ASC"));
    s.bind(1, thread_id).bind(2, before_ms).bind(3, before_ms).bind(4, int64_t{limit});
    std::vector<Message> out;
    while (s.step()) {
      out.push_back(Message{s.text(0), s.text(1), s.text(2), s.text(3), s.text(4), s.text(5), s.integer(6)});
    }
    return out;
  });
}

StreamInfo SqliteStore::streamInfoLocked(const std::string& user_id) {
  Stmt s(db_, prepared("SELECT epoch, last_seq, first_seq, acked_seq FROM streams WHERE user_id = ?"));
  s.bind(1, user_id);
  if (s.step()) return StreamInfo{s.text(0), s.integer(1), s.integer(2), s.integer(3)};
  StreamInfo info{core::newId("ep"), 0, 1, 0};
  Stmt ins(db_, prepared("INSERT INTO streams(user_id, epoch, last_seq, first_seq, acked_seq) VALUES (?,?,0,1,0)"));
  ins.bind(1, user_id).bind(2, info.epoch);
  ins.step();
  return info;
}

core::Result<std::vector<std::pair<std::string, int64_t>>> SqliteStore::streamHeads(
    const std::vector<std::string>& users) {
  using Out = std::vector<std::pair<std::string, int64_t>>;
  return guarded<Out>("read stream heads", false, [&] {
    Stmt s(db_, prepared("SELECT last_seq FROM streams WHERE user_id = ?"));
    Out out;
    for (const auto& u : users) {
      s.reset();
      s.bind(1, u);
      if (s.step()) out.emplace_back(u, s.integer(0));
    }
    return out;
  });
}

core::Result<StreamInfo> SqliteStore::streamInfo(const std::string& user_id) {
  // A write the first time (the stream row is created with its epoch).
  return guarded<StreamInfo>("read stream", true, [&] { return streamInfoLocked(user_id); });
}

std::pair<int64_t, int64_t> SqliteStore::ackLocked(const std::string& user_id, int64_t seq) {
  StreamInfo before = streamInfoLocked(user_id);
  int64_t after = std::max(before.acked_seq, std::min(seq, before.last_seq));
  if (after == before.acked_seq) return {0, 0};
  Stmt s(db_, prepared("UPDATE streams SET acked_seq = ? WHERE user_id = ?"));
  s.bind(1, after).bind(2, user_id);
  s.step();
  int64_t n = after - before.acked_seq;
  return {n, before.acked_seq > 0 ? n : 0};
}

core::Result<CommitStats> SqliteStore::commit(const WriteBatch& batch) {
  return guarded<CommitStats>("commit", true, [&] {
    CommitStats stats;
    Stmt(db_, prepared("BEGIN IMMEDIATE")).step();
    if (!batch.messages.empty()) {
      Stmt m(db_, prepared("INSERT INTO messages(id, thread_id, user_id, role, content, run_id, created_ms) "
                           "VALUES (?,?,?,?,?,?,?)"));
      for (const auto& msg : batch.messages) {
        m.reset();
        m.bind(1, msg.id).bind(2, msg.thread_id).bind(3, msg.user_id).bind(4, msg.role).bind(5, msg.content);
        m.bind(6, msg.run_id).bind(7, msg.created_ms);
        m.step();
      }
    }
    if (!batch.runs.empty()) {
      Stmt r(db_, prepared("INSERT INTO runs(id, user_id, thread_id, agent, node_id, status, created_ms) "
                           "VALUES (?,?,?,?,?,?,?)"));
      for (const auto& run : batch.runs) {
        r.reset();
        r.bind(1, run.id).bind(2, run.user_id).bind(3, run.thread_id).bind(4, run.agent).bind(5, run.node_id);
        const std::string& status = run.status.empty() ? kQueued : run.status;
        r.bind(6, status).bind(7, run.created_ms);
        r.step();
      }
    }
    struct Head {
      int64_t seq = 0;
      bool acking = false;
    };
    std::map<std::string, Head> heads;
    Stmt ins(db_,
             prepared("INSERT INTO events(user_id, seq, type, thread_id, run_id, ts_ms, data) VALUES (?,?,?,?,?,?,?)"));
    Stmt finished(db_, prepared("DELETE FROM runs WHERE id = ?"));
    // The run fence (see StoredEvent::requires_run_in_flight): one lookup per run and batch.
    std::map<std::string, bool> in_flight;
    auto runInFlight = [&](const std::string& run_id) {
      auto [it, fresh] = in_flight.try_emplace(run_id, false);
      if (fresh) {
        Stmt q(db_, prepared("SELECT 1 FROM runs WHERE id = ?"));
        q.bind(1, run_id);
        it->second = q.step();
      }
      return it->second;
    };
    stats.seqs.reserve(batch.events.size());
    for (const auto& e : batch.events) {
      if (e.requires_run_in_flight && !runInFlight(e.run_id)) {
        stats.seqs.push_back(CommitStats::kFenced);
        ++stats.fenced;
        continue;
      }
      auto [it, fresh] = heads.try_emplace(e.user_id);
      if (fresh) {
        auto info = streamInfoLocked(e.user_id);
        it->second = Head{info.last_seq, info.acked_seq > 0};
      }
      int64_t seq = ++it->second.seq;
      stats.seqs.push_back(seq);
      if (it->second.acking) ++stats.appended_acking;
      ins.reset();
      ins.bind(1, e.user_id).bind(2, seq).bind(3, e.type).bind(4, e.thread_id).bind(5, e.run_id);
      ins.bind(6, e.ts_ms).bind(7, e.data_json);
      ins.step();
      if (endsRun(e.run_status)) {
        finished.reset();
        finished.bind(1, e.run_id).step();
        in_flight[e.run_id] = false;
      }
    }
    Stmt up(db_, prepared("UPDATE streams SET last_seq = ? WHERE user_id = ?"));
    for (const auto& [user, head] : heads) {
      up.reset();
      up.bind(1, head.seq).bind(2, user);
      up.step();
    }
    // Acks after the events they may refer to (an ack never passes the last seq).
    for (const auto& [user, seq] : batch.acks) {
      auto [n, acking] = ackLocked(user, seq);
      stats.newly_acked += n;
      stats.acked_acking += acking;
    }
    Stmt(db_, prepared("COMMIT")).step();
    stats.items = batch.size();
    return stats;
  });
}

core::Result<std::vector<StoredEvent>> SqliteStore::eventsAfter(const std::string& user_id, int64_t after_seq,
                                                                int limit) {
  return guarded<std::vector<StoredEvent>>("read events", false, [&] {
    Stmt s(db_, prepared("SELECT seq, user_id, type, thread_id, run_id, ts_ms, data FROM events WHERE user_id = ? AND "
                         "seq > ? ORDER BY seq LIMIT ?"));
    s.bind(1, user_id).bind(2, after_seq).bind(3, int64_t{limit});
    std::vector<StoredEvent> out;
    while (s.step()) {
      out.push_back(readEvent(s));
    }
    return out;
  });
}

core::Result<std::vector<StoredEvent>> SqliteStore::runEvents(const std::string& user_id, const std::string& run_id) {
  return guarded<std::vector<StoredEvent>>("read a run's events", false, [&] {
    Stmt s(db_, prepared("SELECT seq, user_id, type, thread_id, run_id, ts_ms, data FROM events WHERE user_id = ? AND "
                         "run_id = ? ORDER BY seq"));
    s.bind(1, user_id).bind(2, run_id);
    std::vector<StoredEvent> out;
    while (s.step()) {
      out.push_back(readEvent(s));
    }
    return out;
  });
}

core::Result<std::vector<StoredEvent>> SqliteStore::threadEvents(const std::string& user_id,
                                                                 const std::string& thread_id) {
  return guarded<std::vector<StoredEvent>>("read a thread's events", false, [&] {
    Stmt s(db_, prepared("SELECT seq, user_id, type, thread_id, run_id, ts_ms, data FROM events WHERE user_id = ? AND "
                         "thread_id = ? ORDER BY seq"));
    s.bind(1, user_id).bind(2, thread_id);
    std::vector<StoredEvent> out;
    while (s.step()) out.push_back(readEvent(s));
    return out;
  });
}

core::Result<int64_t> SqliteStore::pruneEvents(const std::string& user_id, int64_t keep_last, int64_t older_than_ms) {
  return guarded<int64_t>("prune events", true, [&] {
    auto info = streamInfoLocked(user_id);
    int64_t first = std::max(info.first_seq, info.last_seq - keep_last + 1);
    if (older_than_ms > 0) {
      // The oldest event young enough to keep (events are appended in time order).
      Stmt s(db_, prepared("SELECT MIN(seq) FROM events WHERE user_id = ? AND seq >= ? AND ts_ms >= ?"));
      s.bind(1, user_id).bind(2, first).bind(3, older_than_ms);
      int64_t young = s.step() && !s.null(0) ? s.integer(0) : info.last_seq;
      first = std::max(first, young);
    }
    first = std::min(first, std::max<int64_t>(info.last_seq, 1));  // the newest event is always kept
    if (first <= info.first_seq) return info.first_seq;
    Stmt(db_, prepared("BEGIN IMMEDIATE")).step();
    Stmt del(db_, prepared("DELETE FROM events WHERE user_id = ? AND seq < ?"));
    del.bind(1, user_id).bind(2, first);
    del.step();
    Stmt up(db_, prepared("UPDATE streams SET first_seq = ? WHERE user_id = ?"));
    up.bind(1, first).bind(2, user_id);
    up.step();
    Stmt(db_, prepared("COMMIT")).step();
    return first;
  });
}

core::Result<std::vector<std::pair<std::string, int64_t>>> SqliteStore::unackedThreadsByUser(int limit) {
  return guarded<std::vector<std::pair<std::string, int64_t>>>("count unacknowledged threads", false, [&] {
    Stmt s(db_, prepared("SELECT s.user_id, COUNT(DISTINCT e.thread_id) FROM streams s JOIN events e "
                         "ON e.user_id = s.user_id AND e.seq > s.acked_seq "
                         "WHERE s.acked_seq > 0 AND s.last_seq > s.acked_seq GROUP BY s.user_id LIMIT ?"));
    s.bind(1, int64_t{limit});
    std::vector<std::pair<std::string, int64_t>> out;
    while (s.step()) out.emplace_back(s.text(0), s.integer(1));
    return out;
  });
}

core::Result<bool> SqliteStore::probeWrite() {
  return guarded<bool>("write probe", true, [&] {
    Stmt s(db_, prepared("INSERT INTO meta(key, value) VALUES ('write_probe', ?) "
                         "ON CONFLICT(key) DO UPDATE SET value = excluded.value"));
    s.bind(1, std::to_string(core::nowMs())).step();
    return true;
  });
}

core::Result<std::vector<RunRecord>> SqliteStore::unfinishedRuns(const std::string& /*node_id*/) {
  return guarded<std::vector<RunRecord>>("list unfinished runs", false, [&] {
    Stmt s(db_, prepared("SELECT id, user_id, thread_id, agent, node_id, status, created_ms FROM runs "
                         "ORDER BY created_ms"));
    std::vector<RunRecord> out;
    while (s.step()) out.push_back(readRun(s));
    return out;
  });
}

core::Result<std::optional<RunRecord>> SqliteStore::findRun(const std::string& run_id) {
  return guarded<std::optional<RunRecord>>("find a run", false, [&] {
    Stmt s(db_, prepared("SELECT id, user_id, thread_id, agent, node_id, status, created_ms FROM runs WHERE id = ?"));
    s.bind(1, run_id);
    std::optional<RunRecord> out;
    if (s.step()) out = readRun(s);
    return out;
  });
}

core::Result<bool> SqliteStore::addApproval(const Approval& a) {
  return guarded<bool>("add an approval", true, [&] {
    Stmt(db_, prepared("BEGIN IMMEDIATE")).step();
    // A run waits for one approval at a time: its earlier ones are behind it (see Store::addApproval).
    Stmt old(db_, prepared("UPDATE approvals SET resumed = 1 WHERE run_id = ? AND resumed = 0"));
    old.bind(1, a.run_id).step();
    Stmt s(db_, prepared("INSERT INTO approvals(id, user_id, thread_id, run_id, tool_call_id, tool_name, args, "
                         "run_state, node_id, status, reason, by, created_ms, expires_ms, resolved_ms, resumed) "
                         "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"));
    s.bind(1, a.id).bind(2, a.user_id).bind(3, a.thread_id).bind(4, a.run_id).bind(5, a.tool_call_id);
    s.bind(6, a.tool_name).bind(7, a.args_json).bind(8, a.run_state_json).bind(9, a.node_id).bind(10, a.status);
    s.bind(11, a.reason).bind(12, a.by).bind(13, a.created_ms).bind(14, a.expires_ms).bind(15, a.resolved_ms);
    s.bind(16, int64_t{a.resumed ? 1 : 0}).step();
    Stmt(db_, prepared("COMMIT")).step();
    return true;
  });
}

core::Result<std::optional<Approval>> SqliteStore::findApproval(const std::string& approval_id) {
  return guarded<std::optional<Approval>>("find an approval", false, [&] {
    Stmt s(db_, prepared(AW_SELECT_APPROVALS "WHERE id = ?"));
    s.bind(1, approval_id);
    std::optional<Approval> out;
    if (s.step()) out = readApproval(s);
    return out;
  });
}

core::Result<std::optional<std::pair<bool, Approval>>> SqliteStore::resolveApproval(const std::string& approval_id,
                                                                                    const std::string& status,
                                                                                    const std::string& reason,
                                                                                    const std::string& by) {
  return guarded<std::optional<std::pair<bool, Approval>>>("resolve an approval", true, [&] {
    Stmt(db_, prepared("BEGIN IMMEDIATE")).step();
    Stmt u(db_, prepared("UPDATE approvals SET status = ?, reason = ?, by = ?, resolved_ms = ? "
                         "WHERE id = ? AND status = 'pending'"));
    u.bind(1, status).bind(2, reason).bind(3, by).bind(4, core::nowMs()).bind(5, approval_id).step();
    bool won = sqlite3_changes(db_) > 0;
    Stmt s(db_, prepared(AW_SELECT_APPROVALS "WHERE id = ?"));
    s.bind(1, approval_id);
    std::optional<std::pair<bool, Approval>> out;
    if (s.step()) out.emplace(won, readApproval(s));
    s.reset();
    Stmt(db_, prepared("COMMIT")).step();
    return out;
  });
}

core::Result<std::vector<Approval>> SqliteStore::pendingApprovals(const std::string& user_id) {
  return guarded<std::vector<Approval>>("list pending approvals", false, [&] {
    Stmt s(db_, prepared(AW_SELECT_APPROVALS "WHERE user_id = ? AND status = 'pending' ORDER BY created_ms, id"));
    s.bind(1, user_id);
    std::vector<Approval> out;
    while (s.step()) out.push_back(readApproval(s));
    return out;
  });
}

core::Result<std::vector<Approval>> SqliteStore::parkedApprovals(const std::string& /*node_id*/) {
  // One process owns the file (see unfinishedRuns): every waiting run is this node's.
  return guarded<std::vector<Approval>>("list parked runs", false, [&] {
    Stmt s(db_, prepared("SELECT a.id, a.user_id, a.thread_id, a.run_id, a.tool_call_id, a.tool_name, a.args, "
                         "a.run_state, a.node_id, a.status, a.reason, a.by, a.created_ms, a.expires_ms, "
                         "a.resolved_ms, a.resumed FROM approvals a JOIN runs r ON r.id = a.run_id "
                         "WHERE a.resumed = 0 ORDER BY a.created_ms, a.id"));
    std::vector<Approval> out;
    while (s.step()) out.push_back(readApproval(s));
    return out;
  });
}

core::Result<bool> SqliteStore::markApprovalResumed(const std::string& approval_id) {
  return guarded<bool>("mark an approval resumed", true, [&] {
    Stmt s(db_, prepared("UPDATE approvals SET resumed = 1 WHERE id = ?"));
    s.bind(1, approval_id).step();
    return sqlite3_changes(db_) > 0;
  });
}

core::Result<int64_t> SqliteStore::addTokenUsage(const std::string& user_id, const std::string& day, int64_t tokens) {
  return guarded<int64_t>("add token usage", true, [&] {
    Stmt s(db_, prepared("INSERT INTO token_usage (user_id, day, tokens) VALUES (?, ?, ?) ON CONFLICT (user_id, day) "
                         "DO UPDATE SET tokens = tokens + excluded.tokens RETURNING tokens"));
    s.bind(1, user_id).bind(2, day).bind(3, tokens);
    int64_t total = s.step() ? s.integer(0) : tokens;
    s.reset();
    return total;
  });
}

core::Result<int64_t> SqliteStore::pruneHistory(int64_t before_ms, const std::string& before_day) {
  return guarded<int64_t>("prune resolved approvals and old token counts", true, [&] {
    int64_t deleted = 0;
    exec("BEGIN IMMEDIATE");
    try {
      // `runs` holds the runs in flight: an approval whose run is not there is not waited for.
      Stmt a(db_, prepared("DELETE FROM approvals WHERE status <> 'pending' AND resolved_ms < ? "
                           "AND (resumed = 1 OR run_id NOT IN (SELECT id FROM runs))"));
      a.bind(1, before_ms).step();
      deleted += sqlite3_changes(db_);
      Stmt t(db_, prepared("DELETE FROM token_usage WHERE day < ?"));
      t.bind(1, before_day).step();
      deleted += sqlite3_changes(db_);
      exec("COMMIT");
    } catch (...) {
      sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
      throw;
    }
    return deleted;
  });
}

core::Result<int64_t> SqliteStore::tokenUsage(const std::string& user_id, const std::string& day) {
  return guarded<int64_t>("read token usage", false, [&] {
    Stmt s(db_, prepared("SELECT tokens FROM token_usage WHERE user_id = ? AND day = ?"));
    s.bind(1, user_id).bind(2, day);
    int64_t total = s.step() ? s.integer(0) : 0;
    s.reset();
    return total;
  });
}

}  // namespace agentwire::store
