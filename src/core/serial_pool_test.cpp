#include "core/serial_pool.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <mutex>
#include <vector>

namespace agentwire::core {
namespace {

TEST(SerialPoolTest, ALanesTasksRunOneAtATimeInTheOrderPosted) {
  SerialPool pool(4, "aw-test");
  pool.start();
  auto lane = SerialPool::lane();
  std::mutex m;
  std::vector<int> seen;
  std::atomic<int> running{0};
  std::atomic<bool> overlapped{false};
  for (int i = 0; i < 1000; ++i) {
    ASSERT_TRUE(pool.post(lane, [&, i] {
      if (running.fetch_add(1) != 0) overlapped = true;
      {
        std::lock_guard lock(m);
        seen.push_back(i);
      }
      running.fetch_sub(1);
    }));
  }
  pool.stop();  // runs everything posted first
  ASSERT_EQ(seen.size(), 1000u);
  for (int i = 0; i < 1000; ++i) EXPECT_EQ(seen[i], i);
  EXPECT_FALSE(overlapped);
}

TEST(SerialPoolTest, ABlockedLaneDoesNotHoldUpTheOthers) {
  SerialPool pool(2, "aw-test");
  pool.start();
  std::promise<void> release;
  auto released = release.get_future().share();
  auto slow = SerialPool::lane();
  auto fast = SerialPool::lane();
  ASSERT_TRUE(pool.post(slow, [released] { released.wait(); }));
  std::promise<void> ran;
  ASSERT_TRUE(pool.post(fast, [&] { ran.set_value(); }));
  // The other lane runs while the first is blocked (a hung store call for one connection).
  EXPECT_EQ(ran.get_future().wait_for(std::chrono::seconds(30)), std::future_status::ready);
  release.set_value();
  pool.stop();
}

TEST(SerialPoolTest, NothingIsAcceptedOnceStopped) {
  SerialPool pool(1, "aw-test");
  auto lane = SerialPool::lane();
  EXPECT_FALSE(pool.post(lane, [] {})) << "not started";
  pool.start();
  bool ran = false;
  EXPECT_TRUE(pool.post(lane, [&] { ran = true; }));
  pool.stop();
  EXPECT_TRUE(ran);
  EXPECT_FALSE(pool.post(lane, [] {}));
}

}  // namespace
}  // namespace agentwire::core
