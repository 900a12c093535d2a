#pragma once

#include "core/config.hpp"
#include "lifecycle/component.hpp"

#include <spdlog/logger.h>

namespace agentwire::analytics {

// The analytics component. Optional by default (analytics.required makes it critical).
// Disabled: healthy, reason "disabled". Enabled: start() checks that ClickHouse answers
// /ping over HTTP; when it does not, start() fails, the registry marks the component degraded
// and chat is unaffected.
// TODO(issue 5): the batching sink with spool and retries replaces the reachability check.
class AnalyticsComponent final : public lifecycle::Component {
 public:
  AnalyticsComponent(core::Config::Analytics config, std::vector<std::string> dependencies);

  void start() override;
  void stop() override {}

 private:
  core::Config::Analytics config_;
  std::shared_ptr<spdlog::logger> log_;
};

}  // namespace agentwire::analytics
