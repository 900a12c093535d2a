#include "monitoring/alert_monitor.hpp"

#include "testing/log_capture.hpp"

#include <gtest/gtest.h>

namespace agentwire::monitoring {
namespace {

using namespace std::chrono_literals;

TEST(AlertMonitorTest, ZeroHandlersForFiveSecondsFiresWarning) {
  testing::LogCapture logs;
  double handlers = 0;
  double uptime = 0;
  AlertMonitor m({noHandlersRule([&] { return handlers; }, [&] { return uptime; })}, 1s, {});
  auto t0 = Clock::now();
  uptime = 4;
  m.evaluate(t0);
  EXPECT_TRUE(m.active().empty()) << "not before 5 s";
  uptime = 6;
  m.evaluate(t0 + 2s);
  ASSERT_EQ(m.active().size(), 1u);
  EXPECT_EQ(m.active()[0].severity, Severity::Warning);
  EXPECT_EQ(logs.count("alert AgentwireNoMessageHandlers firing (warning)"), 1u);
  EXPECT_NE(logs.text().find("[warning]"), std::string::npos);
  handlers = 8;
  m.evaluate(t0 + 3s);
  EXPECT_TRUE(m.active().empty());
  EXPECT_EQ(logs.count("alert AgentwireNoMessageHandlers resolved"), 1u);
}

TEST(AlertMonitorTest, HandlersRegisteredInTimeNeverFire) {
  double handlers = 8;
  AlertMonitor m({noHandlersRule([&] { return handlers; }, [] { return 60.0; })}, 1s, {});
  m.evaluate(Clock::now());
  EXPECT_TRUE(m.active().empty());
}

TEST(AlertMonitorTest, DeliveryFailureFiresCriticalAndResolvesAfterTheWindow) {
  testing::LogCapture logs;
  double failures = 0;
  AlertMonitor m({deliveryFailureRule([&] { return failures; })}, 1s, {});
  auto t0 = Clock::now();
  m.evaluate(t0);
  EXPECT_TRUE(m.active().empty());
  failures = 1;
  m.evaluate(t0 + 1s);
  ASSERT_EQ(m.active().size(), 1u);
  EXPECT_EQ(m.active()[0].severity, Severity::Critical);
  EXPECT_EQ(logs.count("alert AgentwireDeliveryFailures firing (critical)"), 1u);
  EXPECT_NE(logs.text().find("[critical]"), std::string::npos);
  for (int s = 2; s < 300; s += 10) m.evaluate(t0 + std::chrono::seconds(s));
  EXPECT_EQ(m.active().size(), 1u) << "still within the 5-minute window";
  m.evaluate(t0 + 302s);
  EXPECT_TRUE(m.active().empty());
  EXPECT_EQ(m.firings().at("AgentwireDeliveryFailures"), 1u);
}

TEST(AlertMonitorTest, BusDownFiresOnlyAfterItsDurationAndNamesTheReason) {
  testing::LogCapture logs;
  bool live = false;
  AlertMonitor m({busDownRule([&] { return live; }, [] { return "Redis: no answer to PING within 2 s"; }, 10s)}, 1s,
                 {});
  auto t0 = Clock::now();
  m.evaluate(t0);
  m.evaluate(t0 + 5s);
  EXPECT_EQ(logs.count("alert AgentwireBusDown firing"), 0u) << "a blip is not an alert";
  m.evaluate(t0 + 11s);
  EXPECT_EQ(logs.count("alert AgentwireBusDown firing"), 1u);
  EXPECT_NE(logs.text().find("no answer to PING"), std::string::npos);
  live = true;
  m.evaluate(t0 + 12s);
  EXPECT_EQ(logs.count("alert AgentwireBusDown resolved"), 1u);
}

TEST(AlertMonitorTest, ClickHouseDownLogsInfoOnceNotOncePerRetry) {
  testing::LogCapture logs;
  bool up = false;
  AlertMonitor m({clickHouseDownRule([] { return true; }, [&] { return up; }, [] { return "unreachable"; })}, 1s, {});
  auto t0 = Clock::now();
  for (int i = 0; i < 30; ++i) m.evaluate(t0 + std::chrono::seconds(i));  // 30 retries' worth
  EXPECT_EQ(logs.count("alert AgentwireClickHouseDown firing (info)"), 1u);
  EXPECT_NE(logs.text().find("[info]"), std::string::npos);
  up = true;
  m.evaluate(t0 + 31s);
  EXPECT_EQ(logs.count("alert AgentwireClickHouseDown resolved"), 1u);
}

TEST(AlertMonitorTest, ClickHouseDisabledNeverFires) {
  AlertMonitor m({clickHouseDownRule([] { return false; }, [] { return false; }, [] { return ""; })}, 1s, {});
  m.evaluate(Clock::now());
  EXPECT_TRUE(m.active().empty());
}

TEST(AlertMonitorTest, NotReadyFiresOnlyAfterItsDuration) {
  bool ready = false;
  AlertMonitor m({notReadyRule([&] { return ready; }, 30s)}, 1s, {});
  auto t0 = Clock::now();
  m.evaluate(t0);
  m.evaluate(t0 + 29s);
  EXPECT_TRUE(m.active().empty());
  m.evaluate(t0 + 31s);
  EXPECT_EQ(m.active().size(), 1u);
  ready = true;
  m.evaluate(t0 + 32s);
  EXPECT_TRUE(m.active().empty());
}

TEST(AlertMonitorTest, RunErrorRatioNeedsVolumeAndRatio) {
  double runs = 0, failed = 0;
  AlertMonitor m({runErrorRatioRule([&] { return runs; }, [&] { return failed; })}, 1s, {});
  auto t0 = Clock::now();
  m.evaluate(t0);
  runs = 5, failed = 5;  // 100% but too few runs
  m.evaluate(t0 + 1s);
  EXPECT_TRUE(m.active().empty());
  runs = 100, failed = 8;  // 8%
  m.evaluate(t0 + 2s);
  EXPECT_TRUE(m.active().empty());
  runs = 100, failed = 20;  // 20%
  m.evaluate(t0 + 3s);
  EXPECT_EQ(m.active().size(), 1u);
}

TEST(AlertMonitorTest, SlowConsumersAndAnalyticsDrops) {
  double cut = 0, dropped = 0;
  AlertMonitor m({slowConsumerRule([&] { return cut; }), analyticsDroppingRule([&] { return dropped; })}, 1s, {});
  auto t0 = Clock::now();
  m.evaluate(t0);
  cut = 4;
  m.evaluate(t0 + 1s);
  EXPECT_TRUE(m.active().empty()) << "a few cut-offs are normal";
  cut = 10;
  dropped = 1;
  m.evaluate(t0 + 2s);
  EXPECT_EQ(m.active().size(), 2u);
}

}  // namespace
}  // namespace agentwire::monitoring
