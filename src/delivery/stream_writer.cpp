#include "delivery/stream_writer.hpp"

#include "core/logging.hpp"
#include "core/thread_name.hpp"

#include <algorithm>
#include <unordered_map>

namespace agentwire::delivery {

StreamWriter::StreamWriter(store::Store& store, Options options, OnCommitted on_committed)
    : store_(store), options_(options), on_committed_(std::move(on_committed)), log_(core::logger("delivery")) {}

StreamWriter::~StreamWriter() {
  stop();
}

void StreamWriter::start() {
  std::lock_guard lock(mutex_);
  if (running_) return;
  stopping_ = false;
  running_ = true;
  thread_ = std::thread([this] {
    core::setThreadName("aw-writer");
    loop();
  });
}

void StreamWriter::stop() {
  {
    std::lock_guard lock(mutex_);
    if (!running_) return;
    stopping_ = true;
  }
  work_cv_.notify_all();
  room_cv_.notify_all();
  thread_.join();
  std::lock_guard lock(mutex_);
  running_ = false;
}

bool StreamWriter::running() const {
  std::lock_guard lock(mutex_);
  return running_ && !stopping_;
}

bool StreamWriter::waitForRoom() {
  std::unique_lock lock(mutex_);
  if (!running_ || stopping_) return false;
  room_cv_.wait(lock, [&] { return queue_.size() < options_.max_pending || stopping_; });
  return !stopping_;
}

bool StreamWriter::hasRoom() const {
  std::lock_guard lock(mutex_);
  return running_ && !stopping_ && queue_.size() < options_.max_pending;
}

void StreamWriter::push(WriteItem&& item) {
  {
    std::lock_guard lock(mutex_);
    queue_.push_back(std::move(item));
    ++in_flight_;
  }
  work_cv_.notify_one();
}

void StreamWriter::flush() {
  std::unique_lock lock(mutex_);
  room_cv_.wait(lock, [&] { return in_flight_ == 0; });
}

std::string StreamWriter::lastError() const {
  std::lock_guard lock(mutex_);
  return last_error_;
}

std::size_t StreamWriter::depth() const {
  std::lock_guard lock(mutex_);
  return queue_.size();
}

core::Result<store::CommitStats> StreamWriter::commitWithRetry(const store::WriteBatch& batch) {
  auto backoff = options_.retry_initial;
  int attempts_while_stopping = 0;
  for (;;) {
    auto r = store_.commit(batch);
    if (r || r.error().code != store::kUnavailable) {
      if (failing_.exchange(false)) log_->info("event stream writes succeed again");
      return r;
    }
    {
      std::lock_guard lock(mutex_);
      last_error_ = r.error().message;
    }
    if (!failing_.exchange(true)) {
      log_->error(
          "cannot commit {} items: {}; new messages are refused (unavailable) and the batch is retried "
          "until the store takes it",
          batch.size(), r.error().message);
    }
    std::unique_lock lock(mutex_);
    if (stopping_ && ++attempts_while_stopping > options_.attempts_after_stop) return r;
    work_cv_.wait_for(lock, backoff, [&] { return stopping_ && attempts_while_stopping == 0; });
    backoff = std::min(options_.retry_max, backoff * 2);
  }
}

void StreamWriter::loop() {
  std::vector<WriteItem> batch;
  store::WriteBatch wb;
  std::unordered_map<std::string, std::size_t> ack_index;  // user -> position in wb.acks
  for (;;) {
    {
      std::unique_lock lock(mutex_);
      work_cv_.wait(lock, [&] { return !queue_.empty() || stopping_; });
      if (queue_.empty()) return;  // stopping, and everything queued was written
      while (!queue_.empty() && batch.size() < options_.max_batch) {
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
    }
    room_cv_.notify_all();
    wb.messages.clear();
    wb.runs.clear();
    wb.events.clear();
    wb.acks.clear();
    ack_index.clear();
    for (const auto& item : batch) {
      switch (item.kind) {
        case WriteItem::Kind::Message:
          wb.messages.push_back(*item.message);
          if (item.run) wb.runs.push_back(*item.run);
          break;
        case WriteItem::Kind::Ack: {
          // Cumulative: one per user per batch, the highest.
          auto [it, fresh] = ack_index.try_emplace(item.event.user_id, wb.acks.size());
          if (fresh) {
            wb.acks.emplace_back(item.event.user_id, item.event.seq);
          } else {
            wb.acks[it->second].second = std::max(wb.acks[it->second].second, item.event.seq);
          }
          break;
        }
        case WriteItem::Kind::Event: wb.events.push_back(item.event); break;
      }
    }
    auto committed = commitWithRetry(wb);
    on_committed_(batch, committed);
    {
      std::lock_guard lock(mutex_);
      in_flight_ -= batch.size();
    }
    room_cv_.notify_all();
    batch.clear();
  }
}

}  // namespace agentwire::delivery
