#pragma once

#include "lifecycle/component.hpp"
#include "monitoring/trends.hpp"

#include <spdlog/logger.h>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace agentwire::monitoring {

enum class Severity { Info, Warning, Critical };
std::string_view toString(Severity s);

using Clock = std::chrono::steady_clock;

// One threshold. `condition` returns a description of what it sees when the threshold is
// crossed at `now`, nullopt otherwise; it is called from the monitor's thread only.
struct AlertRule {
  std::string name;
  Severity severity = Severity::Warning;
  std::string summary;
  std::chrono::milliseconds for_duration{0};  // the condition must hold this long before firing
  std::function<std::optional<std::string>(Clock::time_point now)> condition;
};

struct ActiveAlert {
  std::string name;
  Severity severity;
  std::string summary;
  std::string detail;
  int64_t since_ms = 0;  // wall clock, when it fired
};

// Tracks a monotonically increasing counter and answers "did it increase within the last W?".
class IncreaseWindow {
 public:
  explicit IncreaseWindow(std::function<double()> read) : read_(std::move(read)) {}
  // Samples the counter; returns the increase over the last `window` (0 when none).
  double increase(Clock::time_point now, std::chrono::milliseconds window);

 private:
  std::function<double()> read_;
  std::deque<std::pair<Clock::time_point, double>> samples_;
};

// Evaluates alert rules in-process, once per interval, on its own thread, so a deployment
// without Prometheus gets the same thresholds as deploy/prometheus/alerts.yml. Each firing and
// each resolution is logged once, at the alert's severity; active() lists what is firing
// (GET /health/alerts). It depends only on config, so it watches startup too.
class AlertMonitor final : public lifecycle::Component {
 public:
  AlertMonitor(std::vector<AlertRule> rules, std::chrono::milliseconds interval, std::vector<std::string> dependencies);
  ~AlertMonitor() override;

  void start() override;
  void stop() override;

  // One evaluation at `now`. The thread calls it every interval; tests call it directly.
  void evaluate(Clock::time_point now);
  std::vector<ActiveAlert> active() const;
  std::vector<std::string> ruleNames() const;
  // How many times each rule fired since start (for tests and metrics).
  std::map<std::string, uint64_t> firings() const;
  // The status page's trends, sampled on this monitor's beat (no thread of their own). Set
  // before start().
  void setTrends(std::unique_ptr<Trends> trends) { trends_ = std::move(trends); }
  const Trends* trends() const { return trends_.get(); }

 private:
  struct State {
    std::optional<Clock::time_point> pending_since;
    bool firing = false;
    ActiveAlert alert;
    uint64_t fired = 0;
  };

  std::vector<AlertRule> rules_;
  std::chrono::milliseconds interval_;
  std::shared_ptr<spdlog::logger> log_;
  mutable std::mutex mutex_;
  std::condition_variable cv_;
  std::vector<State> states_;
  bool running_ = false;
  std::unique_ptr<Trends> trends_;
  std::thread thread_;
};

// The rules, built from plain readings so that they can be tested without a server.
AlertRule deliveryFailureRule(std::function<double()> failures_total);
AlertRule noHandlersRule(std::function<double()> handlers_registered, std::function<double()> uptime_s);
// Several nodes: Redis does not answer through this node's subscription for `for_duration` (events
// still arrive, later, through the periodic check of the store's heads).
AlertRule busDownRule(std::function<bool()> live, std::function<std::string()> reason,
                      std::chrono::milliseconds for_duration);
// Several nodes: this node took over a node whose lease expired (a node died) in the last 5 minutes.
AlertRule nodeTakeoverRule(std::function<double()> takeovers_total);
AlertRule clickHouseDownRule(std::function<bool()> enabled, std::function<bool()> up,
                             std::function<std::string()> last_error);
AlertRule notReadyRule(std::function<bool()> ready_or_stopping, std::chrono::milliseconds for_duration);
AlertRule slowConsumerRule(std::function<double()> closed_4001_total);
AlertRule runErrorRatioRule(std::function<double()> runs_total, std::function<double()> failed_runs_total);
AlertRule analyticsDroppingRule(std::function<double()> dropped_total);

}  // namespace agentwire::monitoring
