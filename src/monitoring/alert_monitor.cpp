#include "monitoring/alert_monitor.hpp"

#include "core/ids.hpp"
#include "core/logging.hpp"
#include "core/thread_name.hpp"

#include <fmt/format.h>

namespace agentwire::monitoring {

using namespace std::chrono_literals;

std::string_view toString(Severity s) {
  switch (s) {
    case Severity::Info: return "info";
    case Severity::Warning: return "warning";
    case Severity::Critical: return "critical";
  }
  return "unknown";
}

double IncreaseWindow::increase(Clock::time_point now, std::chrono::milliseconds window) {
  samples_.emplace_back(now, read_());
  // Keep the newest sample at or before the window's start as the baseline.
  while (samples_.size() > 2 && samples_[1].first <= now - window) samples_.pop_front();
  return samples_.back().second - samples_.front().second;
}

AlertMonitor::AlertMonitor(std::vector<AlertRule> rules, std::chrono::milliseconds interval,
                           std::vector<std::string> dependencies)
    : Component("alert_monitor", std::move(dependencies), lifecycle::Criticality::Optional),
      rules_(std::move(rules)),
      interval_(interval),
      log_(core::logger("alerts")),
      states_(rules_.size()) {}

AlertMonitor::~AlertMonitor() {
  stop();
}

void AlertMonitor::start() {
  {
    std::lock_guard lock(mutex_);
    running_ = true;
  }
  thread_ = std::thread([this] {
    core::setThreadName("aw-alerts");
    std::unique_lock lock(mutex_);
    while (running_) {
      lock.unlock();
      if (trends_) trends_->sample(Clock::now(), core::nowMs());
      evaluate(Clock::now());
      lock.lock();
      cv_.wait_for(lock, interval_, [this] { return !running_; });
    }
  });
}

void AlertMonitor::stop() {
  {
    std::lock_guard lock(mutex_);
    if (!running_) return;
    running_ = false;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void AlertMonitor::evaluate(Clock::time_point now) {
  for (std::size_t i = 0; i < rules_.size(); ++i) {
    const AlertRule& rule = rules_[i];
    std::optional<std::string> seen = rule.condition(now);
    std::lock_guard lock(mutex_);
    State& st = states_[i];
    if (!seen) {
      st.pending_since.reset();
      if (st.firing) {
        st.firing = false;
        log_->info("alert {} resolved ({}): {}", rule.name, toString(rule.severity), rule.summary);
      }
      continue;
    }
    if (!st.pending_since) st.pending_since = now;
    st.alert.detail = *seen;
    if (st.firing || now - *st.pending_since < rule.for_duration) continue;
    st.firing = true;
    ++st.fired;
    st.alert = ActiveAlert{rule.name, rule.severity, rule.summary, *seen, core::nowMs()};
    auto level = rule.severity == Severity::Critical  ? spdlog::level::critical
                 : rule.severity == Severity::Warning ? spdlog::level::warn
                                                      : spdlog::level::info;
    log_->log(level, "alert {} firing ({}): {}: {}", rule.name, toString(rule.severity), rule.summary, *seen);
  }
}

std::vector<ActiveAlert> AlertMonitor::active() const {
  std::lock_guard lock(mutex_);
  std::vector<ActiveAlert> out;
  for (const auto& st : states_) {
    if (st.firing) out.push_back(st.alert);
  }
  return out;
}

std::vector<std::string> AlertMonitor::ruleNames() const {
  std::vector<std::string> out;
  for (const auto& r : rules_) out.push_back(r.name);
  return out;
}

std::map<std::string, uint64_t> AlertMonitor::firings() const {
  std::lock_guard lock(mutex_);
  std::map<std::string, uint64_t> out;
  for (std::size_t i = 0; i < rules_.size(); ++i) out[rules_[i].name] = states_[i].fired;
  return out;
}

// The thresholds below are the same as deploy/prometheus/alerts.yml; change both together.

AlertRule deliveryFailureRule(std::function<double()> failures_total) {
  auto w = std::make_shared<IncreaseWindow>(std::move(failures_total));
  return AlertRule{"AgentwireDeliveryFailures", Severity::Critical,
                   "events could not be delivered (\"Cannot deliver message\")", 0ms,
                   [w](Clock::time_point now) -> std::optional<std::string> {
                     double n = w->increase(now, 5min);
                     if (n <= 0) return std::nullopt;
                     return fmt::format("{} delivery failures in the last 5 minutes", n);
                   }};
}

AlertRule noHandlersRule(std::function<double()> handlers_registered, std::function<double()> uptime_s) {
  return AlertRule{
      "AgentwireNoMessageHandlers", Severity::Warning, "no message handlers registered more than 5 s after start", 0ms,
      [h = std::move(handlers_registered), up = std::move(uptime_s)](Clock::time_point) -> std::optional<std::string> {
        if (h() > 0 || up() <= 5) return std::nullopt;
        return fmt::format("0 handlers after {:.1f} s", up());
      }};
}

AlertRule busDownRule(std::function<bool()> live, std::function<std::string()> reason,
                      std::chrono::milliseconds for_duration) {
  return AlertRule{"AgentwireBusDown", Severity::Warning,
                   "Redis is not carrying notices between nodes (events still arrive, through periodic checks of the "
                   "store, up to bus.head_check_down_ms later)",
                   for_duration,
                   [l = std::move(live), r = std::move(reason)](Clock::time_point) -> std::optional<std::string> {
                     if (l()) return std::nullopt;
                     return r();
                   }};
}

AlertRule nodeTakeoverRule(std::function<double()> takeovers_total) {
  auto w = std::make_shared<IncreaseWindow>(std::move(takeovers_total));
  return AlertRule{"AgentwireNodeTakeover", Severity::Warning,
                   "a node stopped renewing its lease and this node ended its runs (interrupted)", 0ms,
                   [w](Clock::time_point now) -> std::optional<std::string> {
                     double n = w->increase(now, 5min);
                     if (n <= 0) return std::nullopt;
                     return fmt::format("{} nodes taken over in the last 5 minutes", n);
                   }};
}

AlertRule clickHouseDownRule(std::function<bool()> enabled, std::function<bool()> up,
                             std::function<std::string()> last_error) {
  return AlertRule{"AgentwireClickHouseDown", Severity::Info,
                   "ClickHouse is not taking analytics (rows are spooled; chat is unaffected)", 0ms,
                   [e = std::move(enabled), u = std::move(up),
                    err = std::move(last_error)](Clock::time_point) -> std::optional<std::string> {
                     if (!e() || u()) return std::nullopt;
                     return err();
                   }};
}

AlertRule notReadyRule(std::function<bool()> ready_or_stopping, std::chrono::milliseconds for_duration) {
  return AlertRule{"AgentwireNotReady", Severity::Warning, "the server has not been ready for a while", for_duration,
                   [r = std::move(ready_or_stopping)](Clock::time_point) -> std::optional<std::string> {
                     if (r()) return std::nullopt;
                     return std::string("readiness is false; see /health/ready for the component and reason");
                   }};
}

AlertRule slowConsumerRule(std::function<double()> closed_4001_total) {
  auto w = std::make_shared<IncreaseWindow>(std::move(closed_4001_total));
  return AlertRule{"AgentwireSlowConsumers", Severity::Warning,
                   "clients are being cut off for falling behind (close 4001)", 0ms,
                   [w](Clock::time_point now) -> std::optional<std::string> {
                     double n = w->increase(now, 5min);
                     if (n < 5) return std::nullopt;
                     return fmt::format("{} connections closed with 4001 in the last 5 minutes", n);
                   }};
}

AlertRule runErrorRatioRule(std::function<double()> runs_total, std::function<double()> failed_runs_total) {
  auto all = std::make_shared<IncreaseWindow>(std::move(runs_total));
  auto failed = std::make_shared<IncreaseWindow>(std::move(failed_runs_total));
  return AlertRule{"AgentwireRunErrorRatio", Severity::Warning, "more than 10% of agent runs end in error or timeout",
                   0ms, [all, failed](Clock::time_point now) -> std::optional<std::string> {
                     double n = all->increase(now, 5min);
                     double f = failed->increase(now, 5min);
                     if (n < 10 || f / n <= 0.10) return std::nullopt;
                     return fmt::format("{} of {} runs failed in the last 5 minutes", f, n);
                   }};
}

AlertRule analyticsDroppingRule(std::function<double()> dropped_total) {
  auto w = std::make_shared<IncreaseWindow>(std::move(dropped_total));
  return AlertRule{"AgentwireAnalyticsDropping", Severity::Warning,
                   "analytics rows are being dropped (queue or spool full, or rejected)", 0ms,
                   [w](Clock::time_point now) -> std::optional<std::string> {
                     double n = w->increase(now, 10min);
                     if (n <= 0) return std::nullopt;
                     return fmt::format("{} rows dropped in the last 10 minutes", n);
                   }};
}

}  // namespace agentwire::monitoring
