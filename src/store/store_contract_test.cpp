// The Store contract, run against both backends: SQLite in a temporary directory and PostgreSQL
// (the server scripts/test-services started; each test gets a database of its own).
#include "core/ids.hpp"
#include "lifecycle/component.hpp"
#include "store/postgres/postgres_store.hpp"
#include "store/sqlite/sqlite_store.hpp"
#include "testing/postgres.hpp"
#include "testing/temp_dir.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <memory>

namespace agentwire::store {
namespace {

class StoreContractTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (GetParam() == "sqlite") {
      auto s = std::make_unique<SqliteStore>(dir_.file("agentwire.db"), std::vector<std::string>{});
      s->start();
      component_ = s.get();
      store_ = std::move(s);
      return;
    }
    auto url = testing::postgresUrl();
    if (!url) {
      if (testing::requireServices())
        FAIL() << "AW_TEST_PG_URL is not set: scripts/test-services did not start PostgreSQL";
      GTEST_SKIP() << "no PostgreSQL (run through scripts/run-tests)";
    }
    db_ = std::make_unique<testing::ScratchDatabase>(*url);
    auto s = std::make_unique<PostgresStore>(db_->url(), 2, std::vector<std::string>{});
    s->start();
    component_ = s.get();
    store_ = std::move(s);
  }
  void TearDown() override {
    if (component_ != nullptr) component_->stop();
    store_.reset();
    db_.reset();
  }

  static StoredEvent event(const std::string& user, const std::string& thread, const std::string& run,
                           const std::string& type = "agent_thinking", const std::string& status = {}) {
    return StoredEvent{0, user, type, thread, run, core::nowMs(), R"({"step":1})", status};
  }
  std::string thread(const std::string& user) { return store_->createThread(user, "t", false)->id; }

  testing::TempDir dir_;
  std::unique_ptr<testing::ScratchDatabase> db_;
  std::unique_ptr<Store> store_;
  lifecycle::Component* component_ = nullptr;
};

TEST_P(StoreContractTest, EachEventGetsTheNextSeqOfItsUsersStreamInTheCommit) {
  auto t = thread("cy");
  auto u = thread("dy");
  WriteBatch b;
  // Two users interleaved: each stream counts on its own, in the batch's order.
  b.events = {event("cy", t, "r"), event("dy", u, "r"), event("cy", t, "r")};
  auto r = store_->commit(b);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->seqs, (std::vector<int64_t>{1, 1, 2}));
  auto r2 = store_->commit(b);
  ASSERT_TRUE(r2.ok());
  EXPECT_EQ(r2->seqs, (std::vector<int64_t>{3, 2, 4})) << "the next batch continues each stream";
  EXPECT_EQ(store_->streamInfo("cy")->last_seq, 4);
  auto events = store_->eventsAfter("cy", 1, 10);
  ASSERT_EQ(events->size(), 3u);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ((*events)[i].seq, i + 2);
    EXPECT_EQ((*events)[i].data_json, R"({"step":1})");
  }
}

TEST_P(StoreContractTest, StreamHeadsAreReadInOneCallAndLeaveOutUsersWithoutAStream) {
  auto t = thread("hy");
  auto u = thread("iy");
  WriteBatch b;
  b.events = {event("hy", t, "r"), event("hy", t, "r"), event("iy", u, "r")};
  ASSERT_TRUE(store_->commit(b).ok());
  auto heads = store_->streamHeads({"hy", "iy", "nobody"});
  ASSERT_TRUE(heads.ok()) << heads.error().message;
  auto got = *heads;
  std::sort(got.begin(), got.end());
  EXPECT_EQ(got, (std::vector<std::pair<std::string, int64_t>>{{"hy", 2}, {"iy", 1}}));
  EXPECT_TRUE(store_->streamHeads({})->empty());
}

TEST_P(StoreContractTest, AStreamKeepsItsEpochAndStartsEmpty) {
  auto a = store_->streamInfo("new_user");
  ASSERT_TRUE(a.ok()) << a.error().message;
  EXPECT_EQ(a->last_seq, 0);
  EXPECT_EQ(a->first_seq, 1);
  EXPECT_FALSE(a->epoch.empty());
  EXPECT_EQ(store_->streamInfo("new_user")->epoch, a->epoch);
}

