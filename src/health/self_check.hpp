#pragma once

#include "core/ids.hpp"
#include "core/result.hpp"
#include "lifecycle/component.hpp"
#include "lifecycle/startup_trace.hpp"

#include <spdlog/logger.h>

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <optional>
#include <thread>

namespace agentwire::gateway {
class MessageRouter;
}
namespace agentwire::delivery {
class Delivery;
}
namespace agentwire::store {
class Store;
}

namespace agentwire::health {

// The routing self-check: an in-process loopback connection of a reserved system user sends a
// real user_message through router -> handler -> agent -> bridge -> delivery -> connection and
// checks that the ack and every expected event arrive, in seq order. Runs as the last step
// before readiness (a failure keeps the server not ready, naming the hop) and on demand.
// Each check removes the thread, messages and run it made; only the system user's stream keeps
// its newest event.
class SelfCheck final : public lifecycle::Component {
 public:
  SelfCheck(gateway::MessageRouter& router, delivery::Delivery& delivery, store::Store& store,
            lifecycle::StartupTrace& trace, std::chrono::milliseconds timeout, bool enabled,
            std::vector<std::string> dependencies);
  ~SelfCheck() override;

  // The user the check runs as (before start()): this node's own (core::systemUserFor).
  void setUser(std::string user) { user_ = std::move(user); }

  void start() override;  // throws with the failed hop
  void stop() override;

  struct Report {
    double took_ms = 0;
    std::vector<std::string> frames;  // types received, in order
    bool reused = false;              // the answer of a check that had just run
  };
  using Done = std::function<void(const core::Result<Report>&)>;
  // On demand (GET /health/selfcheck): the check runs on the self-check's own thread, one at a
  // time; callers during a check share its result, and a result younger than `min_interval` is
  // given again without running (so the endpoint costs at most one check per interval, however
  // often it is called). `done` runs on that thread, or at once for a reused result.
  void request(Done done, std::chrono::milliseconds min_interval = std::chrono::milliseconds(1000));

  // Runs one check on the calling thread. Not concurrent with itself (checks share the system
  // user's stream); request() is the thread-safe entry point.
  core::Result<Report> runOnce();

 private:
  void workerLoop();

  gateway::MessageRouter& router_;
  delivery::Delivery& delivery_;
  store::Store& store_;
  lifecycle::StartupTrace& trace_;
  std::chrono::milliseconds timeout_;
  bool enabled_;
  std::string user_ = core::kSystemUser;
  std::shared_ptr<spdlog::logger> log_;

  std::mutex mutex_;
  std::condition_variable cv_;
  std::vector<Done> waiting_;
  std::optional<core::Result<Report>> last_;
  std::chrono::steady_clock::time_point last_at_{};
  bool stopping_ = false;
  std::thread worker_;
};

}  // namespace agentwire::health
