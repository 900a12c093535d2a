#pragma once

#include "core/config.hpp"
#include "lifecycle/component.hpp"

#include <atomic>

namespace agentwire::app {

// "config": the root of the graph. Configuration is already loaded and validated when the
// registry starts; this component checks what only running can check (the data directory is
// writable) and records the effective configuration in the log.
class ConfigComponent final : public lifecycle::Component {
 public:
  explicit ConfigComponent(const core::Config& config);
  void start() override;
  void stop() override {}

 private:
  const core::Config& config_;
};

// "ws_gateway": the last component. When it has started, every critical component before it is
// up, and the upgrade gate lets WebSocket upgrades through (while the process is ready).
class WsGateway final : public lifecycle::Component {
 public:
  explicit WsGateway(std::vector<std::string> dependencies);
  void start() override { accepting_ = true; }
  void stop() override { accepting_ = false; }
  bool accepting() const { return accepting_.load(); }

 private:
  std::atomic<bool> accepting_{false};
};

}  // namespace agentwire::app