TEST_P(StoreContractTest, ARunIsInFlightFromItsMessageToItsTerminalEvent) {
  auto t = thread("ann");
  WriteBatch b;
  b.messages.push_back(Message{"m1", t, "ann", "user", "hi", "run_1", core::nowMs()});
  b.runs.push_back(RunRecord{"run_1", "ann", t, "echo", "node-a", "queued", core::nowMs()});
  ASSERT_TRUE(store_->commit(b).ok());
  auto open = store_->unfinishedRuns("node-a");
  ASSERT_TRUE(open.ok());
  ASSERT_EQ(open->size(), 1u);
  EXPECT_EQ((*open)[0].id, "run_1");
  ASSERT_TRUE(store_->appendEvents({event("ann", t, "run_1", "agent_started", "running")}).ok());
  EXPECT_EQ(store_->unfinishedRuns("node-a")->size(), 1u) << "still in flight";
  auto found = store_->findRun("run_1");
  ASSERT_TRUE(found.ok() && found->has_value());
  EXPECT_EQ((*found)->node_id, "node-a");
  EXPECT_EQ((*found)->user_id, "ann");
  ASSERT_TRUE(store_->appendEvents({event("ann", t, "run_1", "agent_completed", "completed")}).ok());
  EXPECT_TRUE(store_->unfinishedRuns("node-a")->empty());
  EXPECT_FALSE(store_->findRun("run_1")->has_value()) << "an ended run is no longer in flight";
  auto history = store_->listMessages(t, 10, 0);
  ASSERT_EQ(history->size(), 1u);
  EXPECT_EQ((*history)[0].run_id, "run_1");
}

TEST_P(StoreContractTest, TheRunFenceStoresARunsEventsOnlyWhileItIsInFlight) {
  auto t = thread("fay");
  auto fenced = [&](const std::string& run, const std::string& type = "agent_thinking",
                    const std::string& status = {}) {
    auto e = event("fay", t, run, type, status);
    e.requires_run_in_flight = true;
    return e;
  };
  WriteBatch start;
  start.runs.push_back(RunRecord{"run_f", "fay", t, "echo", "node-a", "queued", core::nowMs()});
  // Started in this batch: its events are stored; an unknown run's are not.
  start.events = {fenced("run_f", "agent_started", "running"), fenced("run_unknown"), fenced("run_f")};
  auto r = store_->commit(start);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->seqs, (std::vector<int64_t>{1, CommitStats::kFenced, 2}));
  EXPECT_EQ(r->fenced, 1u);
  // Two terminal events in one batch (the owner's and a takeover's): the first ends the run, the
  // second is refused, and so is whatever follows.
  WriteBatch end;
  end.events = {fenced("run_f", "agent_completed", "completed"), fenced("run_f", "agent_error", "interrupted"),
                fenced("run_f")};
  r = store_->commit(end);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->seqs, (std::vector<int64_t>{3, CommitStats::kFenced, CommitStats::kFenced}));
  // A later batch of the ended run: refused without a gap, an event without the fence is stored.
  WriteBatch late;
  late.events = {fenced("run_f"), event("fay", t, "run_f")};
  r = store_->commit(late);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->seqs, (std::vector<int64_t>{CommitStats::kFenced, 4}));
  auto stored = store_->eventsAfter("fay", 0, 10);
  ASSERT_EQ(stored->size(), 4u);
  for (int i = 0; i < 4; ++i) EXPECT_EQ((*stored)[i].seq, i + 1);
  EXPECT_EQ(store_->streamInfo("fay")->last_seq, 4);
  // A batch of only refused events moves nothing.
  WriteBatch none;
  none.events = {fenced("run_f")};
  r = store_->commit(none);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->seqs, (std::vector<int64_t>{CommitStats::kFenced}));
  EXPECT_EQ(store_->streamInfo("fay")->last_seq, 4);
}

