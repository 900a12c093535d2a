#include "analytics/pipeline.hpp"

#include "testing/temp_dir.hpp"

#include <gtest/gtest.h>

#include <mutex>
#include <set>
#include <sstream>
#include <thread>

namespace agentwire::analytics {
namespace {

using namespace std::chrono_literals;

// A sink whose availability the test switches; it keeps what it stored, by batch.
class FakeSink final : public AnalyticsSink {
 public:
  SendResult ensureSchema() override {
    std::lock_guard lock(m);
    return up ? SendResult{} : SendResult{SendStatus::Transient, "down"};
  }
  SendResult insert(const Batch& b) override {
    std::lock_guard lock(m);
    ++attempts;
    if (reject_next) {
      reject_next = false;
      return SendResult{SendStatus::Rejected, "Code: 27 malformed"};
    }
    if (!up) return SendResult{SendStatus::Transient, "down"};
    if (store_then_fail) {  // stored, but the answer is lost: the outcome is unknown to the sender
      store_then_fail = false;
      stored.emplace_back(b.id, b.rows);
      return SendResult{SendStatus::Transient, "timeout"};
    }
    stored.emplace_back(b.id, b.rows);
    return {};
  }
  SendResult contains(const Batch& b, bool& found) override {
    std::lock_guard lock(m);
    if (!up) return SendResult{SendStatus::Transient, "down"};
    ++checks;
    found = false;
    for (const auto& [id, rows] : stored) found = found || id == b.id;
    return {};
  }
  std::string describe() const override { return "fake"; }

  uint64_t rows() {
    std::lock_guard lock(m);
    uint64_t n = 0;
    for (const auto& s : stored) n += s.second;
    return n;
  }
  std::size_t distinctBatches() {
    std::lock_guard lock(m);
    std::set<std::string> ids;
    for (const auto& s : stored) ids.insert(s.first);
    return ids.size();
  }
  void setUp(bool v) {
    std::lock_guard lock(m);
    up = v;
  }

  std::mutex m;
  bool up = true;
  bool reject_next = false;
  bool store_then_fail = false;
  int attempts = 0;
  int checks = 0;
  std::vector<std::pair<std::string, uint64_t>> stored;
};

Pipeline::Options fastOptions() {
  Pipeline::Options o;
  o.batch_rows = 10;
  o.flush_interval = 20ms;
  o.queue_max = 1000;
  o.retry_initial = 10ms;
  o.retry_max = 40ms;
  o.node = "test";
  return o;
}

Record row(int i) {
  Record r;
  r.kind = "event_delivered";
  r.user_id = "u" + std::to_string(i % 3);
  r.seq = i;
  return r;
}

// A temp dir, a fake sink and a spool in that dir; each test makes its Pipeline.
class PipelineTest : public ::testing::Test {
 protected:
  Spool& openSpool(uint64_t cap = 1 << 20) {
    spool_ = std::make_unique<Spool>(dir_.path(), cap);
    spool_->open();
    return *spool_;
  }

  testing::TempDir dir_;
  FakeSink sink;

 private:
  std::unique_ptr<Spool> spool_;
};

template <typename F>
bool eventually(F f, std::chrono::milliseconds limit = 5000ms) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (f()) return true;
    std::this_thread::sleep_for(5ms);
  }
  return f();
}

TEST_F(PipelineTest, BatchesBySizeAndTime) {
  Spool& spool = openSpool();
  Pipeline p(sink, spool, fastOptions());
  p.start();
  for (int i = 0; i < 25; ++i) p.record(row(i));
  ASSERT_TRUE(eventually([&] { return sink.rows() == 25; }));
  // Two full batches of 10 and the remainder after the flush interval.
  EXPECT_EQ(sink.distinctBatches(), 3u);
  p.stop();
  EXPECT_EQ(p.producedByKind().at("event_delivered"), 25u);
}

TEST_F(PipelineTest, OutageSpoolsThenDrainsInOrderWithoutDuplicates) {
  Spool& spool = openSpool();
  Pipeline p(sink, spool, fastOptions());
  std::vector<bool> transitions;
  p.onStateChange([&](bool up, const std::string&) { transitions.push_back(up); });
  p.start();
  sink.setUp(false);
  for (int i = 0; i < 200; ++i) {
    p.record(row(i));
    if (i % 20 == 0) std::this_thread::sleep_for(5ms);
  }
  ASSERT_TRUE(eventually([&] { return spool.batches() > 0 && p.queueDepth() == 0; }));
  EXPECT_FALSE(p.up());
  sink.setUp(true);
  ASSERT_TRUE(eventually([&] { return sink.rows() == 200 && spool.batches() == 0; }));
  EXPECT_TRUE(p.up());
  p.stop();
  EXPECT_EQ(sink.distinctBatches(), sink.stored.size());  // no batch stored twice
  // Rows arrive in the order they were produced.
  std::vector<uint64_t> batch_numbers;
  for (const auto& [id, rows] : sink.stored) batch_numbers.push_back(std::stoull(id.substr(id.rfind('-') + 1)));
  EXPECT_TRUE(std::is_sorted(batch_numbers.begin(), batch_numbers.end()));
  // Up at start, down during the outage, up again: one report per change, not per retry.
  EXPECT_EQ(transitions, (std::vector<bool>{true, false, true}));
}

