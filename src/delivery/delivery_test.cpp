#include "delivery/delivery.hpp"

#include "core/ids.hpp"
#include "delivery/in_process_connection.hpp"
#include "store/sqlite/sqlite_store.hpp"
#include "testing/temp_dir.hpp"

#include <gtest/gtest.h>

#include <thread>

namespace agentwire::delivery {
namespace {

using agentwire::delivery::InProcessConnection;

class DeliveryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_.start();
    delivery_.start();
  }
  void TearDown() override {
    delivery_.stop();
    store_.stop();
  }
  // Delivery is asynchronous (group commit); tests look at the result once it has happened.
  // Returns the head of the user's stream once committed: the event's seq when nothing else is
  // delivered to the user meanwhile.
  core::Result<int64_t> deliverSync(const std::string& user, Event ev) {
    auto r = delivery_.deliver(user, std::move(ev));
    delivery_.flush();
    if (!r) return r.error();
    return store_.streamInfo(user)->last_seq;
  }

  std::string threadOf(const std::string& user) { return store_.createThread(user, "t", false)->id; }
  Event event(const std::string& thread, const std::string& type = "agent_thinking") {
    return Event{type, thread, "run_1", {{"step", 1}}, {}};
  }

  testing::TempDir dir_;
  store::SqliteStore store_{dir_.file("agentwire.db"), {}};
  Delivery delivery_{store_, {}};
};

// The seed's "thread connection consistency" test.
TEST_F(DeliveryTest, UserWithoutConnectionGetsTheEventOnResume) {
  auto thread = threadOf("alice");
  auto seq = deliverSync("alice", event(thread));
  ASSERT_TRUE(seq.ok()) << seq.error().message;
  EXPECT_EQ(seq.value(), 1);
  EXPECT_EQ(delivery_.stats().failures.load(), 0u);

  auto conn = std::make_shared<InProcessConnection>("c1", "alice");
  auto info = *delivery_.attach(conn, false);
  EXPECT_EQ(info.last_seq, 1);
  auto r = delivery_.resume(*conn, 0, info.epoch, "r");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(conn->seqs(), std::vector<int64_t>{1});
  deliverSync("alice", event(thread));
  EXPECT_EQ(conn->seqs(), (std::vector<int64_t>{1, 2})) << "received once, then live";
}

TEST_F(DeliveryTest, EveryConnectionOfAUserReceivesEveryEventInSeqOrder) {
  auto thread = threadOf("bob");
  auto a = std::make_shared<InProcessConnection>("a", "bob");
  auto b = std::make_shared<InProcessConnection>("b", "bob");
  delivery_.attach(a, true);
  delivery_.attach(b, true);
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(deliverSync("bob", event(thread)).ok());
  std::vector<int64_t> want(20);
  for (int i = 0; i < 20; ++i) want[i] = i + 1;
  EXPECT_EQ(a->seqs(), want);
  EXPECT_EQ(b->seqs(), want);
  EXPECT_EQ(delivery_.connectionsOf("bob"), 2u);
  EXPECT_EQ(delivery_.userCount(), 1u);
}

TEST_F(DeliveryTest, ForeignThreadIsRefusedAndCounted) {
  auto thread = threadOf("alice");
  auto mallory = std::make_shared<InProcessConnection>("m", "mallory");
  delivery_.attach(mallory, true);
  auto r = deliverSync("mallory", event(thread));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, "forbidden");
  EXPECT_NE(r.error().message.find(thread), std::string::npos);
  EXPECT_NE(r.error().message.find("mallory"), std::string::npos);
  EXPECT_NE(r.error().message.find("1 active connections"), std::string::npos) << r.error().message;
  EXPECT_TRUE(mallory->frames().empty());
  EXPECT_EQ(store_.streamInfo("alice")->last_seq, 0);
  auto missing = deliverSync("alice", event("thr_nope"));
  EXPECT_EQ(missing.error().code, "thread_not_found");
  EXPECT_EQ(delivery_.stats().failures.load(), 2u);
}