TEST_P(StoreContractTest, AcksNeverMoveBackwardsNorPastTheHeadAndCountOnAckingStreams) {
  auto t = thread("gus");
  WriteBatch five;
  for (int i = 0; i < 5; ++i) five.events.push_back(event("gus", t, "r"));
  auto first = store_->commit(five);
  EXPECT_EQ(first->appended_acking, 0) << "nobody acked this stream yet";
  WriteBatch acks;
  acks.acks = {{"gus", 4}};
  auto a = store_->commit(acks);
  ASSERT_TRUE(a.ok()) << a.error().message;
  EXPECT_EQ(a->newly_acked, 4);
  EXPECT_EQ(a->acked_acking, 0) << "the first ack makes the stream acking";
  acks.acks = {{"gus", 2}};
  EXPECT_EQ(store_->commit(acks)->newly_acked, 0);
  EXPECT_EQ(store_->streamInfo("gus")->acked_seq, 4);
  auto more = store_->commit(five);
  EXPECT_EQ(more->appended_acking, 5);
  acks.acks = {{"gus", 100}};
  auto last = store_->commit(acks);
  EXPECT_EQ(last->newly_acked, 6);
  EXPECT_EQ(last->acked_acking, 6);
  EXPECT_EQ(store_->streamInfo("gus")->acked_seq, 10) << "never past the head";
}

TEST_P(StoreContractTest, RetentionByCountAndAgeKeepsTheNewest) {
  auto t = thread("ned");
  WriteBatch b;
  for (int i = 0; i < 10; ++i) b.events.push_back(event("ned", t, "r"));
  ASSERT_TRUE(store_->commit(b).ok());
  EXPECT_EQ(store_->pruneEvents("ned", 4, 0).value(), 7);
  EXPECT_EQ(store_->streamInfo("ned")->first_seq, 7);
  EXPECT_EQ(store_->eventsAfter("ned", 0, 100)->size(), 4u);
  EXPECT_EQ(store_->pruneEvents("ned", 1000, core::nowMs() + 60000).value(), 10) << "only the newest survives";
  EXPECT_EQ(store_->eventsAfter("ned", 0, 100)->size(), 1u);
  EXPECT_EQ(store_->pruneEvents("nobody", 10, 0).value(), 1);
}

TEST_P(StoreContractTest, ThreadsArePagedNewestFirstWithoutSystemThreads) {
  std::vector<std::string> ids;
  for (int i = 0; i < 5; ++i) ids.push_back(thread("dee"));
  store_->createThread("dee", "system", true);
  EXPECT_EQ(store_->countThreads("dee").value(), 5);
  std::vector<std::string> seen;
  ThreadCursor cursor;
  for (;;) {
    auto page = store_->listThreads("dee", 2, cursor);
    ASSERT_TRUE(page.ok()) << page.error().message;
    if (page->empty()) break;
    for (const auto& t : *page) seen.push_back(t.id);
    cursor = ThreadCursor{page->back().created_ms, page->back().id};
  }
  std::sort(seen.begin(), seen.end());
  std::sort(ids.begin(), ids.end());
  EXPECT_EQ(seen, ids);
}

TEST_P(StoreContractTest, AThreadKeepsItsAgentAndOnBusyDefault) {
  auto t = store_->createThread("fay", "t", false, "llm", "reject");
  ASSERT_TRUE(t.ok()) << t.error().message;
  auto found = store_->findThread(t->id).value();
  ASSERT_TRUE(found);
  EXPECT_EQ(found->agent, "llm");
  EXPECT_EQ(found->on_busy, "reject");
  auto listed = store_->listThreads("fay", 10, {}).value();
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_EQ(listed[0].on_busy, "reject");
  EXPECT_EQ(store_->findThread(thread("fay")).value()->on_busy, "") << "no default: empty (enqueue)";
}

TEST_P(StoreContractTest, RunEventsAreTheRunsOfThatUserInOrder) {
  auto t = thread("gil");
  WriteBatch b;
  for (const char* run : {"r1", "r2", "r1"}) b.events.push_back(event("gil", t, run));
  b.events.push_back(event("hal", thread("hal"), "r1"));  // another user's events are not read
  ASSERT_TRUE(store_->commit(b).ok());
  auto r1 = store_->runEvents("gil", "r1").value();
  ASSERT_EQ(r1.size(), 2u);
  EXPECT_LT(r1[0].seq, r1[1].seq);
  EXPECT_EQ(r1[0].run_id, "r1");
  EXPECT_TRUE(store_->runEvents("gil", "none").value().empty());
  auto other = thread("gil");
  ASSERT_TRUE(store_->appendEvents({event("gil", other, "r3")}).ok());
  auto in_thread = store_->threadEvents("gil", t).value();
  ASSERT_EQ(in_thread.size(), 3u) << "the thread's events, not the other thread's nor another user's";
  EXPECT_EQ(in_thread[2].run_id, "r1");
  EXPECT_TRUE(store_->threadEvents("hal", t).value().empty());
}

