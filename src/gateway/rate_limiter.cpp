#include "gateway/rate_limiter.hpp"

#include <algorithm>

namespace agentwire::gateway {

bool TokenBucket::take(Clock::time_point now) {
  tokens_ = std::min(rate_, tokens_ + rate_ * std::chrono::duration<double>(now - at_).count());
  at_ = now;
  if (tokens_ < 1.0) return false;
  tokens_ -= 1.0;
  return true;
}

bool UserRateLimiter::allow(const std::string& user_id, TokenBucket::Clock::time_point now) {
  std::lock_guard lock(mutex_);
  if (now >= next_sweep_) {
    // A bucket unused for a second or more is full again: the same as a new one.
    std::erase_if(buckets_, [&](const auto& kv) { return now - kv.second.lastUse() > std::chrono::seconds(1); });
    next_sweep_ = now + std::chrono::seconds(1);
  }
  auto it = buckets_.try_emplace(user_id, rate_, now).first;
  return it->second.take(now);
}

std::size_t UserRateLimiter::trackedUsers() const {
  std::lock_guard lock(mutex_);
  return buckets_.size();
}

}  // namespace agentwire::gateway
