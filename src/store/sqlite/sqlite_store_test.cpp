#include "store/sqlite/sqlite_store.hpp"

#include "core/ids.hpp"
#include "testing/temp_dir.hpp"

#include <gtest/gtest.h>

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

TEST_F(SqliteStoreTest, ARunIsInFlightFromItsMessageToItsTerminalEventInTheSameCommits) {
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
  auto bad = store_.appendEvents({event("ann", 9, t->id, "run_1", "agent_completed", "completed")});
  EXPECT_FALSE(bad.ok());
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

TEST_F(SqliteStoreTest, AnEventOutOfSeqOrderFailsTheWholeBatchAsInternal) {
  auto t = store_.createThread("cy", "t", false);
  WriteBatch b;
  b.messages.push_back(Message{"m1", t->id, "cy", "user", "hi", "", core::nowMs()});
  b.events = {event("cy", 2, t->id, "r")};  // the stream is empty: 2 does not follow 0
  auto r = store_.commit(b);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, "internal");
  EXPECT_TRUE(store_.listMessages(t->id, 10, 0)->empty()) << "all or none";
  EXPECT_NE(store_.health().state, lifecycle::HealthState::Unhealthy) << "a broken invariant is not an outage";
}

TEST_F(SqliteStoreTest, ThreadsArePagedNewestFirstWithACursor) {
  std::vector<std::string> ids;
  for (int i = 0; i < 5; ++i) ids.push_back(store_.createThread("dee", "t" + std::to_string(i), false)->id);
  store_.createThread("dee", "system", true);
  EXPECT_EQ(store_.countThreads("dee").value(), 5);
  auto first = store_.listThreads("dee", 2, {});
  ASSERT_EQ(first->size(), 2u);
  std::vector<std::string> seen;
  ThreadCursor cursor;
  for (;;) {
    auto page = store_.listThreads("dee", 2, cursor);
    ASSERT_TRUE(page.ok());
    if (page->empty()) break;
    for (const auto& t : *page) seen.push_back(t.id);
    cursor = ThreadCursor{page->back().created_ms, page->back().id};
  }
  ASSERT_EQ(seen.size(), 5u) << "every thread once, system threads never";
  std::sort(seen.begin(), seen.end());
  std::sort(ids.begin(), ids.end());
  EXPECT_EQ(seen, ids);
}

TEST_F(SqliteStoreTest, DeleteThreadRemovesItsMessagesAndRuns) {
  auto t = store_.createThread("eve", "t", true);
  WriteBatch b;
  b.messages.push_back(Message{"m1", t->id, "eve", "user", "hi", "run_x", core::nowMs()});
  b.runs.push_back(RunRecord{"run_x", "eve", t->id, "echo", "n", "queued", core::nowMs()});
  ASSERT_TRUE(store_.commit(b).ok());
  EXPECT_TRUE(store_.deleteThread(t->id).value());
  EXPECT_FALSE(store_.findThread(t->id).value());
  EXPECT_TRUE(store_.listMessages(t->id, 10, 0)->empty());
  EXPECT_TRUE(store_.unfinishedRuns("n")->empty());
}

}  // namespace
}  // namespace agentwire::store