TEST_P(StoreContractTest, DeleteThreadRemovesItsMessagesAndRuns) {
  auto t = store_->createThread("eve", "t", true);
  WriteBatch b;
  b.messages.push_back(Message{"m1", t->id, "eve", "user", "hi", "run_x", core::nowMs()});
  b.runs.push_back(RunRecord{"run_x", "eve", t->id, "echo", "n", "queued", core::nowMs()});
  ASSERT_TRUE(store_->commit(b).ok());
  EXPECT_EQ(store_->deleteThread(t->id, true).value(), ThreadDeletion::Deleted);
  EXPECT_FALSE(store_->findThread(t->id).value());
  EXPECT_TRUE(store_->listMessages(t->id, 10, 0)->empty());
  EXPECT_TRUE(store_->unfinishedRuns("n")->empty());
  EXPECT_EQ(store_->deleteThread(t->id, true).value(), ThreadDeletion::NotFound);
}

TEST_P(StoreContractTest, AThreadWithARunInProgressIsNotDeletedAndItsEventsOutliveIt) {
  auto t = store_->createThread("fay", "t", false);
  auto other = store_->createThread("fay", "other", false);
  WriteBatch b;
  b.messages.push_back(Message{"m1", t->id, "fay", "user", "hi", "run_y", core::nowMs()});
  b.runs.push_back(RunRecord{"run_y", "fay", t->id, "echo", "n", "queued", core::nowMs()});
  ASSERT_TRUE(store_->commit(b).ok());
  EXPECT_EQ(store_->deleteThread(t->id, false).value(), ThreadDeletion::Busy);
  EXPECT_TRUE(store_->findThread(t->id).value()) << "nothing removed";
  EXPECT_EQ(store_->listMessages(t->id, 10, 0)->size(), 1u);
  ASSERT_TRUE(store_->appendEvents({event("fay", t->id, "run_y", "agent_completed", "completed")}).ok());
  EXPECT_EQ(store_->deleteThread(t->id, false).value(), ThreadDeletion::Deleted) << "its run ended";
  EXPECT_EQ(store_->listThreads("fay", 10, {})->size(), 1u);
  EXPECT_EQ(store_->findThread(other->id).value()->title, "other") << "only that thread";
  auto events = store_->eventsAfter("fay", 0, 10);
  ASSERT_EQ(events->size(), 1u) << "the stream keeps the thread's events";
  EXPECT_EQ((*events)[0].thread_id, t->id);
}

TEST_P(StoreContractTest, RenamingAThreadChangesOnlyItsTitle) {
  auto t = store_->createThread("gil", "before", false, "echo", "reject");
  EXPECT_TRUE(store_->renameThread(t->id, "after \xC3\xA9 \"quoted\"").value());
  auto found = store_->findThread(t->id).value();
  ASSERT_TRUE(found);
  EXPECT_EQ(found->title, "after \xC3\xA9 \"quoted\"");
  EXPECT_EQ(found->agent, "echo");
  EXPECT_EQ(found->on_busy, "reject");
  EXPECT_EQ(found->created_ms, t->created_ms);
  EXPECT_FALSE(store_->renameThread("no_such_thread", "x").value());
}

TEST_P(StoreContractTest, TextSurvivesQuotesBackslashesAndUnicode) {
  std::string text = "quote \" backslash \\ braces {} comma , \xC3\xA9 \xF0\x9F\x98\x80 tab\tnewline\n";
  auto t = store_->createThread("uni", text, false);
  ASSERT_TRUE(t.ok());
  WriteBatch b;
  b.messages.push_back(Message{"m1", t->id, "uni", "user", text, "", core::nowMs()});
  auto e = event("uni", t->id, "r");
  e.data_json = R"({"delta":"\"\\ {}, \u00e9"})";
  b.events.push_back(e);
  ASSERT_TRUE(store_->commit(b).ok());
  EXPECT_EQ(store_->findThread(t->id).value()->title, text);
  EXPECT_EQ(store_->listMessages(t->id, 1, 0)->at(0).content, text);
  EXPECT_EQ(store_->eventsAfter("uni", 0, 1)->at(0).data_json, e.data_json);
}

