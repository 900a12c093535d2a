#pragma once

#include <cstdint>
#include <mutex>
#include <string>

namespace agentwire::app {

// Start attempts and their outcomes, kept in the data directory across restarts: a start that
// fails ends the process before anything scrapes it, so a count kept in memory could never see
// it. begin() counts the attempt on disk first; an attempt never finished (the process died while
// starting) stays counted as an attempt without a success.
class StartupHistory {
 public:
  struct Counts {
    int64_t attempts = 0;  // every start that got as far as reading its configuration
    int64_t ready = 0;     // starts that reached ready
    int64_t clean = 0;     // ... with every component ok (none degraded)
  };

  explicit StartupHistory(std::string path) : path_(std::move(path)) {}
  // Counts this attempt (on disk at once). A file that cannot be read starts from zero.
  void begin();
  void finish(bool ready, bool clean);
  Counts counts() const;

 private:
  void write(const Counts& c) const;  // caller holds mutex_

  std::string path_;
  mutable std::mutex mutex_;
  Counts counts_;
};

}  // namespace agentwire::app
