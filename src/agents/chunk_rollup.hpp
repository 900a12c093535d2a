#pragma once

#include "core/result.hpp"

#include <boost/json/object.hpp>

#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

namespace agentwire::agents {

// Joins an agent's consecutive text deltas into fewer agent_response_chunk events: deltas of one
// message that arrive within `window` of the first one held, up to `max_bytes`, go out as one chunk
// whose delta is their concatenation (the content is unchanged). Anything else the run emits sends
// what is held first, so the stream's order is the agent's. An agent that goes quiet mid-message
// has its text sent by the RollupTimer at the window's end, not held until its next event.
//
// Every event of the run goes through send() under one mutex, which is what keeps a timer's flush
// and the agent's next event in order. Thread-safe.
class ChunkRollup {
 public:
  using Clock = std::chrono::steady_clock;
  struct Options {
    std::chrono::milliseconds window{30};  // 0 = every delta is its own chunk
    std::size_t max_bytes = 4096;
  };
  // Delivers one event of the run (the emitter's path to delivery); run_status as in delivery::Event.
  using Deliver =
      std::function<core::Result<bool>(const std::string& type, boost::json::object data, const std::string& status)>;

  ChunkRollup(Options options, Deliver deliver) : options_(options), deliver_(std::move(deliver)) {}

  // An event of the run. A text delta ({message_id, delta} and nothing else) may be held: then
  // `due` is set when a new window started (the caller schedules the timer), and the result is
  // true. Otherwise the result is the delivery's.
  struct Sent {
    core::Result<bool> result = true;
    std::optional<Clock::time_point> due;
  };
  Sent send(const std::string& type, boost::json::object data, const std::string& run_status = {});
  // Sends what is held if its window has passed (the timer), or at once (`force`).
  void flush(bool force);
  // No more deliveries: what is held is dropped (the run is over without a terminal event of its own).
  void close();

 private:
  void flushLocked();

  const Options options_;
  Deliver deliver_;
  std::mutex mutex_;
  std::string message_id_;
  std::string text_;
  Clock::time_point first_{};
  bool closed_ = false;
};

// Flushes held text at its deadline, for every run: one thread, woken only when text is held.
class RollupTimer {
 public:
  RollupTimer();
  ~RollupTimer();
  RollupTimer(const RollupTimer&) = delete;
  RollupTimer& operator=(const RollupTimer&) = delete;
  void schedule(const std::shared_ptr<ChunkRollup>& rollup, ChunkRollup::Clock::time_point due);

 private:
  void loop();
  std::mutex mutex_;
  std::condition_variable cv_;
  std::multimap<ChunkRollup::Clock::time_point, std::weak_ptr<ChunkRollup>> due_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace agentwire::agents