TEST_F(DeliveryTest, HeldConnectionReceivesNothingUntilResumeThenAllInOrder) {
  auto thread = threadOf("carol");
  deliverSync("carol", event(thread));
  auto conn = std::make_shared<InProcessConnection>("c", "carol");
  auto info = *delivery_.attach(conn, false);
  deliverSync("carol", event(thread));  // arrives while held
  EXPECT_TRUE(conn->frames().empty());
  ASSERT_TRUE(delivery_.resume(*conn, 0, info.epoch, "r").ok());
  deliverSync("carol", event(thread));
  EXPECT_EQ(conn->seqs(), (std::vector<int64_t>{1, 2, 3}));
}

TEST_F(DeliveryTest, LargeReplayGoesOutInBudgetedStepsAndStaysInOrder) {
  delivery_.setReplayBudget({3, SIZE_MAX});
  auto thread = threadOf("ivy");
  for (int i = 0; i < 10; ++i) deliverSync("ivy", event(thread));
  auto conn = std::make_shared<InProcessConnection>("c", "ivy");
  auto info = *delivery_.attach(conn, false);
  auto r = delivery_.resume(*conn, 0, info.epoch, "r1");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.value(), Delivery::ResumeOutcome::Replaying) << "still catching up";
  EXPECT_EQ(conn->seqs(), (std::vector<int64_t>{1, 2, 3}));
  EXPECT_TRUE(conn->replaying.load());
  // A live event during the replay is not sent ahead of older ones.
  deliverSync("ivy", event(thread));
  EXPECT_EQ(conn->seqs().size(), 3u);
  while (conn->replaying.load()) delivery_.pump(*conn);
  std::vector<int64_t> want;
  for (int i = 1; i <= 11; ++i) want.push_back(i);
  EXPECT_EQ(conn->seqs(), want);
  auto frames = conn->frames();
  EXPECT_EQ(frames.back().at("type").as_string(), "resume_complete");
  EXPECT_EQ(frames.back().at("id").as_string(), "r1");
  EXPECT_EQ(frames.back().at("data").at("to_seq").as_int64(), 11);
  deliverSync("ivy", event(thread));
  EXPECT_EQ(conn->seqs().back(), 12) << "live after the replay";
}

TEST_F(DeliveryTest, GoLiveSendsWhatArrivedWhileHeld) {
  auto thread = threadOf("dan");
  auto conn = std::make_shared<InProcessConnection>("c", "dan");
  delivery_.attach(conn, false);
  deliverSync("dan", event(thread));
  delivery_.goLive(*conn);
  deliverSync("dan", event(thread));
  EXPECT_EQ(conn->seqs(), (std::vector<int64_t>{1, 2}));
}

TEST_F(DeliveryTest, ResumeWithWrongEpochOrFutureSeqRequiresResync) {
  auto thread = threadOf("erin");
  deliverSync("erin", event(thread));
  auto conn = std::make_shared<InProcessConnection>("c", "erin");
  auto info = *delivery_.attach(conn, false);
  EXPECT_EQ(delivery_.resume(*conn, 0, "ep_other", "r1").value(), Delivery::ResumeOutcome::Resync);
  EXPECT_EQ(delivery_.resume(*conn, 99, info.epoch, "r2").value(), Delivery::ResumeOutcome::Resync);
  auto frames = conn->frames();
  ASSERT_EQ(frames.size(), 2u);
  EXPECT_EQ(frames[0].at("type").as_string(), "resync_required");
  EXPECT_EQ(frames[0].at("id").as_string(), "r1");
  EXPECT_EQ(frames[1].at("id").as_string(), "r2");
}

