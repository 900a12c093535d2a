#pragma once

#include "analytics/record.hpp"
#include "analytics/sink.hpp"
#include "analytics/spool.hpp"

#include <spdlog/logger.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <thread>

namespace agentwire::analytics {

// Counters for health, metrics and tests. Rows, unless named otherwise.
struct PipelineStats {
  std::atomic<uint64_t> inserted{0};
  std::atomic<uint64_t> batches_inserted{0};
  std::atomic<uint64_t> duplicates_skipped{0};  // batches found already stored when retried
  std::atomic<uint64_t> insert_errors{0};       // failed attempts (inserts, schema, checks)
  std::atomic<uint64_t> dropped_queue_full{0};
  std::atomic<uint64_t> dropped_spool_full{0};
  std::atomic<uint64_t> dropped_rejected{0};  // in batches the store refused as malformed (kept in rejected/)
  std::atomic<uint64_t> dropped_after_stop{0};
};

// The analytics pipeline: a bounded in-memory queue filled by record() on any thread, and one
// thread that cuts it into batches (by size and time), inserts them through the sink, and, while
// the sink is failing, appends them to the spool and retries with exponential backoff and jitter.
// When the sink answers again the spool is drained oldest first; new batches wait behind it, so
// rows arrive in the order they were produced. A batch whose outcome is unknown (timeout, lost
// connection, or left in the spool by a previous process) is checked with sink.contains() before
// it is sent again, so a retry never stores it twice. stop() sends or spools everything queued.
class Pipeline final : public Recorder {
 public:
  struct Options {
    std::size_t batch_rows = 5000;
    std::chrono::milliseconds flush_interval{1000};
    std::size_t queue_max = 100000;
    std::chrono::milliseconds retry_initial{500};
    std::chrono::milliseconds retry_max{30000};
    std::string node;
    std::string ignored_user;  // rows of users whose id starts with this are not recorded (the self-checks')
  };

  Pipeline(AnalyticsSink& sink, Spool& spool, Options options);
  ~Pipeline() override;

  void record(Record&& r) override;
  bool enabled() const override { return true; }

  // Tries the sink once (schema) and starts the thread. Returns the first attempt's outcome.
  SendResult start();
  void stop();

  // Called on the pipeline thread when the sink goes down (with the error) or comes back.
  void onStateChange(std::function<void(bool up, const std::string& error)> fn) { on_state_ = std::move(fn); }

  bool up() const { return up_.load(); }
  std::string lastError() const;
  std::size_t queueDepth() const;
  std::map<std::string, uint64_t> producedByKind() const;
  const PipelineStats& stats() const { return stats_; }
  const Spool& spool() const { return spool_; }

  // JSONEachRow line of a row; exposed for tests.
  static std::string toJsonRow(const Record& r, const std::string& node, const std::string& batch_id, uint64_t row_no);

 private:
  void run();
  Batch makeBatch(std::vector<Record>& rows);
  void route(Batch&& batch);
  void drainOne();
  void probe();
  void spoolOrDrop(const Batch& batch);
  void markUp();
  void markDown(const std::string& error);

  AnalyticsSink& sink_;
  Spool& spool_;
  Options options_;
  std::shared_ptr<spdlog::logger> log_;
  PipelineStats stats_;
  std::function<void(bool, const std::string&)> on_state_;

  mutable std::mutex m_;
  std::condition_variable cv_;
  std::deque<Record> queue_;
  std::map<std::string, uint64_t> produced_;  // by kind, every row record() accepted or dropped
  bool running_ = false;
  bool stop_ = false;
  std::atomic<bool> queue_full_logged_{false};
  std::string last_error_;  // guarded by m_

  // Pipeline thread only.
  std::atomic<bool> up_{false};
  bool schema_ok_ = false;
  bool spool_full_logged_ = false;
  bool on_state_called_down_ = false;  // the first failure is reported even though up_ starts false
  std::chrono::milliseconds backoff_{0};
  std::chrono::steady_clock::time_point next_retry_{};
  std::set<std::string> unsure_;  // batch ids sent with an unknown outcome
  uint64_t inherited_ = 0;        // spooled batches left by a previous process, not yet drained
  uint64_t batch_counter_ = 0;
  std::string batch_prefix_;
  std::mt19937_64 rng_;
  std::thread thread_;
};

}  // namespace agentwire::analytics
