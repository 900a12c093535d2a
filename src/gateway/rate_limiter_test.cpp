#include "gateway/rate_limiter.hpp"

#include <gtest/gtest.h>

namespace agentwire::gateway {
namespace {

using Clock = TokenBucket::Clock;

TEST(RateLimiterTest, BurstOfTheRateThenOnePerIntervalPerUser) {
  UserRateLimiter limiter(5);
  auto t0 = Clock::now();
  int allowed = 0;
  for (int i = 0; i < 12; ++i) allowed += limiter.allow("ann", t0) ? 1 : 0;
  EXPECT_EQ(allowed, 5);
  EXPECT_TRUE(limiter.allow("bob", t0)) << "users do not share a bucket";
  EXPECT_FALSE(limiter.allow("ann", t0 + std::chrono::milliseconds(100)));
  EXPECT_TRUE(limiter.allow("ann", t0 + std::chrono::milliseconds(200))) << "one token per 1/rate";
}

TEST(RateLimiterTest, IdleUsersAreForgotten) {
  UserRateLimiter limiter(5);
  auto t0 = Clock::now();
  for (int i = 0; i < 1000; ++i) limiter.allow("u" + std::to_string(i), t0);
  EXPECT_EQ(limiter.trackedUsers(), 1000u);
  limiter.allow("late", t0 + std::chrono::seconds(3));
  EXPECT_EQ(limiter.trackedUsers(), 1u);
}

}  // namespace
}  // namespace agentwire::gateway
