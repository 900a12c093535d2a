#pragma once

#include "analytics/pipeline.hpp"
#include "analytics/record.hpp"
#include "analytics/spool.hpp"
#include "core/config.hpp"
#include "lifecycle/component.hpp"

#include <spdlog/logger.h>

#include <memory>

namespace agentwire::analytics {

// The analytics component. Optional by default (analytics.required makes it critical).
//
// Disabled: healthy ("disabled"), recorder() discards rows. Enabled: rows recorded by any
// component go through the Pipeline to ClickHouse, with the spool under analytics.spool_dir.
// While ClickHouse is down the component is degraded (optional) or unhealthy (required, so the
// server is not ready), with the error as the reason; it turns healthy by itself once ClickHouse
// answers. start() never fails because ClickHouse is down: chat does not wait for analytics.
class AnalyticsComponent final : public lifecycle::Component {
 public:
  AnalyticsComponent(const core::Config& config, std::vector<std::string> dependencies);
  ~AnalyticsComponent() override;

  void start() override;
  void stop() override;
  boost::json::object details() const override;

  // Where components record rows; valid for the component's lifetime, before and after start().
  Recorder& recorder();
  // Null when disabled.
  const Pipeline* pipeline() const { return pipeline_.get(); }
  bool enabledByConfig() const { return config_.enabled; }

 private:
  void applyState(bool up, const std::string& error);

  core::Config::Analytics config_;
  std::shared_ptr<spdlog::logger> log_;
  std::unique_ptr<AnalyticsSink> sink_;
  std::unique_ptr<Spool> spool_;
  std::unique_ptr<Pipeline> pipeline_;
};

}  // namespace agentwire::analytics
