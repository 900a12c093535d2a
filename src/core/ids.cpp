#include "core/ids.hpp"

#include <fmt/format.h>

#include <chrono>
#include <cstdio>
#include <ctime>
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

std::string utcDate(int64_t ms) {
  std::time_t t = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  return fmt::format("{:04}-{:02}-{:02}", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday);
}

}  // namespace agentwire::core
