#pragma once

#include "monitoring/histogram.hpp"

#include "core/result.hpp"
#include "store/store.hpp"

#include <spdlog/logger.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

namespace agentwire::delivery {

// One thing for the store, queued for the writer thread.
struct WriteItem {
  enum class Kind { Event, Message, Ack };
  Kind kind = Kind::Event;
  store::StoredEvent event;                                       // Event; for an Ack: user_id, and seq = the acked seq
  std::optional<store::Message> message;                          // Message
  std::optional<store::RunRecord> run;                            // with a Message: the run it starts, stored with it
  std::function<void(const core::Result<store::Message>&)> done;  // Message: on the writer thread
  std::shared_ptr<void> owner;  // Event: the producer's per-user state, kept alive until fanned out
  // Message: may be refused (done gets `unavailable`) instead of waiting while the store fails: a
  // user's new message, which the client can send again. An agent's answer is never refusable.
  bool refusable = false;
  std::chrono::steady_clock::time_point queued_at = std::chrono::steady_clock::now();
};

// The group commit: a thread that takes everything queued (up to a batch), commits it in one
// store transaction and hands the batch and the outcome to `on_committed` (fan-out, callbacks).
//
// Failures: a commit that fails with `unavailable` (disk full, I/O error, database unreachable) is
// retried with backoff until it succeeds: the refusable messages in it (users' new messages) are
// answered `unavailable` at once and leave the batch, everything else (agents' events and answers,
// acks) stays, in order, and is committed once the store takes writes again. Meanwhile failing()
// is true so that callers refuse new work with a retryable error, and while nothing is queued the
// writer probes the store with a small write so that it notices the recovery by itself. Any other
// failure fails the batch (on_committed sees the error). On stop() the queue is drained; if the
// store still fails then, the batch is given up after a few attempts and reported lost.
//
// The queue is bounded: waitForRoom() blocks producers that may wait (agent workers);
// hasRoom() lets the I/O threads fail fast instead. push() itself never blocks.
class StreamWriter {
 public:
  struct Options {
    std::size_t max_pending = 65536;
    std::size_t max_batch = 1024;
    std::chrono::milliseconds retry_initial{50};
    std::chrono::milliseconds retry_max{2000};
    int attempts_after_stop = 3;
  };
  using OnCommitted = std::function<void(std::vector<WriteItem>& batch, const core::Result<store::CommitStats>& r)>;

  StreamWriter(store::Store& store, Options options, OnCommitted on_committed);
  ~StreamWriter();

  void setOptions(Options o) { options_ = o; }  // before start()
  // Each store commit's duration (seconds) and number of items, attempts that fail included
  // (before start(); shared by every shard's writer).
  void observeCommits(monitoring::Histogram* seconds, monitoring::Histogram* items) {
    commit_seconds_ = seconds;
    commit_items_ = items;
  }
  void start();
  void stop();  // commits everything queued first
  bool running() const;

  // Blocks until the queue has room; false when the writer is not running.
  bool waitForRoom();
  // True when the queue has room now (callers on I/O threads: fail fast otherwise).
  bool hasRoom() const;
  void push(WriteItem&& item);
  // Waits until everything queued so far is committed and handed on.
  void flush();

  bool failing() const { return failing_.load(); }
  std::string lastError() const;
  std::size_t depth() const;

 private:
  void loop();
  core::Result<store::CommitStats> commitWithRetry(std::vector<WriteItem>& batch, store::WriteBatch& wb);
  // Answers the refusable messages of a failing batch and removes them; true when there were any.
  bool refuse(std::vector<WriteItem>& batch, const core::Error& why);
  // The same for refusable messages still in the queue.
  void refuseQueued(const core::Error& why);

  store::Store& store_;
  Options options_;
  monitoring::Histogram* commit_seconds_ = nullptr;
  monitoring::Histogram* commit_items_ = nullptr;
  OnCommitted on_committed_;
  std::shared_ptr<spdlog::logger> log_;

  mutable std::mutex mutex_;
  std::condition_variable work_cv_;  // writer: work arrived / stop
  std::condition_variable room_cv_;  // producers: room; flush(): drained
  std::deque<WriteItem> queue_;
  std::size_t in_flight_ = 0;  // queued + being committed/handed on
  bool running_ = false;
  bool stopping_ = false;
  std::string last_error_;
  std::atomic<bool> failing_{false};
  std::thread thread_;
};

}  // namespace agentwire::delivery
