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

namespace {

// The store's view of a batch: messages (with their runs), events, acks (one per user, the highest).
// Messages, runs and events are moved, not copied (their ids, texts and payloads are most of the
// writer's allocations otherwise); restore() moves them back into the items once the commit is done.
void assemble(std::vector<WriteItem>& batch, store::WriteBatch& wb) {
  std::unordered_map<std::string, std::size_t> ack_index;  // user -> position in wb.acks
  wb.messages.clear();
  wb.runs.clear();
  wb.events.clear();
  wb.acks.clear();
  for (auto& item : batch) {
    switch (item.kind) {
      case WriteItem::Kind::Message:
        wb.messages.push_back(std::move(*item.message));
        if (item.run) wb.runs.push_back(std::move(*item.run));
        break;
      case WriteItem::Kind::Ack: {
        auto [it, fresh] = ack_index.try_emplace(item.event.user_id, wb.acks.size());
        if (fresh) {
          wb.acks.emplace_back(item.event.user_id, item.event.seq);
        } else {
          wb.acks[it->second].second = std::max(wb.acks[it->second].second, item.event.seq);
        }
        break;
      }
      case WriteItem::Kind::Event: wb.events.push_back(std::move(item.event)); break;
    }
  }
}

// Undoes assemble()'s moves: each item gets its message, run or event back, in the same order.
void restore(std::vector<WriteItem>& batch, store::WriteBatch& wb) {
  std::size_t m = 0;
  std::size_t r = 0;
  std::size_t e = 0;
  for (auto& item : batch) {
    switch (item.kind) {
      case WriteItem::Kind::Message:
        *item.message = std::move(wb.messages[m++]);
        if (item.run) *item.run = std::move(wb.runs[r++]);
        break;
      case WriteItem::Kind::Event: item.event = std::move(wb.events[e++]); break;
      case WriteItem::Kind::Ack: break;
    }
  }
}

}  // namespace

bool StreamWriter::refuse(std::vector<WriteItem>& batch, const core::Error& why) {
  auto refusable = [](const WriteItem& i) { return i.kind == WriteItem::Kind::Message && i.refusable; };
  if (std::none_of(batch.begin(), batch.end(), refusable)) return false;
  core::Error error{store::kUnavailable,
                    "the store cannot write right now (" + why.message + "); the message was not stored, retry later"};
  std::size_t removed = 0;
  std::erase_if(batch, [&](WriteItem& i) {
    if (!refusable(i)) return false;
    if (i.done) i.done(error);
    ++removed;
    return true;
  });
  {
    std::lock_guard lock(mutex_);
    in_flight_ -= removed;
  }
  room_cv_.notify_all();
  return true;
}

void StreamWriter::refuseQueued(const core::Error& why) {
  // Messages that were queued just before the failures began would otherwise wait behind the
  // retries with no answer.
  std::vector<WriteItem> taken;
  {
    std::lock_guard lock(mutex_);
    for (auto it = queue_.begin(); it != queue_.end();) {
      if (it->kind == WriteItem::Kind::Message && it->refusable) {
        taken.push_back(std::move(*it));
        it = queue_.erase(it);
      } else {
        ++it;
      }
    }
  }
  if (taken.empty()) return;
  room_cv_.notify_all();
  refuse(taken, why);
}

core::Result<store::CommitStats> StreamWriter::commitWithRetry(std::vector<WriteItem>& batch, store::WriteBatch& wb) {
  auto backoff = options_.retry_initial;
  int attempts_while_stopping = 0;
  bool retried_at_once = false;
  for (;;) {
    auto started = std::chrono::steady_clock::now();
    auto r = store_.commit(wb);
    if (commit_seconds_ != nullptr) {
      commit_seconds_->observe(std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
      commit_items_->observe(static_cast<double>(wb.size()));
    }
    if (r || r.error().code != store::kUnavailable) {
      if (failing_.exchange(false)) log_->info("event stream writes succeed again");
      return r;
    }
    // One failure is tried again at once, before anything is refused: a connection the database
    // dropped (PostgreSQL ends a session idle in a transaction while its node is paused) is replaced
    // by the next attempt, and the messages sent meanwhile need not see `unavailable`.
    if (!retried_at_once && !failing_.load()) {
      retried_at_once = true;
      log_->warn("cannot commit {} items: {}; trying again at once", wb.size(), r.error().message);
      continue;
    }
    {
      std::lock_guard lock(mutex_);
      last_error_ = r.error().message;
    }
    if (!failing_.exchange(true)) {
      log_->error(
          "cannot commit {} items: {}; new messages are refused (unavailable) and the rest is retried "
          "until the store takes it",
          wb.size(), r.error().message);
    }
    // The refusable messages leave the batch: the items take their contents back first.
    restore(batch, wb);
    refuse(batch, r.error());
    assemble(batch, wb);
    if (wb.empty()) return store::CommitStats{};
    refuseQueued(r.error());
    std::unique_lock lock(mutex_);
    if (stopping_ && ++attempts_while_stopping > options_.attempts_after_stop) return r;
    work_cv_.wait_for(lock, backoff, [&] { return stopping_ && attempts_while_stopping == 0; });
    backoff = std::min(options_.retry_max, backoff * 2);
  }
}

void StreamWriter::loop() {
  std::vector<WriteItem> batch;
  store::WriteBatch wb;
  auto probe_backoff = options_.retry_initial;
  for (;;) {
    {
      std::unique_lock lock(mutex_);
      auto ready = [&] { return !queue_.empty() || stopping_; };
      if (failing_.load()) {
        work_cv_.wait_for(lock, probe_backoff, ready);
      } else {
        work_cv_.wait(lock, ready);
      }
      if (queue_.empty()) {
        if (stopping_) return;  // everything queued was written
        // Failing with nothing to write: find out with a real write when the store takes writes
        // again, so that readiness comes back by itself.
        lock.unlock();
        if (store_.probeWrite()) {
          failing_ = false;
          probe_backoff = options_.retry_initial;
          log_->info("event stream writes succeed again");
        } else {
          probe_backoff = std::min(options_.retry_max, probe_backoff * 2);
        }
        continue;
      }
      while (!queue_.empty() && batch.size() < options_.max_batch) {
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
    }
    room_cv_.notify_all();
    // While the store fails, a user's new message is refused rather than queued behind the retries.
    if (failing_.load()) refuse(batch, core::Error{store::kUnavailable, lastError()});
    assemble(batch, wb);
    auto committed = commitWithRetry(batch, wb);
    restore(batch, wb);
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
