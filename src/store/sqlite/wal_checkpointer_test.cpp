#include "store/sqlite/wal_checkpointer.hpp"

#include "core/logging.hpp"
#include "store/sqlite/sqlite_store.hpp"
#include "testing/temp_dir.hpp"

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <chrono>
#include <string>
#include <thread>

namespace agentwire::store {
namespace {

void exec(sqlite3* db, const char* sql) {
  ASSERT_EQ(sqlite3_exec(db, sql, nullptr, nullptr, nullptr), SQLITE_OK) << sqlite3_errmsg(db);
}

int64_t scalar(sqlite3* db, const char* sql, int column = 0) {
  sqlite3_stmt* st = nullptr;
  EXPECT_EQ(sqlite3_prepare_v2(db, sql, -1, &st, nullptr), SQLITE_OK) << sqlite3_errmsg(db);
  int64_t v = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, column) : -1;
  sqlite3_finalize(st);
  return v;
}

void insertPage(sqlite3* db) {
  // One transaction of about one page: at least one WAL frame per commit.
  exec(db, "INSERT INTO t(x) VALUES (randomblob(3000))");
}

// The writer's connection, in WAL mode, with one table; nullptr (and a failure) if it cannot be set up.
sqlite3* openWriter(const std::string& path) {
  sqlite3* db = nullptr;
  bool ok = sqlite3_open(path.c_str(), &db) == SQLITE_OK &&
            sqlite3_exec(db, "PRAGMA journal_mode=WAL", nullptr, nullptr, nullptr) == SQLITE_OK &&
            sqlite3_exec(db, "CREATE TABLE t(id INTEGER PRIMARY KEY, x BLOB)", nullptr, nullptr, nullptr) == SQLITE_OK;
  EXPECT_TRUE(ok) << sqlite3_errmsg(db);
  if (!ok) sqlite3_close(db);
  return ok ? db : nullptr;
}

TEST(WalCheckpointerTest, CheckpointsBesideTheWriterAndRestartsTheWal) {
  testing::TempDir dir;
  auto path = dir.file("wal.db");
  sqlite3* writer = openWriter(path);
  ASSERT_NE(writer, nullptr);
  // A WAL of 200 transactions, written before the checkpointer runs (so the test does not depend
  // on how it interleaves with the writer).
  exec(writer, "PRAGMA wal_autocheckpoint=0");
  for (int i = 0; i < 200; ++i) insertPage(writer);
  WalCheckpointer checkpointer(path, {.frames = 20, .restart_frames = 80, .sync_full = false}, core::logger("store"));
  checkpointer.start(writer);
  insertPage(writer);  // the commit that tells the checkpointer how large the WAL is
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (checkpointer.counts().restart == 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  auto counts = checkpointer.counts();
  EXPECT_EQ(counts.restart, 1);
  EXPECT_GE(counts.passive, 1);
  // The database was synced beside the writer before the restart (the restart's own sync then
  // has little left to flush while the writer waits).
  EXPECT_GE(counts.synced, 1);
  // The next commit writes from the start of the WAL again: it holds one transaction, not 202.
  insertPage(writer);
  EXPECT_LT(scalar(writer, "PRAGMA wal_checkpoint(PASSIVE)", 1), 5);
  checkpointer.stop();
  EXPECT_EQ(scalar(writer, "SELECT count(*) FROM t"), 202);
  sqlite3_close(writer);
  // Everything is in the database file: a fresh connection reads it all.
  sqlite3* reader = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &reader), SQLITE_OK);
  EXPECT_EQ(scalar(reader, "SELECT count(*) FROM t"), 202);
  sqlite3_close(reader);
}

TEST(WalCheckpointerTest, BelowTheIntervalNothingIsCheckpointed) {
  testing::TempDir dir;
  auto path = dir.file("wal.db");
  sqlite3* writer = openWriter(path);
  ASSERT_NE(writer, nullptr);
  WalCheckpointer checkpointer(path, {.frames = 1000, .restart_frames = 4000, .sync_full = false},
                               core::logger("store"));
  checkpointer.start(writer);
  for (int i = 0; i < 50; ++i) insertPage(writer);
  // SQLite's own automatic checkpoint (every 1,000 frames by default) is replaced, and ours has
  // not been reached: the WAL holds every frame written.
  EXPECT_GE(scalar(writer, "PRAGMA wal_checkpoint(PASSIVE)", 1), 50);
  checkpointer.stop();
  EXPECT_EQ(checkpointer.counts().passive, 0);
  sqlite3_close(writer);
}

TEST(BusyWaitTest, GivesUpAfterItsTimeoutAndGetsTheLockOnceItIsFree) {
  testing::TempDir dir;
  auto path = dir.file("busy.db");
  sqlite3* holder = openWriter(path);
  ASSERT_NE(holder, nullptr);
  sqlite3* waiter = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &waiter), SQLITE_OK);
  setBusyWait(waiter, 30);
  exec(holder, "BEGIN IMMEDIATE");
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(sqlite3_exec(waiter, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr), SQLITE_BUSY);
  // It waited (at least) its timeout: it slept that long in steps before giving up.
  EXPECT_GE(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(30));
  // A lock released while it waits is taken: the holder commits from another thread.
  setBusyWait(waiter, 5000);
  std::thread release([&] { exec(holder, "COMMIT"); });
  EXPECT_EQ(sqlite3_exec(waiter, "BEGIN IMMEDIATE; INSERT INTO t(x) VALUES (1); COMMIT", nullptr, nullptr, nullptr),
            SQLITE_OK)
      << sqlite3_errmsg(waiter);
  release.join();
  EXPECT_EQ(scalar(waiter, "SELECT count(*) FROM t"), 1);
  sqlite3_close(waiter);
  sqlite3_close(holder);
}

TEST(SqliteOwnerTest, ASecondStoreOnTheSameFileIsRefusedUntilTheFirstStops) {
  testing::TempDir dir;
  SqliteStore first{dir.file("agentwire.db"), {}};
  first.start();
  SqliteStore second{dir.file("agentwire.db"), {}};
  try {
    second.start();
    ADD_FAILURE() << "a second store opened a file in use";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("in use by another agentwire process"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(static_cast<bool>(first.createThread("ann", "still mine", false)));
  first.stop();
  second.start();
  EXPECT_TRUE(static_cast<bool>(second.createThread("ann", "now mine", false)));
  second.stop();
}

}  // namespace
}  // namespace agentwire::store
