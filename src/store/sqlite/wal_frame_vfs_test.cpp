#include "store/sqlite/wal_frame_vfs.hpp"

#include "testing/temp_dir.hpp"

#include <gtest/gtest.h>
#include <poll.h>
#include <sqlite3.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <functional>
#include <string>

namespace agentwire::store {
namespace {

void exec(sqlite3* db, const char* sql) {
  ASSERT_EQ(sqlite3_exec(db, sql, nullptr, nullptr, nullptr), SQLITE_OK) << sqlite3_errmsg(db);
}

int64_t scalar(sqlite3* db, const char* sql) {
  sqlite3_stmt* st = nullptr;
  EXPECT_EQ(sqlite3_prepare_v2(db, sql, -1, &st, nullptr), SQLITE_OK) << sqlite3_errmsg(db);
  int64_t v = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
  sqlite3_finalize(st);
  return v;
}

std::string text(sqlite3* db, const char* sql) {
  sqlite3_stmt* st = nullptr;
  EXPECT_EQ(sqlite3_prepare_v2(db, sql, -1, &st, nullptr), SQLITE_OK) << sqlite3_errmsg(db);
  std::string v = sqlite3_step(st) == SQLITE_ROW ? reinterpret_cast<const char*>(sqlite3_column_text(st, 0)) : "";
  sqlite3_finalize(st);
  return v;
}

// A connection through `vfs` (nullptr: the default one), in WAL mode, no automatic checkpoint (so
// the rows stay in the WAL, where the other connection must find them).
sqlite3* open(const std::string& path, const char* vfs) {
  sqlite3* db = nullptr;
  EXPECT_EQ(sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, vfs), SQLITE_OK);
  EXPECT_EQ(sqlite3_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA wal_autocheckpoint=0", nullptr,
                         nullptr, nullptr),
            SQLITE_OK)
      << sqlite3_errmsg(db);
  return db;
}

TEST(WalFrameVfsTest, WritesEachCommitOnceAndAnotherConnectionSeesEveryCommitAtOnce) {
  // The frames of a commit are held until its commit frame is complete, then written at once,
  // before SQLite publishes the commit: a connection through the default VFS that reads after
  // each commit must find it whole in the file (were frames still held, it would read a short or
  // stale page).
  testing::TempDir dir;
  auto path = dir.file("frames.db");
  sqlite3* writer = open(path, walFrameVfs());
  exec(writer, "CREATE TABLE t(id INTEGER PRIMARY KEY, x TEXT)");
  sqlite3* reader = open(path, nullptr);
  const WalFrameWrites before = walFrameWrites();
  for (int i = 1; i <= 100; ++i) {
    // Every tenth commit is several pages (overflow pages of a large row).
    exec(writer, i % 10 == 0 ? "INSERT INTO t(x) VALUES (hex(randomblob(20000)))"
                             : "INSERT INTO t(x) VALUES (hex(randomblob(500)))");
    ASSERT_EQ(scalar(reader, "SELECT count(*) FROM t"), i);
    ASSERT_EQ(scalar(reader, "SELECT sum(length(x)) FROM t"), 1000 * i + 39000 * (i / 10));
  }
  const WalFrameWrites after = walFrameWrites();
  EXPECT_EQ(after.writes - before.writes, 100u) << "one write per commit";
  EXPECT_GE(after.frames - before.frames, 100u + 10 * 10)
      << "a frame or more per commit, ten or more for the large rows";
  EXPECT_EQ(text(reader, "PRAGMA integrity_check"), "ok");
  sqlite3_close(reader);
  sqlite3_close(writer);
}

TEST(WalFrameVfsTest, ALargeTransactionGoesOutInBoundedWrites) {
  // 8 MB in one transaction, with a cache large enough not to spill: the frames are held up to
  // 1 MiB at a time and written in chunks the default VFS takes (124 KiB), not one write per frame.
  testing::TempDir dir;
  auto path = dir.file("large.db");
  sqlite3* writer = open(path, walFrameVfs());
  exec(writer, "PRAGMA cache_size=-65536");
  exec(writer, "CREATE TABLE t(id INTEGER PRIMARY KEY, x TEXT)");
  const WalFrameWrites before = walFrameWrites();
  exec(writer, "BEGIN");
  for (int i = 0; i < 2000; ++i) exec(writer, "INSERT INTO t(x) VALUES (hex(randomblob(2000)))");
  exec(writer, "COMMIT");
  const WalFrameWrites after = walFrameWrites();
  const uint64_t frames = after.frames - before.frames;
  const uint64_t writes = after.writes - before.writes;
  const uint64_t bytes = frames * (24 + 4096);
  EXPECT_GE(frames, 2000u);
  EXPECT_GE(writes, bytes / (124 * 1024)) << "no write above the default VFS's limit";
  EXPECT_LE(writes, bytes / (124 * 1024) + bytes / (1 << 20) + 2) << "full chunks but the last of each 1 MiB run";

  sqlite3* reader = open(path, nullptr);
  EXPECT_EQ(scalar(reader, "SELECT count(*) FROM t"), 2000);
  EXPECT_EQ(text(reader, "PRAGMA integrity_check"), "ok");
  sqlite3_close(reader);
  sqlite3_close(writer);
}

