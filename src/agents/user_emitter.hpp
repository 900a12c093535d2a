#pragma once

#include "core/result.hpp"

#include <boost/json/object.hpp>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>

namespace agentwire::delivery {
class Delivery;
}

namespace agentwire::agents {

class CancelToken;
class ChunkRollup;
class RunJournal;
class RollupTimer;

// Who a run is for. Created per request, never shared between users.
struct UserContext {
  std::string user_id;
  std::string thread_id;
  std::string run_id;
  std::string request_id;
};

// The only way agent code reaches a user: an emitter is bound at creation to one user, one
// thread and one run, and has no way to name another. Events go through delivery, so they get
// a seq, are stored, and wait for a user who is offline. Thread-safe.
class UserEmitter {
 public:
  ~UserEmitter();
  UserEmitter(const UserEmitter&) = delete;
  UserEmitter& operator=(const UserEmitter&) = delete;

  // Queues the event for the user's stream (it gets its seq when committed). Errors: the thread is
  // gone or not the user's, the store refused it. While the run replays after a tool approval
  // (RunJournal), events were sent before and are left out.
  core::Result<bool> emit(const std::string& type, boost::json::object data) const;
  const UserContext& context() const { return ctx_; }
  int toolCalls() const { return tool_calls_.load(); }

 private:
  friend class AgentWebSocketBridge;
  UserEmitter(delivery::Delivery& delivery, UserContext ctx) : delivery_(delivery), ctx_(std::move(ctx)) {}
  // Text deltas go through a rollup (agents.chunk_window_ms); every event then does, in order.
  void useRollup(std::shared_ptr<ChunkRollup> rollup, RollupTimer& timer);
  core::Result<bool> send(const std::string& type, boost::json::object data, const std::string& run_status) const;
  void paceByReader() const;
  core::Result<bool> deliver(const std::string& type, boost::json::object data, const std::string& run_status) const;
  // The runner's first and last events: they also set the run's stored status.
  core::Result<bool> emitLifecycle(const std::string& type, boost::json::object data,
                                   const std::string& run_status) const;

  // An emitter of an abandoned run emits nothing (error run_abandoned): its terminal event was
  // already written by the node that took it over.
  bool abandoned() const;

  delivery::Delivery& delivery_;
  const UserContext ctx_;
  const CancelToken* token_ = nullptr;   // set by the bridge for the runs it executes
  const RunJournal* journal_ = nullptr;  // set by the bridge when the run can park
  // Pacing by the reader: text deltas wait while a connection of the user is behind, at most this
  // long each time (0 = never); the time waited is added to *paced_us_.
  std::chrono::milliseconds pace_max_{0};
  std::atomic<uint64_t>* paced_us_ = nullptr;
  std::atomic<int>* pacing_now_ = nullptr;  // emitters waiting right now
  mutable std::atomic<int> tool_calls_{0};
  std::shared_ptr<ChunkRollup> rollup_;
  RollupTimer* timer_ = nullptr;
};

}  // namespace agentwire::agents
