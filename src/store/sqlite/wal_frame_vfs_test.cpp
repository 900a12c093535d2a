#include "store/sqlite/wal_frame_vfs.hpp"

#include "testing/temp_dir.hpp"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
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

TEST(WalFrameVfsTest, WritesEachFrameWithItsHeaderAndAnotherConnectionReadsThemBack) {
  testing::TempDir dir;
  auto path = dir.file("frames.db");
  sqlite3* writer = open(path, walFrameVfs());
  exec(writer, "CREATE TABLE t(id INTEGER PRIMARY KEY, x TEXT)");
  const uint64_t before = walFramesJoined();
  for (int i = 0; i < 100; ++i) exec(writer, "INSERT INTO t(x) VALUES (hex(randomblob(500)))");
  EXPECT_GE(walFramesJoined() - before, 100u) << "a frame or more per commit";

  sqlite3* reader = open(path, nullptr);
  EXPECT_EQ(scalar(reader, "SELECT count(*) FROM t"), 100);
  EXPECT_EQ(text(reader, "PRAGMA integrity_check"), "ok");
  sqlite3_close(reader);
  sqlite3_close(writer);
}

TEST(WalFrameVfsTest, SpilledRolledBackAndRewrittenFramesStayConsistent) {
  // A transaction larger than the page cache spills frames into the WAL before its commit; a
  // rollback leaves them there unused; a page written twice in one transaction is rewritten in
  // place (page only, no header) and the checksums of the frames after it are written again
  // (headers only, after reading the frames back). All through the held-header path.
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

TEST(WalFrameVfsTest, EveryCommitSurvivesTheProcessBeingKilled) {
  // The header is held in memory until its page comes: a commit must be whole in the file when
  // SQLite returns from it. A child commits and is killed (no close, no checkpoint, nothing
  // flushed on the way out); every row it committed is there.
  testing::TempDir dir;
  auto path = dir.file("killed.db");
  int pipe_fd[2];
  ASSERT_EQ(pipe(pipe_fd), 0);
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    close(pipe_fd[0]);
    sqlite3* db = nullptr;
    sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, walFrameVfs());
    sqlite3_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA wal_autocheckpoint=0", nullptr,
                 nullptr, nullptr);
    int32_t committed = 0;
    if (sqlite3_exec(db, "CREATE TABLE t(id INTEGER PRIMARY KEY, x TEXT)", nullptr, nullptr, nullptr) == SQLITE_OK) {
      for (int i = 0; i < 50; ++i) {
        if (sqlite3_exec(db, "INSERT INTO t(x) VALUES (hex(randomblob(300)))", nullptr, nullptr, nullptr) !=
            SQLITE_OK) {
          break;
        }
        ++committed;
      }
    }
    (void)!write(pipe_fd[1], &committed, sizeof committed);
    raise(SIGKILL);
  }
  close(pipe_fd[1]);
  int32_t committed = -1;
  ASSERT_EQ(read(pipe_fd[0], &committed, sizeof committed), static_cast<ssize_t>(sizeof committed));
  close(pipe_fd[0]);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFSIGNALED(status));
  ASSERT_EQ(committed, 50);

  sqlite3* db = open(path, nullptr);
  EXPECT_EQ(scalar(db, "SELECT count(*) FROM t"), 50);
  EXPECT_EQ(text(db, "PRAGMA integrity_check"), "ok");
  sqlite3_close(db);
}

}  // namespace
}  // namespace agentwire::store