TEST(WalFrameVfsTest, SpilledRolledBackAndRewrittenFramesStayConsistent) {
  // A transaction larger than the page cache spills frames into the WAL before its commit; a
  // rollback leaves them there unused; a page written twice in one transaction is rewritten in
  // place (page only, no header) and the checksums of the frames after it are written again
  // (headers only, after reading the frames back). All through the held-frames path.
  testing::TempDir dir;
  auto path = dir.file("spill.db");
  sqlite3* writer = open(path, walFrameVfs());
  exec(writer, "PRAGMA cache_size=8");
  exec(writer, "CREATE TABLE t(id INTEGER PRIMARY KEY, x TEXT)");
  exec(writer, "BEGIN");
  for (int i = 0; i < 300; ++i) exec(writer, "INSERT INTO t(x) VALUES (hex(randomblob(400)))");
  exec(writer, "ROLLBACK");
  exec(writer, "BEGIN");
  for (int i = 0; i < 300; ++i) exec(writer, "INSERT INTO t(x) VALUES (hex(randomblob(400)))");
  exec(writer, "UPDATE t SET x = 'again' WHERE id % 7 = 0");
  exec(writer, "COMMIT");
  for (int i = 0; i < 20; ++i) exec(writer, "UPDATE t SET x = hex(randomblob(100)) WHERE id = 1");

  sqlite3* reader = open(path, nullptr);
  EXPECT_EQ(scalar(reader, "SELECT count(*) FROM t"), 300);
  EXPECT_EQ(scalar(reader, "SELECT count(*) FROM t WHERE x = 'again'"), 42);
  EXPECT_EQ(text(reader, "PRAGMA integrity_check"), "ok");
  sqlite3_close(reader);
  // A checkpoint through the layer copies it all into the database, which then reads alone.
  exec(writer, "PRAGMA wal_checkpoint(TRUNCATE)");
  sqlite3_close(writer);
  sqlite3* after = open(path, nullptr);
  EXPECT_EQ(scalar(after, "SELECT count(*) FROM t"), 300);
  EXPECT_EQ(text(after, "PRAGMA integrity_check"), "ok");
  sqlite3_close(after);
}

// Runs `work` in a child process that is then killed (no close, no checkpoint, nothing flushed on
// the way out); returns what the child reported through a pipe, or -1. Waits at most 60 s.
int32_t runThenKill(const std::function<int32_t()>& work) {
  int pipe_fd[2];
  if (pipe(pipe_fd) != 0) return -1;
  pid_t pid = fork();
  if (pid == 0) {
    close(pipe_fd[0]);
    int32_t reported = work();
    (void)!write(pipe_fd[1], &reported, sizeof reported);
    raise(SIGKILL);
  }
  close(pipe_fd[1]);
  int32_t reported = -1;
  pollfd p{pipe_fd[0], POLLIN, 0};
  if (pid > 0 && poll(&p, 1, 60000) == 1) {
    if (read(pipe_fd[0], &reported, sizeof reported) != static_cast<ssize_t>(sizeof reported)) reported = -1;
  }
  close(pipe_fd[0]);
  if (pid > 0) {
    kill(pid, SIGKILL);  // a child that hung
    int status = 0;
    waitpid(pid, &status, 0);
  }
  return reported;
}

// In the child: a connection through the VFS, as the writer's.
sqlite3* openInChild(const std::string& path, const char* pragmas) {
  sqlite3* db = nullptr;
  sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, walFrameVfs());
  sqlite3_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA wal_autocheckpoint=0", nullptr, nullptr,
               nullptr);
  sqlite3_exec(db, pragmas, nullptr, nullptr, nullptr);
  return db;
}

bool run(sqlite3* db, const char* sql) {
  return sqlite3_exec(db, sql, nullptr, nullptr, nullptr) == SQLITE_OK;
}

TEST(WalFrameVfsTest, EveryCommitSurvivesTheProcessBeingKilled) {
  // Frames are held in memory until their commit frame is complete: a commit must be whole in the
  // file when SQLite returns from it. A child commits and is killed; every row it committed is there.
  testing::TempDir dir;
  auto path = dir.file("killed.db");
  int32_t committed = runThenKill([&] {
    sqlite3* db = openInChild(path, "");
    int32_t n = 0;
    if (run(db, "CREATE TABLE t(id INTEGER PRIMARY KEY, x TEXT)")) {
      while (n < 50 && run(db, "INSERT INTO t(x) VALUES (hex(randomblob(300)))")) ++n;
    }
    return n;
  });
  ASSERT_EQ(committed, 50);
  sqlite3* db = open(path, nullptr);
  EXPECT_EQ(scalar(db, "SELECT count(*) FROM t"), 50);
  EXPECT_EQ(text(db, "PRAGMA integrity_check"), "ok");
  sqlite3_close(db);
}

