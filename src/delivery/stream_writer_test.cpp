#include "delivery/stream_writer.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <mutex>

namespace agentwire::delivery {
namespace {

// A store that fails commits with `unavailable` while `failing` is set, and records what it took.
class FlakyStore final : public store::Store {
 public:
  std::atomic<bool> failing{false};
  std::atomic<int> fail_next{0};  // commits that fail once each, like a connection dropped by the server
  std::atomic<int> commits{0};
  std::atomic<int> probes{0};
  std::mutex mutex;
  std::vector<std::string> messages;  // ids, in commit order

  core::Result<store::CommitStats> commit(const store::WriteBatch& b) override {
    ++commits;
    if (failing) return core::Error{store::kUnavailable, "disk full"};
    if (fail_next.load() > 0) {
      --fail_next;
      return core::Error{store::kUnavailable, "server closed the connection unexpectedly"};
    }
    std::lock_guard lock(mutex);
    for (const auto& m : b.messages) messages.push_back(m.id);
    store::CommitStats stats;
    stats.items = b.size();
    return stats;
  }
  core::Result<bool> probeWrite() override {
    ++probes;
    if (failing) return core::Error{store::kUnavailable, "disk full"};
    return true;
  }
  // Not used by the writer.
  core::Result<store::Thread> createThread(const std::string&, const std::string&, bool, const std::string&,
                                           const std::string&) override {
    return core::Error{"internal", "unused"};
  }
  core::Result<std::optional<store::Thread>> findThread(const std::string&) override {
    return std::optional<store::Thread>();
  }
  core::Result<std::vector<store::Thread>> listThreads(const std::string&, int, const store::ThreadCursor&) override {
    return std::vector<store::Thread>{};
  }
  core::Result<int64_t> countThreads(const std::string&) override { return int64_t{0}; }
  core::Result<bool> renameThread(const std::string&, const std::string&) override { return false; }
  core::Result<store::ThreadDeletion> deleteThread(const std::string&, bool) override {
    return store::ThreadDeletion::NotFound;
  }
  core::Result<std::vector<store::Message>> listMessages(const std::string&, int, int64_t) override {
    return std::vector<store::Message>{};
  }
  core::Result<std::vector<store::StoredEvent>> eventsAfter(const std::string&, int64_t, int) override {
    return std::vector<store::StoredEvent>{};
  }
  core::Result<std::vector<store::StoredEvent>> threadEvents(const std::string&, const std::string&) override {
    return std::vector<store::StoredEvent>{};
  }
  core::Result<std::vector<store::StoredEvent>> runEvents(const std::string&, const std::string&) override {
    return std::vector<store::StoredEvent>{};
  }
  core::Result<store::StreamInfo> streamInfo(const std::string&) override { return store::StreamInfo{}; }
  core::Result<std::vector<std::pair<std::string, int64_t>>> streamHeads(const std::vector<std::string>&) override {
    return std::vector<std::pair<std::string, int64_t>>{};
  }
  core::Result<int64_t> pruneEvents(const std::string&, int64_t, int64_t) override { return int64_t{1}; }
  core::Result<std::vector<std::pair<std::string, int64_t>>> unackedThreadsByUser(int) override {
    return std::vector<std::pair<std::string, int64_t>>{};
  }
  core::Result<std::vector<store::RunRecord>> unfinishedRuns(const std::string&) override {
    return std::vector<store::RunRecord>{};
  }
  core::Result<std::optional<store::RunRecord>> findRun(const std::string&) override {
    return std::optional<store::RunRecord>{};
  }
  core::Result<bool> addApproval(const store::Approval&) override { return true; }
  core::Result<std::optional<store::Approval>> findApproval(const std::string&) override {
    return std::optional<store::Approval>{};
  }
  core::Result<std::optional<std::pair<bool, store::Approval>>> resolveApproval(const std::string&, const std::string&,
                                                                                const std::string&,
                                                                                const std::string&) override {
    return std::optional<std::pair<bool, store::Approval>>{};
  }
  core::Result<std::vector<store::Approval>> pendingApprovals(const std::string&) override {
    return std::vector<store::Approval>{};
  }
  core::Result<std::vector<store::Approval>> parkedApprovals(const std::string&) override {
    return std::vector<store::Approval>{};
  }
  core::Result<bool> markApprovalResumed(const std::string&) override { return false; }
  core::Result<int64_t> addTokenUsage(const std::string&, const std::string&, int64_t t) override { return t; }
  core::Result<int64_t> tokenUsage(const std::string&, const std::string&) override { return int64_t{0}; }
  core::Result<int64_t> pruneHistory(int64_t, const std::string&) override { return int64_t{0}; }
};

struct Outcome {
  std::mutex mutex;
  std::vector<std::pair<std::string, std::string>> done;  // (message id, "ok" or error code)
  void add(const std::string& id, const std::string& what) {
    std::lock_guard lock(mutex);
    done.emplace_back(id, what);
  }
  std::size_t size() {
    std::lock_guard lock(mutex);
    return done.size();
  }
};

// What Delivery does after a commit for messages: tell their producer.
void answer(std::vector<WriteItem>& batch, const core::Result<store::CommitStats>& r) {
  for (auto& i : batch) {
    if (i.done) i.done(r ? core::Result<store::Message>(*i.message) : r.error());
  }
}

WriteItem message(const std::string& id, bool refusable, Outcome& out) {
  WriteItem i;
  i.kind = WriteItem::Kind::Message;
  i.message = store::Message{id, "t", "u", refusable ? "user" : "agent", "x", "", 1};
  i.refusable = refusable;
  i.done = [&out, id](const core::Result<store::Message>& r) { out.add(id, r ? "ok" : r.error().code); };
  return i;
}

// Fast retries, and what Delivery does after a commit.
class StreamWriterTest : public ::testing::Test {
 protected:
  void SetUp() override { writer.start(); }
  void TearDown() override { writer.stop(); }