// resync_required is the first thing the connection gets after asking: it goes out before the
// connection turns live, so no live event can come ahead of it.
TEST_F(DeliveryTest, ResyncNoticeComesBeforeAnyLiveEvent) {
  auto thread = threadOf("rhea");
  deliverSync("rhea", event(thread));
  auto conn = std::make_shared<InProcessConnection>("c", "rhea");
  delivery_.attach(conn, false);
  std::atomic<bool> go{true};
  std::thread producer([&] {
    while (go.load()) delivery_.deliver("rhea", event(thread));
  });
  ASSERT_EQ(delivery_.resume(*conn, 0, "ep_stale", "r").value(), Delivery::ResumeOutcome::Resync);
  while (conn->frames().size() < 5) std::this_thread::yield();
  go = false;
  producer.join();
  delivery_.flush();
  auto frames = conn->frames();
  EXPECT_EQ(frames.front().at("type").as_string(), "resync_required");
  int64_t head = frames.front().at("data").at("last_seq").as_int64();
  EXPECT_EQ(frames[1].at("seq").as_int64(), head + 1) << "live from the head it announced, no gap";
}

TEST_F(DeliveryTest, ConcurrentDeliveriesKeepSeqGaplessAndOrderedPerConnection) {
  auto thread = threadOf("fay");
  auto conn = std::make_shared<InProcessConnection>("c", "fay");
  delivery_.attach(conn, true);
  std::vector<std::thread> ts;
  for (int t = 0; t < 4; ++t) {
    ts.emplace_back([&] {
      for (int i = 0; i < 50; ++i) ASSERT_TRUE(deliverSync("fay", event(thread)).ok());
    });
  }
  for (auto& t : ts) t.join();
  delivery_.flush();
  auto seqs = conn->seqs();
  ASSERT_EQ(seqs.size(), 200u);
  for (int i = 0; i < 200; ++i) EXPECT_EQ(seqs[i], i + 1);
}

TEST_F(DeliveryTest, AcksNeverMoveBackwards) {
  auto thread = threadOf("gus");
  for (int i = 0; i < 5; ++i) deliverSync("gus", event(thread));
  delivery_.ack("gus", 4);
  delivery_.ack("gus", 2);
  delivery_.flush();  // acks are written by the delivery writer, off the caller's thread
  EXPECT_EQ(store_.streamInfo("gus")->acked_seq, 4);
  delivery_.ack("gus", 2);
  delivery_.flush();
  EXPECT_EQ(store_.streamInfo("gus")->acked_seq, 4) << "an ack never moves backwards";
  delivery_.ack("gus", 100);
  delivery_.flush();
  EXPECT_EQ(store_.streamInfo("gus")->acked_seq, 5) << "an ack cannot pass the last appended seq";
}

TEST_F(DeliveryTest, ManyQueuedEventsAreCommittedInGroupsAndArriveInOrder) {
  auto thread = threadOf("jo");
  auto conn = std::make_shared<InProcessConnection>("c", "jo");
  delivery_.attach(conn, true);
  for (int i = 0; i < 3000; ++i) ASSERT_TRUE(delivery_.deliver("jo", event(thread)).ok());
  delivery_.flush();
  auto seqs = conn->seqs();
  ASSERT_EQ(seqs.size(), 3000u);
  for (int i = 0; i < 3000; ++i) ASSERT_EQ(seqs[i], i + 1);
  EXPECT_EQ(store_.streamInfo("jo")->last_seq, 3000);
  EXPECT_EQ(delivery_.stats().appended.load(), 3000u);
}

TEST_F(DeliveryTest, StopCommitsEverythingQueued) {
  auto thread = threadOf("kim");
  for (int i = 0; i < 500; ++i) delivery_.deliver("kim", event(thread));
  delivery_.stop();
  EXPECT_EQ(store_.streamInfo("kim")->last_seq, 500);
  EXPECT_EQ(deliverSync("kim", event(thread)).error().code, "not_ready");
}

TEST_F(DeliveryTest, FramesAreValidJsonWhateverTheFieldsContain) {
  auto thread = threadOf("lee");
  auto conn = std::make_shared<InProcessConnection>("c", "lee");
  delivery_.attach(conn, true);
  ASSERT_TRUE(deliverSync("lee", Event{"odd\"type\\\n", thread, "run\t1", {{"text", "quote \" and \u0001"}}, {}}).ok());
  auto f = conn->frames().at(0);  // InProcessConnection parses every frame
  EXPECT_EQ(f.at("type").as_string(), "odd\"type\\\n");
  EXPECT_EQ(f.at("run_id").as_string(), "run\t1");
  EXPECT_EQ(f.at("data").at("text").as_string(), "quote \" and \u0001");
  EXPECT_EQ(f.at("seq").as_int64(), 1);
}

