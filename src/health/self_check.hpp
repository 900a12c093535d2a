#pragma once

#include "core/result.hpp"
#include "lifecycle/component.hpp"
#include "lifecycle/startup_trace.hpp"

#include <spdlog/logger.h>

#include <chrono>

namespace agentwire::gateway {
class MessageRouter;
}
namespace agentwire::delivery {
class Delivery;
}

namespace agentwire::health {

// The routing self-check: an in-process loopback connection of a reserved system user sends a
// real user_message through router -> handler -> agent -> bridge -> delivery -> connection and
// checks that the ack and every expected event arrive, in seq order. Runs as the last step
// before readiness (a failure keeps the server not ready, naming the hop) and on demand.
class SelfCheck final : public lifecycle::Component {
 public:
  SelfCheck(gateway::MessageRouter& router, delivery::Delivery& delivery, lifecycle::StartupTrace& trace,
            std::chrono::milliseconds timeout, bool enabled, std::vector<std::string> dependencies);

  void start() override;  // throws with the failed hop
  void stop() override {}

  struct Report {
    double took_ms = 0;
    std::vector<std::string> frames;  // types received, in order
  };
  // Thread-safe; returns the failed hop as the error message.
  core::Result<Report> runOnce() const;

 private:
  gateway::MessageRouter& router_;
  delivery::Delivery& delivery_;
  lifecycle::StartupTrace& trace_;
  std::chrono::milliseconds timeout_;
  bool enabled_;
  std::shared_ptr<spdlog::logger> log_;
};

}  // namespace agentwire::health
