#include "store/sqlite/sqlite_store.hpp"

#include "core/ids.hpp"
#include "testing/temp_dir.hpp"

#include <gtest/gtest.h>
#include <sqlite3.h>

namespace agentwire::store {
namespace {

class SqliteStoreTest : public ::testing::Test {
 protected:
  void SetUp() override { store_.start(); }
  void TearDown() override { store_.stop(); }

  StoredEvent event(const std::string& user, int64_t seq, const std::string& thread, const std::string& run,
                    const std::string& type = "agent_thinking", const std::string& status = {}) {
    return StoredEvent{seq, user, type, thread, run, core::nowMs(), "{}", status};
  }

  testing::TempDir dir_;
  SqliteStore store_{dir_.file("agentwire.db"), {}};
};

TEST(SqliteSyncTest, NormalByDefaultAndFullWhenAsked) {
  testing::TempDir dir;
  SqliteStore normal{dir.file("normal.db"), {}};
  normal.start();
  EXPECT_EQ(normal.pragma("synchronous").value(), 1);
  normal.stop();
  SqliteStore full{dir.file("full.db"), {}};
  full.setSyncFull(true);
  full.start();
  EXPECT_EQ(full.pragma("synchronous").value(), 2);
  full.stop();
}

TEST(SqliteCacheTest, SixteenMegabytesByDefaultAndWhatIsAsked) {
  // SQLite's own default (2 MB) is not enough for the leaf each active user keeps hot.
  testing::TempDir dir;
  SqliteStore defaults{dir.file("default.db"), {}};
  defaults.start();
  EXPECT_EQ(defaults.pragma("cache_size").value(), -16 * 1024);
  defaults.stop();
  SqliteStore small{dir.file("small.db"), {}};
  small.setCacheMb(3);
  small.start();
  EXPECT_EQ(small.pragma("cache_size").value(), -3 * 1024);
  small.stop();
}

// A database written before threads had an on_busy column (schema 3) opens, keeps its threads, and
// takes the new column.
TEST(SqliteMigrationTest, AVersionThreeDatabaseGetsOnBusy) {
  testing::TempDir dir;
  std::string path = dir.file("old.db");
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db,
                         "CREATE TABLE threads (id TEXT PRIMARY KEY, user_id TEXT NOT NULL, title TEXT NOT NULL, "
                         "created_ms INTEGER NOT NULL, system INTEGER NOT NULL DEFAULT 0, agent TEXT NOT NULL DEFAULT "
                         "''); INSERT INTO threads VALUES ('thr_old', 'ann', 'kept', 1, 0, 'echo'); "
                         "PRAGMA user_version=3;",
                         nullptr, nullptr, nullptr),
            SQLITE_OK);
  sqlite3_close(db);
  SqliteStore store{path, {}};
  store.start();
  auto old = store.findThread("thr_old").value();
  ASSERT_TRUE(old);
  EXPECT_EQ(old->title, "kept");
  EXPECT_EQ(old->agent, "echo");
  EXPECT_EQ(old->on_busy, "");
  auto fresh = store.createThread("ann", "new", false, "", "interrupt");
  ASSERT_TRUE(fresh.ok()) << fresh.error().message;
  EXPECT_EQ(store.findThread(fresh->id).value()->on_busy, "interrupt");
  store.stop();
}

// SQLite-only: what a full database does. The rest of the contract is in store_contract_test.cpp.
TEST_F(SqliteStoreTest, ATerminalEventThatCannotBeStoredLeavesTheRunInFlight) {
  auto t = store_.createThread("ann", "t", false);
  ASSERT_TRUE(t.ok());
  WriteBatch b;
  b.messages.push_back(Message{"m1", t->id, "ann", "user", "hi", "run_1", core::nowMs()});
  b.runs.push_back(RunRecord{"run_1", "ann", t->id, "echo", "node-a", "queued", core::nowMs()});
  ASSERT_TRUE(store_.commit(b).ok());
  auto open = store_.unfinishedRuns("node-a");
  ASSERT_TRUE(open.ok());
  ASSERT_EQ(open->size(), 1u);
  EXPECT_EQ((*open)[0].id, "run_1");
  EXPECT_EQ((*open)[0].status, "queued");
  ASSERT_TRUE(
      store_
          .appendEvents({event("ann", 1, t->id, "run_1", "agent_started", "running"), event("ann", 2, t->id, "run_1")})
          .ok());
  EXPECT_EQ(store_.unfinishedRuns("node-a")->size(), 1u) << "still in flight";
  // A terminal event that fails to commit leaves the run in flight: all or none.
  store_.limitPagesForTest(1);
  auto big = event("ann", 0, t->id, "run_1", "agent_completed", "completed");
  big.data_json = "\"" + std::string(64 * 1024, 'x') + "\"";
  EXPECT_FALSE(store_.appendEvents({big}).ok());
  store_.limitPagesForTest(0);
  EXPECT_EQ(store_.unfinishedRuns("node-a")->size(), 1u);
  ASSERT_TRUE(store_.appendEvents({event("ann", 3, t->id, "run_1", "agent_completed", "completed")}).ok());
  EXPECT_TRUE(store_.unfinishedRuns("node-a")->empty());
}

TEST_F(SqliteStoreTest, AFullDatabaseIsUnavailableUnhealthyAndRecovers) {
  auto t = store_.createThread("bo", "t", false);
  ASSERT_TRUE(t.ok());
  store_.limitPagesForTest(1);  // no room for another page: writes fail with SQLITE_FULL
  std::string big(64 * 1024, 'x');
  WriteBatch b;
  b.messages.push_back(Message{"m1", t->id, "bo", "user", big, "", core::nowMs()});
  auto r = store_.commit(b);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, kUnavailable);
  EXPECT_NE(r.error().message.find("full"), std::string::npos) << r.error().message;
  EXPECT_EQ(store_.health().state, lifecycle::HealthState::Unhealthy);
  EXPECT_FALSE(store_.probeWrite().ok() && store_.commit(b).ok());
  // Reads still work, and nothing half-written is visible.
  EXPECT_TRUE(store_.listMessages(t->id, 10, 0)->empty());
  store_.limitPagesForTest(0);  // space returns
  EXPECT_TRUE(store_.probeWrite().ok());
  EXPECT_EQ(store_.health().state, lifecycle::HealthState::Healthy);
  ASSERT_TRUE(store_.commit(b).ok());
  EXPECT_EQ(store_.listMessages(t->id, 10, 0)->size(), 1u);
}

TEST_F(SqliteStoreTest, AFailedCommitAssignsNoSeq) {
  auto t = store_.createThread("ed", "t", false);
  store_.limitPagesForTest(1);
  WriteBatch b;
  b.messages.push_back(Message{"m1", t->id, "ed", "user", std::string(64 * 1024, 'x'), "", core::nowMs()});
  b.events = {event("ed", 0, t->id, "r")};
  ASSERT_FALSE(store_.commit(b).ok());
  store_.limitPagesForTest(0);
  b.messages.clear();
  auto r = store_.commit(b);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->seqs, (std::vector<int64_t>{1})) << "the failed batch took no seq: no gap";
}

}  // namespace
}  // namespace agentwire::store