TEST_P(StoreContractTest, UnackedThreadsAreCountedForAckingStreams) {
  auto t1 = thread("una");
  auto t2 = thread("una");
  WriteBatch b;
  b.events = {event("una", t1, "r"), event("una", t2, "r")};
  ASSERT_TRUE(store_->commit(b).ok());
  EXPECT_TRUE(store_->unackedThreadsByUser(100)->empty()) << "a stream nobody acks is not counted";
  WriteBatch a;
  a.acks = {{"una", 1}};
  ASSERT_TRUE(store_->commit(a).ok());
  auto unacked = store_->unackedThreadsByUser(100);
  ASSERT_EQ(unacked->size(), 1u);
  EXPECT_EQ((*unacked)[0], (std::pair<std::string, int64_t>{"una", 1}));
}

TEST_P(StoreContractTest, AnApprovalIsResolvedOnceAndWaitsWithItsRunUntilResumed) {
  auto t = thread("ann");
  WriteBatch b;
  b.runs.push_back(RunRecord{"run_1", "ann", t, "echo", "node-a", "queued", core::nowMs()});
  ASSERT_TRUE(store_->commit(b).ok());
  Approval a{"apr_1",
             "ann",
             t,
             "run_1",
             "call_1",
             "word_count",
             R"({"text":"d\"é"})",
             R"({"input":"x"})",
             "node-a",
             "pending",
             "",
             "",
             core::nowMs(),
             core::nowMs() + 1000,
             0,
             false};
  ASSERT_TRUE(store_->addApproval(a).ok());
  auto found = store_->findApproval("apr_1");
  ASSERT_TRUE(found.ok() && found->has_value());
  EXPECT_EQ((*found)->args_json, a.args_json);
  EXPECT_EQ((*found)->run_state_json, a.run_state_json);
  EXPECT_EQ((*found)->expires_ms, a.expires_ms);
  EXPECT_FALSE((*found)->resumed);
  ASSERT_EQ(store_->pendingApprovals("ann")->size(), 1u);
  EXPECT_TRUE(store_->pendingApprovals("bob")->empty());
  ASSERT_EQ(store_->parkedApprovals("node-a")->size(), 1u);

  auto first = store_->resolveApproval("apr_1", "approved", "fine", "conn_1");
  ASSERT_TRUE(first.ok() && first->has_value());
  EXPECT_TRUE((*first)->first);
  EXPECT_EQ((*first)->second.status, "approved");
  EXPECT_EQ((*first)->second.by, "conn_1");
  EXPECT_GT((*first)->second.resolved_ms, 0);
  auto second = store_->resolveApproval("apr_1", "denied", "no", "http");
  ASSERT_TRUE(second.ok() && second->has_value());
  EXPECT_FALSE((*second)->first) << "the first answer wins";
  EXPECT_EQ((*second)->second.status, "approved");
  EXPECT_EQ((*second)->second.reason, "fine");
  EXPECT_FALSE(store_->resolveApproval("apr_nope", "denied", "", "http")->has_value());
  EXPECT_TRUE(store_->pendingApprovals("ann")->empty());
  EXPECT_EQ(store_->parkedApprovals("node-a")->size(), 1u) << "answered, its run not yet taken up again";

  a.id = "apr_2";  // the run waits again, though apr_1 was never marked taken up
  ASSERT_TRUE(store_->addApproval(a).ok());
  auto waiting = store_->parkedApprovals("node-a").value();
  ASSERT_EQ(waiting.size(), 1u) << "a run waits for one approval at a time";
  EXPECT_EQ(waiting[0].id, "apr_2");
  ASSERT_TRUE(store_->markApprovalResumed("apr_2").ok());
  EXPECT_TRUE(store_->parkedApprovals("node-a")->empty());
  a.id = "apr_3";
  ASSERT_TRUE(store_->addApproval(a).ok());
  EXPECT_EQ(store_->parkedApprovals("node-a")->size(), 1u);
  ASSERT_TRUE(store_->appendEvents({event("ann", t, "run_1", "agent_stopped", "stopped")}).ok());
  EXPECT_TRUE(store_->parkedApprovals("node-a")->empty()) << "its run ended";
  ASSERT_TRUE(store_->deleteThread(t, true).ok());
  EXPECT_FALSE(store_->findApproval("apr_3")->has_value());
}

