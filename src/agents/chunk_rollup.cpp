#include "agents/chunk_rollup.hpp"

#include "core/thread_name.hpp"

namespace agentwire::agents {
namespace {

// {message_id, delta} with string values and nothing else: text that may be joined.
bool joinable(const std::string& type, const boost::json::object& data) {
  if (type != "agent_response_chunk" || data.size() != 2) return false;
  auto* id = data.if_contains("message_id");
  auto* delta = data.if_contains("delta");
  return id != nullptr && id->is_string() && delta != nullptr && delta->is_string();
}

// The timer sleeps a tick past the earliest due flush and then flushes everything due, so flushes
// due within a tick of each other cost one wakeup: each run's first chunk schedules a flush, most
// rollups are flushed at their run's end long before it, and waking for each would cost a context
// switch per run (about 5% of them at 1,000 runs/s). A rollup's text goes out at most this long
// after its window.
constexpr auto kTick = std::chrono::milliseconds(5);

}  // namespace

ChunkRollup::Sent ChunkRollup::send(const std::string& type, boost::json::object data, const std::string& run_status) {
  std::lock_guard lock(mutex_);
  if (closed_) return {core::Error{"run_ended", "the run is over"}, std::nullopt};
  if (options_.window.count() <= 0 || !joinable(type, data)) {
    flushLocked();
    return {deliver_(type, std::move(data), run_status), std::nullopt};
  }
  auto id = data.at("message_id").as_string();
  if (!text_.empty() && id != message_id_) flushLocked();
  auto now = Clock::now();
  bool started = text_.empty();
  if (started) {
    message_id_.assign(id.data(), id.size());
    first_ = now;
  }
  auto delta = data.at("delta").as_string();
  text_.append(delta.data(), delta.size());
  if (text_.size() >= options_.max_bytes || now - first_ >= options_.window) {
    flushLocked();
    return {};
  }
  if (started) return {true, first_ + options_.window};
  return {};
}

void ChunkRollup::flush(bool force) {
  std::lock_guard lock(mutex_);
  if (closed_ || text_.empty()) return;
  if (!force && Clock::now() - first_ < options_.window) return;
  flushLocked();
}

void ChunkRollup::close() {
  std::lock_guard lock(mutex_);
  closed_ = true;
  text_.clear();
}

void ChunkRollup::flushLocked() {
  if (text_.empty()) return;
  boost::json::object data{{"message_id", message_id_}, {"delta", std::move(text_)}};
  text_.clear();
  // A failure is counted and logged by delivery; the agent hears of it at its next event.
  (void)deliver_("agent_response_chunk", std::move(data), {});
}

RollupTimer::RollupTimer()
    : thread_([this] {
        core::setThreadName("aw-rollup");
        loop();
      }) {}

RollupTimer::~RollupTimer() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void RollupTimer::schedule(const std::shared_ptr<ChunkRollup>& rollup, ChunkRollup::Clock::time_point due) {
  bool earliest = false;
  {
    std::lock_guard lock(mutex_);
    earliest = due_.empty() || due < due_.begin()->first;
    due_.emplace(due, rollup);
  }
  if (earliest) cv_.notify_one();
}

void RollupTimer::loop() {
  std::unique_lock lock(mutex_);
  while (!stopping_) {
    if (due_.empty()) {
      cv_.wait(lock);
      continue;
    }
    auto next = due_.begin()->first;
    if (ChunkRollup::Clock::now() < next) {
      cv_.wait_until(lock, next + kTick);
      continue;
    }
    auto weak = std::move(due_.begin()->second);
    due_.erase(due_.begin());
    // Flushed without this lock: a flush delivers, and may wait for room in the writer queue.
    lock.unlock();
    if (auto rollup = weak.lock()) rollup->flush(false);
    lock.lock();
  }
}

}  // namespace agentwire::agents