TEST_F(DeliveryTest, RetentionKeepsTheNewestEventsAndOlderResumesNeedResync) {
  delivery_.stop();
  delivery_.setRetention({20, 0});
  delivery_.start();
  auto thread = threadOf("max");
  for (int i = 0; i < 100; ++i) delivery_.deliver("max", event(thread));
  delivery_.flush();
  auto info = *store_.streamInfo("max");
  EXPECT_EQ(info.last_seq, 100);
  EXPECT_GE(info.first_seq, 100 - 20 - 16 + 1) << "at most the bound plus one pruning step is kept";
  EXPECT_LE(info.first_seq, 81);
  auto conn = std::make_shared<InProcessConnection>("c", "max");
  delivery_.attach(conn, false);
  EXPECT_EQ(delivery_.resume(*conn, 3, info.epoch, "r").value(), Delivery::ResumeOutcome::Resync);
  auto ok = delivery_.resume(*conn, info.first_seq - 1, info.epoch, "r2");
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(conn->seqs().front(), info.first_seq);
  EXPECT_EQ(conn->seqs().back(), 100);
}

TEST_F(DeliveryTest, ThreadInfoGivesOwnerAndAgentAndRemembersNewThreads) {
  auto t = store_.createThread("tia", "t", false, "echo");
  ASSERT_TRUE(t.ok());
  auto info = delivery_.threadInfo(t->id).value();
  ASSERT_TRUE(info);
  EXPECT_EQ(info->user_id, "tia");
  EXPECT_EQ(info->agent, "echo");
  EXPECT_FALSE(delivery_.threadInfo("thr_missing").value());
  // A thread handed over at creation is known without the store (here: one the store never saw).
  delivery_.rememberThread(store::Thread{"thr_only_in_cache", "tia", "x", 0, false, "llm", ""});
  EXPECT_EQ(delivery_.threadInfo("thr_only_in_cache").value()->agent, "llm");
}

// A user who is offline gets events one at a time, so their in-memory state is released between
// events; retention must still hold (it once counted in that state and never ran).
TEST_F(DeliveryTest, RetentionHoldsForAnOfflineUserWhoseEventsTrickleIn) {
  delivery_.stop();
  delivery_.setRetention({20, 0});
  delivery_.start();
  auto thread = threadOf("otto");
  for (int i = 0; i < 100; ++i) deliverSync("otto", event(thread));
  auto info = *store_.streamInfo("otto");
  EXPECT_EQ(info.last_seq, 100);
  EXPECT_GE(info.first_seq, 100 - 20 - 16 + 1);
}

TEST_F(DeliveryTest, EventsPrunedDuringASlowReplayEndItWithResyncNotAGap) {
  delivery_.setReplayBudget({3, SIZE_MAX});
  auto thread = threadOf("ola");
  for (int i = 0; i < 10; ++i) deliverSync("ola", event(thread));
  auto conn = std::make_shared<InProcessConnection>("c", "ola");
  auto info = *delivery_.attach(conn, false);
  ASSERT_TRUE(delivery_.resume(*conn, 0, info.epoch, "r").ok());
  EXPECT_EQ(conn->seqs(), (std::vector<int64_t>{1, 2, 3}));
  ASSERT_TRUE(store_.pruneEvents("ola", 2, 0).ok());  // retention runs while the client is still replaying
  while (conn->replaying.load()) delivery_.pump(*conn);
  auto frames = conn->frames();
  EXPECT_EQ(conn->seqs(), (std::vector<int64_t>{1, 2, 3})) << "no event after the gap was sent";
  EXPECT_EQ(frames.back().at("type").as_string(), "resync_required");
  deliverSync("ola", event(thread));
  EXPECT_EQ(conn->seqs().back(), 11) << "live from the head afterwards";
}