TEST(WalFrameVfsTest, ACommitThatRewroteSpilledPagesSurvivesTheProcessBeingKilled) {
  // A transaction larger than the cache spills pages into the WAL, changes them again, and at its
  // commit SQLite rewrites those frames' pages in place and then the headers (checksums) of every
  // frame from the first rewritten one to the commit frame: 24-byte writes below the WAL's end, the
  // commit frame's last, after which SQLite writes nothing more. Held, that last header would stay in
  // memory, and a kill would lose the transaction (the frame's old checksum breaks the chain): only
  // frames appended at the end are held.
  testing::TempDir dir;
  auto path = dir.file("rewritten.db");
  int32_t committed = runThenKill([&] {
    sqlite3* db = openInChild(path, "PRAGMA cache_size=8");
    if (!run(db, "CREATE TABLE t(id INTEGER PRIMARY KEY, x TEXT)") || !run(db, "BEGIN")) return 0;
    for (int i = 0; i < 300; ++i) {
      if (!run(db, "INSERT INTO t(x) VALUES (hex(randomblob(400)))")) return 0;
    }
    if (!run(db, "UPDATE t SET x = 'rewritten' WHERE id % 3 = 0") || !run(db, "COMMIT")) return 0;
    return 1;
  });
  ASSERT_EQ(committed, 1);
  sqlite3* db = open(path, nullptr);
  EXPECT_EQ(scalar(db, "SELECT count(*) FROM t"), 300);
  EXPECT_EQ(scalar(db, "SELECT count(*) FROM t WHERE x = 'rewritten'"), 100);
  EXPECT_EQ(text(db, "PRAGMA integrity_check"), "ok");
  sqlite3_close(db);
}

TEST(WalFrameVfsTest, ACommitWhoseWriteFailedIsNotWrittenLater) {
  // A commit whose held frames cannot be written (here the file size limit, as a full disk) fails,
  // and SQLite rolls it back. What the layer held of it is dropped: written later, it would make a
  // transaction that SQLite reported as failed whole in the WAL, and a recovery after a crash would
  // apply it; and kept for a retry, it would fail every read on the connection while the disk is
  // full. A child fills the WAL up to the limit, reads everything back from the WAL with the limit
  // still there, raises it, makes the layer write whatever it holds (a checkpoint reads the WAL)
  // and is killed.
  testing::TempDir dir;
  auto path = dir.file("full.db");
  int32_t committed = runThenKill([&] {
    std::signal(SIGXFSZ, SIG_IGN);
    sqlite3* db = openInChild(path, "");
    if (!run(db, "CREATE TABLE t(id INTEGER PRIMARY KEY, x TEXT)") || !run(db, "INSERT INTO t(x) VALUES ('first')")) {
      return -2;
    }
    struct stat wal {};
    if (stat((path + "-wal").c_str(), &wal) != 0) return -3;
    rlimit limit{};
    getrlimit(RLIMIT_FSIZE, &limit);
    const rlim_t unlimited = limit.rlim_cur;
    limit.rlim_cur = static_cast<rlim_t>(wal.st_size) + 40000;
    if (setrlimit(RLIMIT_FSIZE, &limit) != 0) return -4;
    int32_t n = 1;
    // Rows of several pages each: the failing commit holds frames before its commit frame.
    while (n < 100 && run(db, "INSERT INTO t(x) VALUES (hex(randomblob(6000)))")) ++n;
    // The page cache emptied, the count reads the table's pages from the WAL.
    if (!run(db, "PRAGMA shrink_memory")) return -7;
    sqlite3_stmt* st = nullptr;
    sqlite3_prepare_v2(db, "SELECT count(*) FROM t", -1, &st, nullptr);
    const bool read = sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int(st, 0) == n;
    sqlite3_finalize(st);
    if (!read) return -8;
    limit.rlim_cur = unlimited;
    if (n == 100 || setrlimit(RLIMIT_FSIZE, &limit) != 0) return -5;
    if (!run(db, "PRAGMA wal_checkpoint(PASSIVE)")) return -6;
    return n;
  });
  ASSERT_GT(committed, 1) << "the child's code for what went wrong: " << committed;
  sqlite3* db = open(path, nullptr);
  EXPECT_EQ(scalar(db, "SELECT count(*) FROM t"), committed) << "the failed commit came back";
  EXPECT_EQ(text(db, "PRAGMA integrity_check"), "ok");
  sqlite3_close(db);
}

}  // namespace
}  // namespace agentwire::store
