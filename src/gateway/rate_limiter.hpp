#pragma once

#include <chrono>
#include <mutex>
#include <string>
#include <unordered_map>

namespace agentwire::gateway {

// A token bucket: `rate` per second with a burst of the same size. Not thread-safe on its own.
class TokenBucket {
 public:
  using Clock = std::chrono::steady_clock;
  explicit TokenBucket(double rate, Clock::time_point now = Clock::now()) : rate_(rate), tokens_(rate), at_(now) {}
  // Takes one token if there is one.
  bool take(Clock::time_point now = Clock::now());
  Clock::time_point lastUse() const { return at_; }

 private:
  double rate_;
  double tokens_;
  Clock::time_point at_;
};

// One bucket per user, for entry points without a connection of their own (HTTP API, AG-UI).
// Thread-safe. Buckets idle long enough to be full again are forgotten, so memory follows the
// number of users active in the last seconds.
class UserRateLimiter {
 public:
  explicit UserRateLimiter(double rate) : rate_(rate) {}
  bool allow(const std::string& user_id, TokenBucket::Clock::time_point now = TokenBucket::Clock::now());
  std::size_t trackedUsers() const;

 private:
  double rate_;
  mutable std::mutex mutex_;
  std::unordered_map<std::string, TokenBucket> buckets_;
  TokenBucket::Clock::time_point next_sweep_{};
};

}  // namespace agentwire::gateway
