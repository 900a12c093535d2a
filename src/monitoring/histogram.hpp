#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

namespace agentwire::monitoring {

// A Prometheus-style histogram that the hot path can feed: observe() is a few relaxed atomic
// adds, no lock and no allocation. Read at scrape time with snapshot().
class Histogram {
 public:
  explicit Histogram(std::vector<double> upper_bounds);

  void observe(double value);

  struct Snapshot {
    std::vector<double> upper_bounds;
    std::vector<uint64_t> cumulative;  // per bound, observations <= bound
    uint64_t count = 0;
    double sum = 0;
  };
  Snapshot snapshot() const;

  // Bounds for latencies in seconds: 100 µs to 10 s.
  static std::vector<double> latencyBounds();
  // Bounds for agent run durations in seconds: 1 ms to 10 min.
  static std::vector<double> durationBounds();

 private:
  std::vector<double> bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> counts_;  // per bucket (not cumulative), last = +Inf
  std::atomic<uint64_t> count_{0};
  std::atomic<double> sum_{0};
};

}  // namespace agentwire::monitoring
