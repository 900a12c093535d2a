// What only the PostgreSQL store has to hold: several nodes on one database.
#include "store/postgres/postgres_store.hpp"

#include "core/ids.hpp"
#include "testing/postgres.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <thread>

namespace agentwire::store {
namespace {

class PostgresStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto url = testing::postgresUrl();
    if (!url) {
      if (testing::requireServices())
        FAIL() << "AW_TEST_PG_URL is not set: scripts/test-services did not start PostgreSQL";
      GTEST_SKIP() << "no PostgreSQL (run through scripts/run-tests)";
    }
    db_ = std::make_unique<testing::ScratchDatabase>(*url);
  }
  std::unique_ptr<testing::ScratchDatabase> db_;
};

TEST_F(PostgresStoreTest, NodesStartingTogetherApplyTheMigrationsOnce) {
  std::vector<std::unique_ptr<PostgresStore>> nodes;
  for (int i = 0; i < 4; ++i)
    nodes.push_back(std::make_unique<PostgresStore>(db_->url(), 1, std::vector<std::string>{}));
  std::vector<std::thread> starts;
  std::atomic<int> failed{0};
  for (auto& n : nodes) {
    starts.emplace_back([&n, &failed] {
      try {
        n->start();
      } catch (const std::exception&) {
        ++failed;
      }
    });
  }
  for (auto& t : starts) t.join();
  EXPECT_EQ(failed.load(), 0);
  for (auto& n : nodes) EXPECT_TRUE(n->probeWrite().ok());
  for (auto& n : nodes) n->stop();
}

TEST_F(PostgresStoreTest, AnExpiredLeaseIsClaimedByOneNodeAndAClaimThatExpiresIsClaimedAgain) {
  PostgresStore a(db_->url(), 1, {});
  PostgresStore b(db_->url(), 2, {});
  a.start();
  b.start();
  ASSERT_TRUE(a.acquireLease("node-a", 60000).ok());
  EXPECT_TRUE(b.claimExpiredLeases("node-b", 60000)->empty()) << "a live lease is not claimed";
  EXPECT_TRUE(*a.renewLease("node-a", 60000));
  // A negative duration makes a lease that has already expired: what a dead node leaves.
  ASSERT_TRUE(a.acquireLease("node-a", -1).ok());
  std::vector<std::string> by_b, by_c;
  std::thread tb([&] { by_b = *b.claimExpiredLeases("node-b", 60000); });
  std::thread tc([&] { by_c = *b.claimExpiredLeases("node-c", 60000); });
  tb.join();
  tc.join();
  EXPECT_EQ(by_b.size() + by_c.size(), 1u) << "one claimant";
  EXPECT_FALSE(*a.renewLease("node-a", 60000)) << "a claimed lease tells its node it was taken over";
  EXPECT_TRUE(b.claimExpiredLeases("node-d", 60000)->empty()) << "a live claim is not claimed again";
  ASSERT_TRUE(b.dropLease("node-a").ok());
  ASSERT_TRUE(a.acquireLease("node-a", 60000).ok());
  EXPECT_TRUE(*a.renewLease("node-a", 60000)) << "a node that starts again takes a new lease";
  // A claimant that dies in the middle of a takeover: its claim expires and another node takes over.
  ASSERT_TRUE(a.acquireLease("node-e", -1).ok());
  EXPECT_EQ(*b.claimExpiredLeases("node-b", -1), std::vector<std::string>{"node-e"});
  EXPECT_EQ(*b.claimExpiredLeases("node-c", 60000), std::vector<std::string>{"node-e"});
  a.stop();
  b.stop();
}

TEST_F(PostgresStoreTest, TwoWritersOfOneStreamNeverShareASeqNorLeaveAGap) {
  PostgresStore a(db_->url(), 1, {});
  PostgresStore b(db_->url(), 1, {});
  a.start();
  b.start();
  auto t = a.createThread("shared", "t", false);
  ASSERT_TRUE(t.ok());
  // Both nodes commit batches for the same users at once; the users appear in opposite orders in
  // the two nodes' batches, which would deadlock if rows were locked in batch order.
  auto writer = [&](PostgresStore& s, bool reversed, std::vector<int64_t>& seqs) {
    for (int i = 0; i < 50; ++i) {
      WriteBatch batch;
      for (int k = 0; k < 4; ++k) {
        std::string user = "u" + std::to_string(reversed ? 3 - k : k);
        batch.events.push_back(StoredEvent{0, user, "agent_thinking", t->id, "r", core::nowMs(), "{}", {}});
        batch.events.push_back(StoredEvent{0, "shared", "agent_thinking", t->id, "r", core::nowMs(), "{}", {}});
      }
      auto r = s.commit(batch);
      ASSERT_TRUE(r.ok()) << r.error().message;
      for (std::size_t j = 0; j < batch.events.size(); ++j) {
        if (batch.events[j].user_id == "shared") seqs.push_back(r->seqs[j]);
      }
    }
  };
  std::vector<int64_t> from_a, from_b;
  std::thread ta([&] { writer(a, false, from_a); });
  std::thread tb([&] { writer(b, true, from_b); });
  ta.join();
  tb.join();
  std::vector<int64_t> all(from_a);
  all.insert(all.end(), from_b.begin(), from_b.end());
  std::sort(all.begin(), all.end());
  ASSERT_EQ(all.size(), 400u);
  for (std::size_t i = 0; i < all.size(); ++i) ASSERT_EQ(all[i], static_cast<int64_t>(i) + 1) << "gapless, unique";
  EXPECT_TRUE(std::is_sorted(from_a.begin(), from_a.end())) << "a node's own events keep their order";
  EXPECT_EQ(a.streamInfo("shared")->last_seq, 400);
  auto stored = a.eventsAfter("shared", 0, 1000);
  ASSERT_EQ(stored->size(), 400u);
  a.stop();
  b.stop();
}

TEST_F(PostgresStoreTest, AnUnreachableDatabaseIsUnavailableNotAnException) {
  PostgresStore s(db_->url(), 1, {});
  s.start();
  s.stop();
  // A port nobody listens on: every call answers unavailable.
  PostgresStore gone("postgresql://postgres@127.0.0.1:1/postgres?connect_timeout=2", 1, {});
  EXPECT_THROW(gone.start(), std::runtime_error) << "startup fails fast with a clear message";
  auto r = gone.streamInfo("x");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, kUnavailable);
}

}  // namespace
}  // namespace agentwire::store
