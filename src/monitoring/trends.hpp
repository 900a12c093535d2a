#pragma once

#include "monitoring/histogram.hpp"

#include <boost/json/array.hpp>

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>

namespace agentwire::monitoring {

// What the status page draws: one point per step over the last minutes, from the server's own
// counters, so that an operator sees a trend (and a page opened now sees the past ten minutes).
struct TrendPoint {
  int64_t t_ms = 0;              // wall clock at the end of the step
  double events_per_s = 0;       // events committed to user streams
  std::optional<double> p99_ms;  // delivery latency over the step; none when nothing was delivered
  int64_t connections = 0;       // live connections at the end of the step
  int64_t active_runs = 0;       // agent runs queued or executing
};

// The 99th percentile of what a cumulative histogram gained between two snapshots, interpolated
// inside its bucket as Prometheus' histogram_quantile does; nullopt when it gained nothing. Past
// the last bound it answers the last bound (the histogram cannot say more).
std::optional<double> quantileOfIncrease(const Histogram::Snapshot& before, const Histogram::Snapshot& after, double q);

class Trends {
 public:
  struct Readings {
    std::function<double()> events_total;
    std::function<Histogram::Snapshot()> latency_seconds;
    std::function<int64_t()> connections;
    std::function<int64_t()> active_runs;
  };
  Trends(Readings readings, std::chrono::milliseconds step, std::size_t keep);

  // Called on any beat (the alert monitor's, every second): takes a point once a step has passed
  // since the last one. The first call only sets the baseline. Thread-safe.
  void sample(std::chrono::steady_clock::time_point now, int64_t wall_ms);
  std::deque<TrendPoint> points() const;
  boost::json::array json() const;
  std::chrono::milliseconds step() const { return step_; }

 private:
  Readings read_;
  std::chrono::milliseconds step_;
  std::size_t keep_;
  mutable std::mutex mutex_;
  std::optional<std::chrono::steady_clock::time_point> last_at_;
  double last_events_ = 0;
  Histogram::Snapshot last_latency_;
  std::deque<TrendPoint> points_;
};

}  // namespace agentwire::monitoring