TEST_F(PipelineTest, UnknownOutcomeIsCheckedBeforeRetrying) {
  Spool& spool = openSpool();
  Pipeline p(sink, spool, fastOptions());
  p.start();
  sink.store_then_fail = true;
  for (int i = 0; i < 10; ++i) p.record(row(i));
  ASSERT_TRUE(eventually([&] { return p.stats().duplicates_skipped.load() == 1 && spool.batches() == 0; }));
  p.stop();
  EXPECT_EQ(sink.rows(), 10u);
  EXPECT_EQ(sink.stored.size(), 1u);
  EXPECT_GE(sink.checks, 1);
}

TEST_F(PipelineTest, RejectedBatchIsMovedAsideNotRetried) {
  Spool& spool = openSpool();
  Pipeline p(sink, spool, fastOptions());
  p.start();
  sink.reject_next = true;
  for (int i = 0; i < 10; ++i) p.record(row(i));
  ASSERT_TRUE(eventually([&] { return p.stats().dropped_rejected.load() == 10; }));
  for (int i = 0; i < 10; ++i) p.record(row(i));
  ASSERT_TRUE(eventually([&] { return sink.rows() == 10; }));
  p.stop();
  EXPECT_EQ(spool.rejected(), 1u);
  EXPECT_EQ(sink.attempts, 2);
}

TEST_F(PipelineTest, SpoolCapDropsAndCounts) {
  sink.up = false;
  Spool& spool = openSpool(3000);  // room for a couple of 10-row batches
  Pipeline p(sink, spool, fastOptions());
  p.start();
  for (int i = 0; i < 300; ++i) p.record(row(i));
  ASSERT_TRUE(eventually([&] { return p.queueDepth() == 0 && p.stats().dropped_spool_full.load() > 0; }));
  p.stop();
  uint64_t spooled_rows = 0;
  while (auto b = spool.front()) {
    spooled_rows += b->rows;
    spool.popFront();
  }
  EXPECT_EQ(spooled_rows + p.stats().dropped_spool_full.load(), 300u);
}

TEST_F(PipelineTest, StopSpoolsWhatIsQueuedWhenTheSinkIsDown) {
  sink.up = false;
  Spool& spool = openSpool();
  Pipeline::Options o = fastOptions();
  o.flush_interval = 10s;  // nothing leaves by time: stop() must do it
  o.batch_rows = 1000;
  Pipeline p(sink, spool, o);
  p.start();
  for (int i = 0; i < 57; ++i) p.record(row(i));
  p.stop();
  ASSERT_EQ(spool.batches(), 1u);
  EXPECT_EQ(spool.front()->rows, 57u);
}

TEST_F(PipelineTest, QueueBoundDropsAndCounts) {
  Spool& spool = openSpool();
  Pipeline::Options o = fastOptions();
  o.queue_max = 5;
  o.batch_rows = 1000;
  o.flush_interval = 10s;
  Pipeline p(sink, spool, o);  // not started: nothing drains the queue
  for (int i = 0; i < 8; ++i) p.record(row(i));
  EXPECT_EQ(p.queueDepth(), 5u);
  EXPECT_EQ(p.stats().dropped_queue_full.load(), 3u);
}

TEST(PipelineRowTest, RowIsOneJsonObjectWithEveryColumn) {
  Record r = row(7);
  r.ts_ms = 1795838400123;
  r.reason = "quote \" and newline \n";
  std::string line = Pipeline::toJsonRow(r, "n1", "b-1", 3);
  EXPECT_EQ(line.find('\n'), std::string::npos);
  EXPECT_NE(line.find("\"event_date\":\"2026-11-28\""), std::string::npos);
  EXPECT_NE(line.find("\"ts\":1795838400"), std::string::npos);
  EXPECT_NE(line.find("\"batch_id\":\"b-1\""), std::string::npos);
  EXPECT_NE(line.find("\"row_no\":3"), std::string::npos);
}

}  // namespace
}  // namespace agentwire::analytics
