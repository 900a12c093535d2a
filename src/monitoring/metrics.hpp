#pragma once

#include "monitoring/histogram.hpp"

#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace prometheus {
struct MetricFamily;
}

namespace agentwire::monitoring {

// Builds one Prometheus metric family (a name, help, type and its labelled samples).
class Family {
 public:
  enum class Type { Counter, Gauge, Histogram };
  Family(std::string name, std::string help, Type type);
  Family& add(double value, std::map<std::string, std::string> labels = {});
  // For Type::Histogram families.
  Family& addHistogram(const Histogram::Snapshot& h, std::map<std::string, std::string> labels = {});

 private:
  friend class MetricsEndpoint;
  std::string name_;
  std::string help_;
  Type type_;
  std::vector<std::pair<std::map<std::string, std::string>, double>> samples_;
  std::vector<std::pair<std::map<std::string, std::string>, Histogram::Snapshot>> histograms_;
};

// GET /metrics: metric families produced at scrape time by registered sources, which read the
// counters the components already keep. Nothing is recorded on the hot path for these.
// Thread-safe: sources are added before serving; scrape() may run concurrently.
class MetricsEndpoint {
 public:
  using Source = std::function<void(std::vector<Family>&)>;

  void addSource(Source source);
  // The Prometheus text exposition format (version 0.0.4), via prometheus-cpp's serializer.
  std::string scrape() const;

 private:
  mutable std::mutex mutex_;
  std::vector<Source> sources_;
};

// process_cpu_seconds_total, process_resident_memory_bytes, process_virtual_memory_bytes,
// process_open_fds, process_max_fds, process_start_time_seconds, process_threads (from /proc/self).
void addProcessMetrics(MetricsEndpoint& endpoint);

}  // namespace agentwire::monitoring