  FlakyStore store;
  Outcome out;
  StreamWriter writer{
      store, {.retry_initial = std::chrono::milliseconds(1), .retry_max = std::chrono::milliseconds(5)}, answer};
};

TEST_F(StreamWriterTest, WhileTheStoreFailsNewMessagesAreRefusedAndTheRestWaitsInOrder) {
  store.failing = true;
  writer.push(message("answer_1", false, out));
  writer.push(message("user_1", true, out));
  while (!writer.failing()) std::this_thread::yield();
  while (out.size() < 1) std::this_thread::yield();  // the user's message is answered at once
  writer.push(message("answer_2", false, out));
  writer.push(message("user_2", true, out));
  while (out.size() < 2) std::this_thread::yield();
  while (store.commits.load() < 3) std::this_thread::yield();  // the rest is retried
  store.failing = false;                                       // space returns
  writer.flush();
  EXPECT_FALSE(writer.failing());
  std::vector<std::pair<std::string, std::string>> want{
      {"user_1", "unavailable"}, {"user_2", "unavailable"}, {"answer_1", "ok"}, {"answer_2", "ok"}};
  EXPECT_EQ(out.done, want);
  EXPECT_EQ(store.messages, (std::vector<std::string>{"answer_1", "answer_2"})) << "order kept, nothing lost";
}

TEST_F(StreamWriterTest, ASingleFailureIsRetriedAtOnceAndRefusesNothing) {
  store.fail_next = 1;
  writer.push(message("user_1", true, out));
  writer.flush();
  EXPECT_EQ(store.commits.load(), 2);
  EXPECT_FALSE(writer.failing());
  EXPECT_EQ(out.done, (std::vector<std::pair<std::string, std::string>>{{"user_1", "ok"}}));
  // Two failures in a row: the store is down; the user's message is refused, not kept waiting.
  store.fail_next = 2;
  writer.push(message("user_2", true, out));
  writer.flush();
  EXPECT_EQ(out.done.back(), (std::pair<std::string, std::string>{"user_2", "unavailable"}));
}

TEST_F(StreamWriterTest, WithNothingQueuedItProbesUntilWritesSucceedAgain) {
  store.failing = true;
  writer.push(message("user_1", true, out));
  writer.flush();
  EXPECT_TRUE(writer.failing());
  int probes = store.probes.load();
  while (store.probes.load() < probes + 3) std::this_thread::yield();
  store.failing = false;
  while (writer.failing()) std::this_thread::yield();
  writer.push(message("user_2", true, out));
  writer.flush();
  EXPECT_EQ(out.done.back(), (std::pair<std::string, std::string>{"user_2", "ok"}));
  writer.stop();
}

TEST(StreamWriterStopTest, GivesUpOnAStoreThatStillFailsAndReportsTheLoss) {
  FlakyStore store;
  Outcome out;
  bool reported_error = false;
  StreamWriter writer(store, {.retry_initial = std::chrono::milliseconds(1), .retry_max = std::chrono::milliseconds(2)},
                      [&](std::vector<WriteItem>& batch, const core::Result<store::CommitStats>& r) {
                        if (!r) reported_error = true;
                        answer(batch, r);
                      });
  writer.start();
  store.failing = true;
  writer.push(message("answer", false, out));
  while (!writer.failing()) std::this_thread::yield();
  writer.stop();  // does not hang
  EXPECT_TRUE(reported_error);
  EXPECT_EQ(out.done, (std::vector<std::pair<std::string, std::string>>{{"answer", "unavailable"}}));
}

}  // namespace
}  // namespace agentwire::delivery
