#pragma once

#include <boost/json/value.hpp>

#include <chrono>
#include <mutex>
#include <string>
#include <vector>

namespace agentwire::lifecycle {

// What happened during startup: one span per component (start, finish, outcome, dependencies)
// and a list of notable events ("registered 7 handlers", "counted handlers") in the order they
// happened. Thread-safe: independent components start concurrently and record concurrently.
class StartupTrace {
 public:
  using Clock = std::chrono::steady_clock;

  struct Span {
    std::string component;
    std::vector<std::string> dependencies;
    bool critical = true;
    std::string outcome = "not_started";  // ok, degraded, failed, not_started
    std::string error;
    double start_ms = -1;  // offsets from the trace origin (process start)
    double end_ms = -1;
  };
  struct Event {
    double at_ms = 0;
    std::string component;
    std::string what;
  };

  explicit StartupTrace(Clock::time_point origin = Clock::now());

  void beginSpan(const std::string& component, std::vector<std::string> dependencies, bool critical);
  void endSpan(const std::string& component, std::string outcome, std::string error = {});
  void declare(const std::string& component, std::vector<std::string> dependencies, bool critical);
  void recordEvent(const std::string& component, std::string what);
  // Marks the end of startup (ready or failed) and the total time to it.
  void finish(bool ok);

  std::vector<Span> spans() const;
  std::vector<Event> events() const;
  double sinceOriginMs() const;

  boost::json::value toJson() const;
  // A compact, fixed-width table for the log at the end of startup.
  std::string toTable() const;

 private:
  Span* findLocked(const std::string& component);

  Clock::time_point origin_;
  mutable std::mutex mutex_;
  std::vector<Span> spans_;
  std::vector<Event> events_;
  bool finished_ = false;
  bool ok_ = false;
  double total_ms_ = -1;
};

}  // namespace agentwire::lifecycle
