#pragma once

#include <spdlog/logger.h>

#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

struct sqlite3;

namespace agentwire::store {

// Installs on `db` a busy handler that tries again every 100 µs for the first 50 ms, then every
// millisecond, and gives up after `timeout_ms` (counted in requested sleeps, as SQLite's own does:
// a loaded machine oversleeps, so the real wait is longer). SQLite's own (sqlite3_busy_timeout)
// sleeps 1, 2, 5, 10, 15… ms between tries, so a writer that met a lock held for 4 ms slept 8, one
// held 12 ms slept 18: the checkpointer's restart holds the write lock for a few milliseconds, and
// users' events wait for the writer.
void setBusyWait(sqlite3* db, int timeout_ms);

// Copies the WAL of one SQLite database back into the database file on its own thread and its own
// connection. SQLite's automatic checkpoint runs inside the commit that crosses the threshold: the
// writer (and so every user's events) then waits while thousands of pages are read from the WAL,
// written to the database and synced. Here the writer only reports how many frames the WAL holds
// (the WAL hook) and goes on; a PASSIVE checkpoint runs beside it and never blocks it.
//
// A writer that never pauses keeps the WAL from being restarted (a restart needs every frame copied
// at the start of a write), so past `restart_frames` a RESTART checkpoint makes the writer wait for
// the copy of what is left and for two syncs (the WAL before the copy, the database after it). The
// writer's wait is kept to milliseconds by doing the bulk of that work before, beside it: the
// passive rounds copy all but the last frames (each syncs the WAL first), and the database is
// synced after each round (SQLite does it only after a round that copied the whole WAL), so the
// syncs inside the restart flush only what came in the last moments (measured: the database's
// sync inside the restart took 15 ms when it flushed everything the passive rounds had copied;
// performance.md).
class WalCheckpointer {
 public:
  struct Options {
    int frames = 10000;          // a passive checkpoint once the WAL holds this many frames
    int restart_frames = 40000;  // then a restarting one
    bool sync_full = false;      // the checkpointer's own PRAGMA synchronous, as the writer's
  };
  WalCheckpointer(std::string path, Options options, std::shared_ptr<spdlog::logger> log);
  ~WalCheckpointer();
  WalCheckpointer(const WalCheckpointer&) = delete;
  WalCheckpointer& operator=(const WalCheckpointer&) = delete;

  // Opens the checkpointer's connection and installs the WAL hook on the writer's connection
  // `writer` (which must be in WAL mode). Throws if the database cannot be opened.
  void start(sqlite3* writer);
  // Stops the thread and closes the connection; the writer's close then checkpoints the rest.
  void stop();

  // Checkpoints run so far (tests and the log).
  struct Counts {
    int64_t passive = 0;
    int64_t restart = 0;
    int64_t synced = 0;  // syncs of the database file done beside the writer
  };
  Counts counts() const;

 private:
  static int onCommit(void* self, sqlite3* db, const char* schema, int frames);
  void loop();
  // Flushes the database file through the checkpointer's own connection; counted in counts().synced.
  void syncDatabase();

  std::string path_;
  Options options_;
  std::shared_ptr<spdlog::logger> log_;
  sqlite3* db_ = nullptr;
  sqlite3* writer_ = nullptr;
  mutable std::mutex mutex_;
  std::condition_variable cv_;
  int wal_frames_ = 0;   // as of the writer's last commit
  int64_t reports_ = 0;  // commits reported
  bool stopping_ = false;
  Counts counts_;
  std::thread thread_;
};

}  // namespace agentwire::store
