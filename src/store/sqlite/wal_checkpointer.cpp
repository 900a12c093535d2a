#include "store/sqlite/wal_checkpointer.hpp"

#include "core/thread_name.hpp"

#include <fmt/format.h>
#include <sqlite3.h>
#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <stdexcept>
#include <thread>

namespace agentwire::store {
namespace {

// A restart waits for the writer's current transaction; the passive rounds before it go on until
// one finds at most this many new frames (about as many come in during the next), which the
// restart then copies while the writer waits.
constexpr int kSmallTail = 64;
constexpr int kMaxChaseRounds = 8;

int busyWait(void* timeout_ms, int tries) {
  using namespace std::chrono_literals;
  constexpr int kFineTries = 500;  // 50 ms in steps of 100 µs
  const auto limit = static_cast<int>(reinterpret_cast<intptr_t>(timeout_ms));
  const int waited_ms = tries < kFineTries ? tries / 10 : 50 + (tries - kFineTries);
  if (waited_ms >= limit) return 0;
  std::this_thread::sleep_for(tries < kFineTries ? std::chrono::microseconds(100) : std::chrono::microseconds(1ms));
  return 1;
}

}  // namespace

void setBusyWait(sqlite3* db, int timeout_ms) {
  sqlite3_busy_handler(db, &busyWait, reinterpret_cast<void*>(static_cast<intptr_t>(timeout_ms)));
}

WalCheckpointer::WalCheckpointer(std::string path, Options options, std::shared_ptr<spdlog::logger> log)
    : path_(std::move(path)), options_(options), log_(std::move(log)) {}

WalCheckpointer::~WalCheckpointer() {
  stop();
}

void WalCheckpointer::start(sqlite3* writer) {
  if (sqlite3_open_v2(path_.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_FULLMUTEX, nullptr) != SQLITE_OK) {
    std::string msg = db_ ? sqlite3_errmsg(db_) : "out of memory";
    sqlite3_close(db_);
    db_ = nullptr;
    throw std::runtime_error(fmt::format("cannot open '{}' for checkpoints: {}", path_, msg));
  }
  // The syncs around a checkpoint are what keeps a power loss from corrupting the database.
  sqlite3_exec(db_, options_.sync_full ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL", nullptr, nullptr,
               nullptr);
  // A restarting checkpoint waits (busy handler) for the writer's transaction to end.
  setBusyWait(db_, 5000);
  writer_ = writer;
  {
    std::lock_guard lock(mutex_);
    stopping_ = false;
  }
  // Replaces SQLite's automatic checkpoint, which is itself a WAL hook.
  sqlite3_wal_hook(writer_, &WalCheckpointer::onCommit, this);
  thread_ = std::thread([this] { loop(); });
}

void WalCheckpointer::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  if (writer_ != nullptr) {
    sqlite3_wal_hook(writer_, nullptr, nullptr);
    writer_ = nullptr;
  }
  if (db_ != nullptr) {
    sqlite3_close_v2(db_);
    db_ = nullptr;
  }
}

WalCheckpointer::Counts WalCheckpointer::counts() const {
  std::lock_guard lock(mutex_);
  return counts_;
}

int WalCheckpointer::onCommit(void* self, sqlite3* /*db*/, const char* /*schema*/, int frames) {
  auto* c = static_cast<WalCheckpointer*>(self);
  bool wake = false;
  {
    std::lock_guard lock(c->mutex_);
    c->wal_frames_ = frames;
    ++c->reports_;
    wake = frames >= c->options_.frames;
  }
  if (wake) c->cv_.notify_one();
  return SQLITE_OK;
}

void WalCheckpointer::syncDatabase() {
  sqlite3_file* file = nullptr;
  if (sqlite3_file_control(db_, "main", SQLITE_FCNTL_FILE_POINTER, &file) != SQLITE_OK || file == nullptr ||
      file->pMethods == nullptr) {
    return;  // not open (cannot happen once a checkpoint ran): the restart's own sync does it
  }
  if (file->pMethods->xSync(file, options_.sync_full ? SQLITE_SYNC_FULL : SQLITE_SYNC_NORMAL) == SQLITE_OK) {
    std::lock_guard lock(mutex_);
    ++counts_.synced;
  }
}

void WalCheckpointer::loop() {
  core::setThreadName("aw-checkpoint");
  // Copying pages competes with the threads that serve users (the server may have one core):
  // lower this thread's priority, a hint that costs nothing when the core is idle.
  setpriority(PRIO_PROCESS, static_cast<id_t>(gettid()), 10);
  int next_at = options_.frames;  // the WAL size that starts the next round
  int64_t seen = 0;               // reports acted on: a round starts on a newer one only
  int last_size = 0;
  bool warned = false;
  for (;;) {
    {
      std::unique_lock lock(mutex_);
      cv_.wait(lock, [&] { return stopping_ || (reports_ > seen && wal_frames_ >= next_at); });
      if (stopping_) return;
      seen = reports_;
      // A smaller WAL than last time: the writer restarted it after a complete checkpoint.
      if (wal_frames_ < last_size) next_at = options_.frames;
      last_size = wal_frames_;
      if (wal_frames_ < next_at) continue;
    }
    auto checkpoint = [&](int mode, int* log, int* copied) {
      int rc = sqlite3_wal_checkpoint_v2(db_, nullptr, mode, log, copied);
      if (rc != SQLITE_OK && rc != SQLITE_BUSY && !warned) {
        warned = true;
        log_->warn("WAL checkpoint failed: {} (SQLite code {}); retried at the next commit", sqlite3_errmsg(db_), rc);
      } else if (rc == SQLITE_OK) {
        warned = false;
      }
      return rc;
    };
    int log = 0;
    int copied = 0;
    checkpoint(SQLITE_CHECKPOINT_PASSIVE, &log, &copied);
    // A passive round that could not copy the whole WAL (the writer went on) leaves the database
    // file unsynced; the restart's sync would then flush every round's pages with the writer waiting.
    syncDatabase();
    int64_t passive = 1;
    bool restarted = false;
    if (log >= options_.restart_frames) {
      // Chase the writer: each round copies (and syncs) what came in during the one before, which
      // is shorter, until a round finds little; then the restart makes the writer wait for that
      // little and its two syncs.
      for (int i = 0, before = copied; i < kMaxChaseRounds; ++i) {
        checkpoint(SQLITE_CHECKPOINT_PASSIVE, &log, &copied);
        ++passive;
        syncDatabase();
        bool little = copied - before <= kSmallTail;
        before = copied;
        if (little) break;
      }
      auto t0 = std::chrono::steady_clock::now();
      restarted = checkpoint(SQLITE_CHECKPOINT_RESTART, &log, &copied) == SQLITE_OK;
      log_->debug("WAL restart: {} frames, {} µs (the writer waits for part of it)", log,
                  std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - t0).count());
    }
    {
      std::lock_guard lock(mutex_);
      // Reports made during this round describe a WAL this round has dealt with (after a restart,
      // one that no longer exists): the next round waits for a commit after it.
      seen = reports_;
      counts_.passive += passive;
      counts_.restart += restarted ? 1 : 0;
      // After a restart, the writer's next commit starts the WAL again; else the next round comes
      // once the writer has added a quarter of the interval to what is there now.
      next_at = restarted ? options_.frames : std::max(options_.frames, log + options_.frames / 4);
      last_size = restarted ? 0 : log;
    }
  }
}

}  // namespace agentwire::store
