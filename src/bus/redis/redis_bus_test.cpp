#include "bus/redis/redis_bus.hpp"

#include "testing/postgres.hpp"
#include "testing/redis.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <mutex>

namespace agentwire::bus {
namespace {

// Heads a listener heard, with a wait on a condition.
struct Heard {
  std::mutex mutex;
  std::condition_variable cv;
  std::vector<std::pair<std::string, int64_t>> got;

  void add(const std::string& user, int64_t head) {
    std::lock_guard lock(mutex);
    got.emplace_back(user, head);
    cv.notify_all();
  }
  bool waitFor(const std::pair<std::string, int64_t>& want) {
    std::unique_lock lock(mutex);
    return cv.wait_for(lock, std::chrono::seconds(10),
                       [&] { return std::find(got.begin(), got.end(), want) != got.end(); });
  }
};

class RedisBusTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto url = testing::redisUrl();
    if (!url) {
      if (testing::requireServices())
        FAIL() << "AW_TEST_REDIS_URL is not set: scripts/test-services did not start Redis";
      GTEST_SKIP() << "no Redis (run through scripts/run-tests)";
    }
    options_ = RedisBus::parseUrl(*url);
  }
  static void waitLive(const RedisBus& b) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!b.live() && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));  // polls the condition
    }
  }
  RedisBus::Options options_;
};

TEST(RedisBusUrlTest, ParsesHostAndPortAndRefusesTheRest) {
  auto o = RedisBus::parseUrl("redis://10.0.0.5:6380");
  EXPECT_EQ(o.host, "10.0.0.5");
  EXPECT_EQ(o.port, 6380);
  EXPECT_EQ(RedisBus::parseUrl("redis://cache/0").port, 6379);
  EXPECT_THROW(RedisBus::parseUrl("http://x:1"), std::invalid_argument);
  EXPECT_THROW(RedisBus::parseUrl("redis://:1"), std::invalid_argument);
  EXPECT_THROW(RedisBus::parseUrl("redis://x:99999"), std::invalid_argument);
}

TEST_F(RedisBusTest, ANodeHearsTheHeadsOfTheUsersItSubscribedTo) {
  RedisBus a(options_, {});
  RedisBus b(options_, {});
  Heard heard;
  b.setListener([&](const std::string& u, int64_t h) { heard.add(u, h); });
  a.start();
  b.start();
  waitLive(a);
  waitLive(b);
  ASSERT_TRUE(b.live());
  b.subscribe("ann");
  // Once Redis confirms the subscription, the listener is told to read the head from the store
  // (commits before it were published to nobody here); from then on, notices arrive.
  ASSERT_TRUE(heard.waitFor({"ann", kUnknownHead}));
  a.publish({{"ann", 5}, {"bob", 7}});
  a.publish({{"ann", 6}});
  EXPECT_TRUE(heard.waitFor({"ann", 6}));
  EXPECT_GT(b.stats().received.load(), 0u);
  {
    std::lock_guard lock(heard.mutex);
    for (const auto& [u, h] : heard.got) EXPECT_EQ(u, "ann") << "b never subscribed to bob";
  }
  // Two interests in one user: the channel stays until the last is given up.
  b.subscribe("ann");
  b.unsubscribe("ann");
  a.publish({{"ann", 1000}});
  EXPECT_TRUE(heard.waitFor({"ann", 1000}));
  a.stop();
  b.stop();
}

TEST_F(RedisBusTest, AnUnreachableRedisIsDegradedAndPublishNeverBlocks) {
  RedisBus::Options gone;
  gone.host = "127.0.0.1";
  gone.port = 1;
  RedisBus bus(gone, {});
  bus.start();
  EXPECT_FALSE(bus.live());
  EXPECT_EQ(bus.health().state, lifecycle::HealthState::Degraded);
  auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < 1000; ++i) bus.publish({{"u", i}});
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(1)) << "publish only records";
  bus.stop();
}

}  // namespace
}  // namespace agentwire::bus
