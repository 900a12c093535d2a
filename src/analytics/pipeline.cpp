#include "analytics/pipeline.hpp"

#include "core/ids.hpp"
#include "core/logging.hpp"
#include "core/thread_name.hpp"

#include <fmt/format.h>
#include <boost/json.hpp>

#include <ctime>

namespace agentwire::analytics {

Pipeline::Pipeline(AnalyticsSink& sink, Spool& spool, Options options)
    : sink_(sink),
      spool_(spool),
      options_(std::move(options)),
      log_(core::logger("analytics")),
      batch_prefix_(core::newId("b")),
      rng_(std::random_device{}()) {}

Pipeline::~Pipeline() {
  stop();
}

std::string Pipeline::toJsonRow(const Record& r, const std::string& node, const std::string& batch_id,
                                uint64_t row_no) {
  boost::json::object o{{"batch_id", batch_id},
                        {"row_no", row_no},
                        {"event_date", core::utcDate(r.ts_ms)},
                        {"ts", r.ts_ms / 1000},
                        {"ts_ms", r.ts_ms},
                        {"node", node},
                        {"kind", r.kind},
                        {"user_id", r.user_id},
                        {"thread_id", r.thread_id},
                        {"run_id", r.run_id},
                        {"connection_id", r.connection_id},
                        {"agent", r.agent},
                        {"outcome", r.outcome},
                        {"event_type", r.event_type},
                        {"reason", r.reason},
                        {"seq", r.seq},
                        {"latency_us", r.latency_us},
                        {"duration_ms", r.duration_ms},
                        {"count", r.count},
                        {"code", r.code},
                        {"input_tokens", r.input_tokens},
                        {"output_tokens", r.output_tokens}};
  return boost::json::serialize(o);
}

void Pipeline::record(Record&& r) {
  if (!options_.ignored_user.empty() && r.user_id.rfind(options_.ignored_user, 0) == 0) return;
  if (r.ts_ms == 0) r.ts_ms = core::nowMs();
  bool wake = false;
  {
    std::lock_guard lock(m_);
    ++produced_[r.kind];
    if (stop_ && !running_) {
      ++stats_.dropped_after_stop;
      return;
    }
    if (queue_.size() >= options_.queue_max) {
      ++stats_.dropped_queue_full;
      if (!queue_full_logged_.exchange(true)) {
        log_->warn("analytics queue is full ({} rows): rows are dropped and counted until it drains",
                   options_.queue_max);
      }
      return;
    }
    queue_.push_back(std::move(r));
    wake = queue_.size() == options_.batch_rows;
  }
  if (wake) cv_.notify_one();
}

SendResult Pipeline::start() {
  inherited_ = spool_.batches();
  if (inherited_ > 0) {
    log_->info("{} analytics batches ({} bytes) left in the spool by a previous run; they are sent first", inherited_,
               spool_.bytes());
  }
  SendResult first = sink_.ensureSchema();
  if (first.status == SendStatus::Ok) {
    schema_ok_ = true;
    markUp();
  } else {
    markDown(first.error);
  }
  {
    std::lock_guard lock(m_);
    running_ = true;
    stop_ = false;
  }
  thread_ = std::thread([this] {
    core::setThreadName("aw-analytics");
    run();
  });
  return first;
}

void Pipeline::stop() {
  {
    std::lock_guard lock(m_);
    if (!running_) return;
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  std::lock_guard lock(m_);
  running_ = false;
}

void Pipeline::run() {
  std::vector<Record> pending;
  auto last_flush = std::chrono::steady_clock::now();
  std::unique_lock lock(m_);
  for (;;) {
    auto flush_at = last_flush + options_.flush_interval;
    auto wake_at = flush_at;
    bool retry_due = !spool_.empty() || !up_;
    if (retry_due && next_retry_ < wake_at) wake_at = next_retry_;
    cv_.wait_until(lock, wake_at, [&] {
      return stop_ || queue_.size() >= options_.batch_rows ||
             (retry_due && std::chrono::steady_clock::now() >= next_retry_);
    });
    bool stopping = stop_;
    while (!queue_.empty() && pending.size() < options_.batch_rows) {
      pending.push_back(std::move(queue_.front()));
      queue_.pop_front();
    }
    if (queue_.size() < options_.queue_max / 2) queue_full_logged_ = false;
    lock.unlock();

    auto now = std::chrono::steady_clock::now();
    if (!pending.empty() && (pending.size() >= options_.batch_rows || now >= flush_at || stopping)) {
      route(makeBatch(pending));
      last_flush = now;
    } else if (pending.empty() && now >= flush_at) {
      last_flush = now;
    }
    // While stopping, the spool is left for the next run: shutdown does not wait on a backlog.
    if (!stopping && now >= next_retry_) {
      if (!spool_.empty()) {
        drainOne();
      } else if (!up_) {
        probe();
      }
    }
    lock.lock();
    if (stopping && queue_.empty() && pending.empty()) break;
  }
}

Batch Pipeline::makeBatch(std::vector<Record>& rows) {
  Batch b;
  b.id = fmt::format("{}-{}", batch_prefix_, ++batch_counter_);
  b.first_date = core::utcDate(rows.front().ts_ms);
  b.rows = rows.size();
  std::size_t row_no = 0;
  for (const auto& r : rows) {
    b.body += toJsonRow(r, options_.node, b.id, row_no++);
    b.body += '\n';
  }
  rows.clear();
  return b;
}

void Pipeline::route(Batch&& batch) {
  // Anything already waiting goes first; a sink known to be down is not tried per batch.
  if (!spool_.empty() || !up_ || !schema_ok_) {
    spoolOrDrop(batch);
    return;
  }
  SendResult r = sink_.insert(batch);
  switch (r.status) {
    case SendStatus::Ok:
      stats_.inserted += batch.rows;
      ++stats_.batches_inserted;
      return;
    case SendStatus::Rejected:
      log_->error("{} refused analytics batch {} ({} rows) as malformed; moved to {}/rejected: {}", sink_.describe(),
                  batch.id, batch.rows, spool_.dir().string(), r.error);
      stats_.dropped_rejected += batch.rows;
      spool_.rejectBatch(batch, r.error);
      return;
    case SendStatus::Transient:
      unsure_.insert(batch.id);
      markDown(r.error);
      spoolOrDrop(batch);
      return;
  }
}

void Pipeline::spoolOrDrop(const Batch& batch) {
  if (spool_.append(batch)) {
    spool_full_logged_ = false;
    return;
  }
  stats_.dropped_spool_full += batch.rows;
  unsure_.erase(batch.id);
  if (!spool_full_logged_) {
    spool_full_logged_ = true;
    log_->warn("analytics spool {} is full or unwritable ({} bytes in {} batches): new rows are dropped and counted",
               spool_.dir().string(), spool_.bytes(), spool_.batches());
  }
}

void Pipeline::probe() {
  SendResult r = sink_.ensureSchema();
  if (r.status == SendStatus::Ok) {
    schema_ok_ = true;
    markUp();
  } else {
    markDown(r.error);
  }
}

void Pipeline::drainOne() {
  auto batch = spool_.front();
  if (!batch) return;
  if (!schema_ok_) {
    probe();
    if (!schema_ok_) return;
  }
  // The front batch is settled (stored, found stored, or refused): it leaves the spool.
  auto settled = [&] {
    unsure_.erase(batch->id);
    if (inherited_ > 0) --inherited_;
  };
  if (inherited_ > 0 || unsure_.contains(batch->id)) {
    bool found = false;
    SendResult c = sink_.contains(*batch, found);
    if (c.status != SendStatus::Ok) {
      markDown(c.error);
      return;
    }
    if (found) {
      log_->info("analytics batch {} was already stored; not sending it again", batch->id);
      ++stats_.duplicates_skipped;
      stats_.inserted += batch->rows;
      settled();
      spool_.popFront();
      markUp();
      return;
    }
  }
  SendResult r = sink_.insert(*batch);
  switch (r.status) {
    case SendStatus::Ok:
      stats_.inserted += batch->rows;
      ++stats_.batches_inserted;
      settled();
      spool_.popFront();
      markUp();
      if (spool_.empty()) log_->info("analytics spool drained");
      return;
    case SendStatus::Rejected:
      log_->error("{} refused spooled analytics batch {} ({} rows) as malformed; moved to {}/rejected: {}",
                  sink_.describe(), batch->id, batch->rows, spool_.dir().string(), r.error);
      stats_.dropped_rejected += batch->rows;
      settled();
      spool_.rejectFront(r.error);
      return;
    case SendStatus::Transient:
      unsure_.insert(batch->id);
      markDown(r.error);
      return;
  }
}

void Pipeline::markUp() {
  backoff_ = std::chrono::milliseconds(0);
  next_retry_ = std::chrono::steady_clock::now();
  if (up_.exchange(true)) return;
  if (!spool_.empty()) {
    log_->info("{} answers again; draining {} spooled batches", sink_.describe(), spool_.batches());
  }
  if (on_state_) on_state_(true, {});
}

void Pipeline::markDown(const std::string& error) {
  ++stats_.insert_errors;
  {
    std::lock_guard lock(m_);
    last_error_ = error;
  }
  backoff_ = backoff_.count() == 0 ? options_.retry_initial : std::min(options_.retry_max, backoff_ * 2);
  // "Equal jitter": between half the backoff and all of it, so many nodes do not retry in step.
  auto half = backoff_.count() / 2;
  std::uniform_int_distribution<int64_t> dist(0, std::max<int64_t>(half, 0));
  next_retry_ = std::chrono::steady_clock::now() + std::chrono::milliseconds(backoff_.count() - half + dist(rng_));
  bool was_up = up_.exchange(false);
  if (was_up || !on_state_called_down_) {
    on_state_called_down_ = true;
    log_->warn("{} is not storing analytics: {}; batches go to the spool at {} and are retried with backoff",
               sink_.describe(), error, spool_.dir().string());
    if (on_state_) on_state_(false, error);
  }
}

std::string Pipeline::lastError() const {
  std::lock_guard lock(m_);
  return last_error_;
}

std::size_t Pipeline::queueDepth() const {
  std::lock_guard lock(m_);
  return queue_.size();
}

std::map<std::string, uint64_t> Pipeline::producedByKind() const {
  std::lock_guard lock(m_);
  return produced_;
}

}  // namespace agentwire::analytics
