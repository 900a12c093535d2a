#include "app/startup_history.hpp"

#include "core/logging.hpp"

#include <cstdio>
#include <fstream>
#include <sstream>

namespace agentwire::app {

void StartupHistory::begin() {
  std::lock_guard lock(mutex_);
  std::ifstream in(path_);  // an empty path (store in memory) opens nothing
  std::string key;
  int64_t value = 0;
  while (in >> key >> value) {
    if (key == "attempts") counts_.attempts = value;
    if (key == "ready") counts_.ready = value;
    if (key == "clean") counts_.clean = value;
  }
  ++counts_.attempts;
  write(counts_);
}

void StartupHistory::finish(bool ready, bool clean) {
  std::lock_guard lock(mutex_);
  if (ready) ++counts_.ready;
  if (ready && clean) ++counts_.clean;
  write(counts_);
}

StartupHistory::Counts StartupHistory::counts() const {
  std::lock_guard lock(mutex_);
  return counts_;
}

void StartupHistory::write(const Counts& c) const {
  if (path_.empty()) return;
  // Not fatal: the history is for the success-rate metric, not worth refusing to start over.
  std::string tmp = path_ + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << "attempts " << c.attempts << "\nready " << c.ready << "\nclean " << c.clean << "\n";
    if (!out) {
      core::logger("main")->warn("cannot write the startup history to '{}'", path_);
      return;
    }
  }
  if (std::rename(tmp.c_str(), path_.c_str()) != 0) {
    core::logger("main")->warn("cannot write the startup history to '{}'", path_);
  }
}

}  // namespace agentwire::app
