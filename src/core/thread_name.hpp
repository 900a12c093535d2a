#pragma once

#include <pthread.h>

#include <string>

namespace agentwire::core {

// Names the calling thread (visible in top -H, perf, gdb); at most 15 characters are kept.
inline void setThreadName(const std::string& name) {
  pthread_setname_np(pthread_self(), name.substr(0, 15).c_str());
}

}  // namespace agentwire::core
