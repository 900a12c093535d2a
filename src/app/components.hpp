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

}  // namespace agentwire::app
