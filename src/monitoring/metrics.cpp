#include "monitoring/metrics.hpp"

#include <prometheus/metric_family.h>
#include <prometheus/text_serializer.h>

#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>

namespace agentwire::monitoring {

Family::Family(std::string name, std::string help, Type type)
    : name_(std::move(name)), help_(std::move(help)), type_(type) {}

Family& Family::add(double value, std::map<std::string, std::string> labels) {
  samples_.emplace_back(std::move(labels), value);
  return *this;
}

Family& Family::addHistogram(const Histogram::Snapshot& h, std::map<std::string, std::string> labels) {
  histograms_.emplace_back(std::move(labels), h);
  return *this;
}

void MetricsEndpoint::addSource(Source source) {
  std::lock_guard lock(mutex_);
  sources_.push_back(std::move(source));
}

std::string MetricsEndpoint::scrape() const {
  std::vector<Family> families;
  {
    std::lock_guard lock(mutex_);
    for (const auto& s : sources_) s(families);
  }
  std::vector<prometheus::MetricFamily> out;
  out.reserve(families.size());
  for (const auto& f : families) {
    prometheus::MetricFamily mf;
    mf.name = f.name_;
    mf.help = f.help_;
    mf.type = f.type_ == Family::Type::Counter ? prometheus::MetricType::Counter
              : f.type_ == Family::Type::Gauge ? prometheus::MetricType::Gauge
                                               : prometheus::MetricType::Histogram;
    for (const auto& [labels, h] : f.histograms_) {
      prometheus::ClientMetric m;
      for (const auto& [k, v] : labels) m.label.push_back({k, v});
      m.histogram.sample_count = h.count;
      m.histogram.sample_sum = h.sum;
      for (std::size_t i = 0; i < h.upper_bounds.size(); ++i) {
        m.histogram.bucket.push_back({h.cumulative[i], h.upper_bounds[i]});
      }
      m.histogram.bucket.push_back({h.count, std::numeric_limits<double>::infinity()});
      mf.metric.push_back(std::move(m));
    }
    for (const auto& [labels, value] : f.samples_) {
      prometheus::ClientMetric m;
      for (const auto& [k, v] : labels) m.label.push_back({k, v});
      if (f.type_ == Family::Type::Counter) {
        m.counter.value = value;
      } else {
        m.gauge.value = value;
      }
      mf.metric.push_back(std::move(m));
    }
    out.push_back(std::move(mf));
  }
  std::ostringstream text;
  prometheus::TextSerializer().Serialize(text, out);
  return text.str();
}

void addProcessMetrics(MetricsEndpoint& endpoint) {
  endpoint.addSource([](std::vector<Family>& out) {
    const double tick = static_cast<double>(sysconf(_SC_CLK_TCK));
    const double page = static_cast<double>(sysconf(_SC_PAGESIZE));
    std::ifstream statf("/proc/self/stat");
    std::string stat((std::istreambuf_iterator<char>(statf)), std::istreambuf_iterator<char>());
    auto close = stat.rfind(')');
    std::istringstream in(close == std::string::npos ? std::string{} : stat.substr(close + 2));
    std::vector<std::string> f(60);
    for (auto& x : f) in >> x;  // field 3 (state) is f[0]
    auto num = [&](int field) {
      return field - 3 < static_cast<int>(f.size()) ? std::atof(f[field - 3].c_str()) : 0.0;
    };
    double boot = 0;
    {
      std::ifstream s("/proc/stat");
      std::string key;
      while (s >> key) {
        if (key == "btime") {
          s >> boot;
          break;
        }
      }
    }
    std::size_t fds = 0;
    std::error_code ec;
    for (auto it = std::filesystem::directory_iterator("/proc/self/fd", ec);
         !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
      ++fds;
    }
    rlimit rl{};
    getrlimit(RLIMIT_NOFILE, &rl);
    out.emplace_back("process_cpu_seconds_total", "Total user and system CPU time spent in seconds.",
                     Family::Type::Counter);
    out.back().add((num(14) + num(15)) / tick);
    out.emplace_back("process_resident_memory_bytes", "Resident memory size in bytes.", Family::Type::Gauge);
    out.back().add(num(24) * page);
    out.emplace_back("process_virtual_memory_bytes", "Virtual memory size in bytes.", Family::Type::Gauge);
    out.back().add(num(23));
    out.emplace_back("process_threads", "Number of OS threads in the process.", Family::Type::Gauge);
    out.back().add(num(20));
    out.emplace_back("process_start_time_seconds", "Start time of the process since unix epoch in seconds.",
                     Family::Type::Gauge);
    out.back().add(boot + num(22) / tick);
    out.emplace_back("process_open_fds", "Number of open file descriptors.", Family::Type::Gauge);
    out.back().add(static_cast<double>(fds));
    out.emplace_back("process_max_fds", "Maximum number of open file descriptors.", Family::Type::Gauge);
    out.back().add(static_cast<double>(rl.rlim_cur));
  });
}

}  // namespace agentwire::monitoring
