#include "analytics/analytics_component.hpp"

#include "analytics/clickhouse/clickhouse_sink.hpp"
#include "core/ids.hpp"
#include "core/logging.hpp"

#include <fmt/format.h>
#include <unistd.h>
#include <boost/json.hpp>

#include <filesystem>

namespace agentwire::analytics {
namespace {

std::string hostName() {
  char buf[256] = {};
  if (gethostname(buf, sizeof(buf) - 1) != 0) return "unknown";
  return buf;
}

}  // namespace

AnalyticsComponent::AnalyticsComponent(const core::Config& config, std::vector<std::string> dependencies)
    : Component("analytics", std::move(dependencies),
                config.analytics.required ? lifecycle::Criticality::Critical : lifecycle::Criticality::Optional),
      config_(config.analytics),
      log_(core::logger("analytics")) {
  if (!config_.enabled) return;
  std::filesystem::path spool_dir = config_.spool_dir;
  if (spool_dir.empty()) spool_dir = std::filesystem::path(config.dataDir()) / "analytics-spool";
  sink_ = std::make_unique<ClickHouseSink>(ClickHouseSink::Options{
      config_.url, config_.database, config_.user, config_.password,
      std::chrono::milliseconds(config_.connect_timeout_ms), std::chrono::milliseconds(config_.request_timeout_ms)});
  spool_ = std::make_unique<Spool>(spool_dir, uint64_t(config_.spool_max_mb) * 1024 * 1024);
  pipeline_ = std::make_unique<Pipeline>(
      *sink_, *spool_,
      Pipeline::Options{
          static_cast<std::size_t>(config_.batch_rows), std::chrono::milliseconds(config_.flush_interval_ms),
          static_cast<std::size_t>(config_.queue_max), std::chrono::milliseconds(config_.retry_initial_ms),
          std::chrono::milliseconds(config_.retry_max_ms), config_.node.empty() ? hostName() : config_.node,
          core::kSystemUser});
  pipeline_->onStateChange([this](bool up, const std::string& error) { applyState(up, error); });
}

AnalyticsComponent::~AnalyticsComponent() {
  if (pipeline_) pipeline_->stop();
}

Recorder& AnalyticsComponent::recorder() {
  if (pipeline_) return *pipeline_;
  return NullRecorder::instance();
}

void AnalyticsComponent::start() {
  if (!pipeline_) {
    setHealth(lifecycle::HealthState::Healthy, "disabled by configuration");
    return;
  }
  spool_->open();
  SendResult first = pipeline_->start();
  if (first.status == SendStatus::Ok) {
    log_->info("sending analytics to {} (database '{}')", sink_->describe(), config_.database);
  }
}

void AnalyticsComponent::applyState(bool up, const std::string& error) {
  if (up) {
    setHealth(lifecycle::HealthState::Healthy);
    return;
  }
  // Required: not ready until ClickHouse answers. Optional: degraded, readiness unaffected.
  setHealth(critical() ? lifecycle::HealthState::Unhealthy : lifecycle::HealthState::Degraded,
            fmt::format("{}; rows are spooled and retried", error));
}

void AnalyticsComponent::stop() {
  if (!pipeline_) return;
  pipeline_->stop();
  const auto& s = pipeline_->stats();
  log_->info("analytics stopped: {} rows inserted, {} batches ({} bytes) left in the spool, {} rows dropped",
             s.inserted.load(), spool_->batches(), spool_->bytes(),
             s.dropped_queue_full.load() + s.dropped_spool_full.load() + s.dropped_rejected.load() +
                 s.dropped_after_stop.load());
}

boost::json::object AnalyticsComponent::details() const {
  if (!pipeline_) return {{"enabled", false}};
  const auto& s = pipeline_->stats();
  return {{"enabled", true},
          {"sink", sink_->describe()},
          {"up", pipeline_->up()},
          {"queue_depth", pipeline_->queueDepth()},
          {"spool_bytes", spool_->bytes()},
          {"spool_batches", spool_->batches()},
          {"rows_inserted", s.inserted.load()},
          {"rows_dropped", s.dropped_queue_full.load() + s.dropped_spool_full.load() + s.dropped_rejected.load() +
                               s.dropped_after_stop.load()},
          {"insert_errors", s.insert_errors.load()},
          {"last_error", pipeline_->lastError()}};
}

}  // namespace agentwire::analytics