TEST_P(StoreContractTest, AWriteProbeSucceedsOnAHealthyStore) {
  EXPECT_TRUE(store_->probeWrite().ok());
}

TEST_P(StoreContractTest, TokenUsageIsSummedPerUserAndDay) {
  EXPECT_EQ(store_->tokenUsage("tok_u", "2026-11-30").value(), 0);
  EXPECT_EQ(store_->addTokenUsage("tok_u", "2026-11-30", 120).value(), 120);
  EXPECT_EQ(store_->addTokenUsage("tok_u", "2026-11-30", 30).value(), 150);
  EXPECT_EQ(store_->addTokenUsage("tok_u", "2026-12-01", 5).value(), 5) << "a new day starts at zero";
  EXPECT_EQ(store_->addTokenUsage("tok_v", "2026-11-30", 7).value(), 7) << "users are counted apart";
  EXPECT_EQ(store_->tokenUsage("tok_u", "2026-11-30").value(), 150);
}

TEST_P(StoreContractTest, HistoryNoRunNeedsIsPrunedAndTheRestKept) {
  auto t = thread("hist");
  WriteBatch b;
  for (const char* run : {"run_h1", "run_h2", "run_h4"}) {
    b.runs.push_back(RunRecord{run, "hist", t, "echo", "node-a", "queued", core::nowMs()});
  }
  ASSERT_TRUE(store_->commit(b).ok());
  auto add = [&](const std::string& id, const std::string& run) {
    Approval a{id,       "hist",    t,  run, "call_" + id,  "word_count",          "{}", "{}",
               "node-a", "pending", "", "",  core::nowMs(), core::nowMs() + 60000, 0,    false};
    ASSERT_TRUE(store_->addApproval(a).ok());
  };
  add("apr_taken_up", "run_h1");     // resolved, its run took up again: not needed
  add("apr_waits", "run_h2");        // resolved, its run not yet taken up: needed after a restart
  add("apr_run_ended", "run_gone");  // resolved, its run is over: not needed
  add("apr_pending", "run_h4");      // nobody answered yet
  const int64_t before_answers = core::nowMs() - 1;
  for (const char* id : {"apr_taken_up", "apr_waits", "apr_run_ended"}) {
    ASSERT_TRUE(store_->resolveApproval(id, "approved", "", "test").ok());
  }
  ASSERT_TRUE(store_->markApprovalResumed("apr_taken_up").ok());
  ASSERT_TRUE(store_->addTokenUsage("hist", "2026-01-01", 10).ok());
  ASSERT_TRUE(store_->addTokenUsage("hist", "2026-11-30", 20).ok());

  // Answered after the cutoff: only the old day's count goes.
  EXPECT_EQ(store_->pruneHistory(before_answers, "2026-11-29").value(), 1);
  EXPECT_EQ(store_->tokenUsage("hist", "2026-01-01").value(), 0);
  EXPECT_EQ(store_->tokenUsage("hist", "2026-11-30").value(), 20);
  EXPECT_TRUE(store_->findApproval("apr_taken_up")->has_value());

  EXPECT_EQ(store_->pruneHistory(core::nowMs() + 60000, "2026-11-29").value(), 2);
  EXPECT_FALSE(store_->findApproval("apr_taken_up")->has_value());
  EXPECT_FALSE(store_->findApproval("apr_run_ended")->has_value());
  EXPECT_TRUE(store_->findApproval("apr_waits")->has_value()) << "its run still needs it";
  EXPECT_TRUE(store_->findApproval("apr_pending")->has_value());
  EXPECT_EQ(store_->parkedApprovals("node-a")->size(), 2u);
}

INSTANTIATE_TEST_SUITE_P(Backends, StoreContractTest, ::testing::Values("sqlite", "postgres"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace agentwire::store