TEST_F(DeliveryTest, RetentionByAgeDeletesOldEventsButKeepsTheNewest) {
  auto thread = threadOf("ned");
  std::vector<store::StoredEvent> old;
  for (int i = 1; i <= 5; ++i) old.push_back(store::StoredEvent{i, "ned", "t", thread, "", 1000 + i, "{}", {}});
  ASSERT_TRUE(store_.appendEvents(old).ok());
  EXPECT_EQ(store_.pruneEvents("ned", 1000, core::nowMs() - 1000).value(), 5) << "only the newest survives";
  EXPECT_EQ(store_.eventsAfter("ned", 0, 100)->size(), 1u);
}

TEST_F(DeliveryTest, DetachForgetsTheUserWhenLastConnectionLeaves) {
  auto a = std::make_shared<InProcessConnection>("a", "hal");
  delivery_.attach(a, true);
  EXPECT_EQ(delivery_.userCount(), 1u);
  delivery_.detach(*a);
  EXPECT_EQ(delivery_.userCount(), 0u);
  EXPECT_EQ(delivery_.connectionCount(), 0u);
}

}  // namespace
}  // namespace agentwire::delivery

namespace agentwire::delivery {
namespace {

// The sharding seam with two shards: each user's stream, messages and runs go to the store the
// ShardMap names, through that shard's group commit; delivery is the same as with one store.
TEST(ShardedDeliveryTest, EachUsersStreamLivesInItsShardAndIsDeliveredAsWithOneStore) {
  testing::TempDir dir;
  store::SqliteStore s0{dir.file("shard0.db"), {}};
  store::SqliteStore s1{dir.file("shard1.db"), {}};
  s0.start();
  s1.start();
  store::ShardMap map(2);
  std::string users[2];
  for (int i = 0; users[0].empty() || users[1].empty(); ++i) {
    std::string u = "user-" + std::to_string(i);
    if (users[map.shardOf(u)].empty()) users[map.shardOf(u)] = u;
  }
  store::SqliteStore* stores[2] = {&s0, &s1};
  {
    Delivery d({&s0, &s1}, {});
    d.start();
    std::shared_ptr<InProcessConnection> conns[2];
    for (int k = 0; k < 2; ++k) {
      auto thread = s0.createThread(users[k], "t", false)->id;  // threads: in the first store
      conns[k] = std::make_shared<InProcessConnection>("c" + std::to_string(k), users[k]);
      ASSERT_TRUE(d.attach(conns[k], true).ok());
      store::Message m;
      m.thread_id = thread;
      m.user_id = users[k];
      m.role = "user";
      m.content = "hi";
      m.run_id = "run_" + std::to_string(k);
      bool stored = false;
      d.storeMessage(
          m, store::RunRecord{m.run_id, users[k], thread, "echo", "n", "queued", 0},
          [&](const core::Result<store::Message>& r) { stored = r.ok(); }, Delivery::Backpressure::Wait);
      for (int i = 0; i < 5; ++i) ASSERT_TRUE(d.deliver(users[k], Event{"agent_thinking", thread, m.run_id, {}, {}}));
      d.flush();
      EXPECT_TRUE(stored);
      EXPECT_EQ(conns[k]->seqs(), (std::vector<int64_t>{1, 2, 3, 4, 5}));
      EXPECT_EQ(stores[k]->streamInfo(users[k])->last_seq, 5) << "the stream is in the user's shard";
      EXPECT_EQ(stores[1 - k]->streamInfo(users[k])->last_seq, 0) << "and only there";
      EXPECT_EQ(stores[k]->findRun(m.run_id)->has_value(), true) << "the run is committed with its stream";
      EXPECT_EQ(stores[1 - k]->findRun(m.run_id)->has_value(), false);
    }
    EXPECT_TRUE(d.writable());
    EXPECT_EQ(d.writerDepth(), 0u);
    d.stop();
  }
  s0.stop();
  s1.stop();
}

}  // namespace
}  // namespace agentwire::delivery
