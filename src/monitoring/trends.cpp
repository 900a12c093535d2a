#include "monitoring/trends.hpp"

#include <boost/json.hpp>

#include <cmath>

namespace agentwire::monitoring {

std::optional<double> quantileOfIncrease(const Histogram::Snapshot& before, const Histogram::Snapshot& after,
                                         double q) {
  auto gained = [&](std::size_t i) {
    uint64_t was = i < before.cumulative.size() ? before.cumulative[i] : 0;
    return after.cumulative[i] >= was ? after.cumulative[i] - was : 0;
  };
  uint64_t total = after.count >= before.count ? after.count - before.count : 0;
  if (total == 0 || after.cumulative.empty()) return std::nullopt;
  double rank = q * static_cast<double>(total);
  uint64_t below = 0;
  for (std::size_t i = 0; i < after.cumulative.size(); ++i) {
    uint64_t upto = gained(i);
    if (static_cast<double>(upto) >= rank) {
      double lower = i == 0 ? 0.0 : after.upper_bounds[i - 1];
      double upper = after.upper_bounds[i];
      uint64_t in_bucket = upto - below;
      if (in_bucket == 0) return upper;
      return lower + (upper - lower) * (rank - static_cast<double>(below)) / static_cast<double>(in_bucket);
    }
    below = upto;
  }
  return after.upper_bounds.back();
}

Trends::Trends(Readings readings, std::chrono::milliseconds step, std::size_t keep)
    : read_(std::move(readings)), step_(step), keep_(keep) {}

void Trends::sample(std::chrono::steady_clock::time_point now, int64_t wall_ms) {
  std::lock_guard lock(mutex_);
  // A beat a little early still counts: the monitor's one-second beat must not skip every
  // other point of a step that is a multiple of it.
  if (last_at_ && now - *last_at_ < step_ - step_ / 10) return;
  double events = read_.events_total();
  auto latency = read_.latency_seconds();
  if (last_at_) {
    double seconds = std::chrono::duration<double>(now - *last_at_).count();
    TrendPoint p;
    p.t_ms = wall_ms;
    p.events_per_s = seconds > 0 ? std::max(0.0, events - last_events_) / seconds : 0;
    if (auto p99 = quantileOfIncrease(last_latency_, latency, 0.99)) p.p99_ms = *p99 * 1000.0;
    p.connections = read_.connections();
    p.active_runs = read_.active_runs();
    points_.push_back(p);
    while (points_.size() > keep_) points_.pop_front();
  }
  last_at_ = now;
  last_events_ = events;
  last_latency_ = std::move(latency);
}

std::deque<TrendPoint> Trends::points() const {
  std::lock_guard lock(mutex_);
  return points_;
}

boost::json::array Trends::json() const {
  boost::json::array out;
  for (const auto& p : points()) {
    boost::json::object o{{"t", p.t_ms},
                          {"events_per_s", std::round(p.events_per_s * 100) / 100},
                          {"connections", p.connections},
                          {"active_runs", p.active_runs}};
    o["p99_ms"] = p.p99_ms ? boost::json::value(std::round(*p.p99_ms * 1000) / 1000) : boost::json::value(nullptr);
    out.push_back(std::move(o));
  }
  return out;
}

}  // namespace agentwire::monitoring
