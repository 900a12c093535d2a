#include "core/ids.hpp"

#include <chrono>
#include <cstdio>
#include <random>

namespace agentwire::core {

std::string newId(const char* prefix) {
  thread_local std::mt19937_64 rng{std::random_device{}() ^
                                   static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count())};
  char buf[27];
  std::snprintf(buf, sizeof buf, "%012llx_%012llx", static_cast<unsigned long long>(nowMs()) & 0xFFFFFFFFFFFFULL,
                static_cast<unsigned long long>(rng() & 0xFFFFFFFFFFFFULL));
  return std::string(prefix) + "_" + buf;
}

int64_t nowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace agentwire::core
