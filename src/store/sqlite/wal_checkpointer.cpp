#include "store/sqlite/wal_checkpointer.hpp"

#include <fmt/format.h>
#include <sqlite3.h>
#include <sys/resource.h>
#include <unistd.h>

#include <stdexcept>

namespace agentwire::store {
namespace {

// A restart waits for the writer's current transaction; the passive rounds before it leave at
// most this many frames for it to copy while the writer waits.
constexpr int kSmallTail = 256;
constexpr int kMaxChaseRounds = 8;

}  // namespace

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
  sqlite3_busy_timeout(db_, 5000);
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

void WalCheckpointer::loop() {
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
    int64_t passive = 1;
    bool restarted = false;
    if (log >= options_.restart_frames) {
      // Chase the writer until little is left, then make it wait for that little.
      for (int i = 0; i < kMaxChaseRounds && log - copied > kSmallTail; ++i, ++passive) {
        checkpoint(SQLITE_CHECKPOINT_PASSIVE, &log, &copied);
      }
      restarted = checkpoint(SQLITE_CHECKPOINT_RESTART, &log, &copied) == SQLITE_OK;
    }
    {
      std::lock_guard lock(mutex_);
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
