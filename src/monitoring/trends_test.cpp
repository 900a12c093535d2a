#include "monitoring/trends.hpp"

#include <gtest/gtest.h>

namespace agentwire::monitoring {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

TEST(QuantileOfIncrease, InterpolatesInsideTheBucketOfWhatWasGainedOnly) {
  Histogram h({0.001, 0.01, 0.1});
  for (int i = 0; i < 1000; ++i) h.observe(0.05);  // before: all slow
  auto before = h.snapshot();
  for (int i = 0; i < 99; ++i) h.observe(0.0005);
  h.observe(0.005);
  auto after = h.snapshot();
  // 100 new observations: the 99th is the last of the fast ones, in the first bucket (0..1 ms).
  auto p99 = quantileOfIncrease(before, after, 0.99);
  ASSERT_TRUE(p99);
  EXPECT_NEAR(*p99, 0.001, 1e-9);
  EXPECT_NEAR(*quantileOfIncrease(before, after, 0.995), 0.0055, 1e-9) << "half way into 1..10 ms";
  EXPECT_FALSE(quantileOfIncrease(after, after, 0.99)) << "nothing gained";
}

TEST(QuantileOfIncrease, PastTheLastBoundAnswersTheLastBound) {
  Histogram h({0.001, 0.01});
  auto before = h.snapshot();
  h.observe(5);
  EXPECT_DOUBLE_EQ(*quantileOfIncrease(before, h.snapshot(), 0.99), 0.01);
}

TEST(Trends, OnePointPerStepWithTheRateOverTheStepAndABoundedHistory) {
  double events = 0;
  Histogram latency(Histogram::latencyBounds());
  int64_t connections = 3;
  Trends trends({[&] { return events; }, [&] { return latency.snapshot(); }, [&] { return connections; },
                 [] { return int64_t{1}; }},
                seconds(5), 2);
  auto t0 = std::chrono::steady_clock::time_point{} + seconds(100);
  trends.sample(t0, 1000);  // the baseline
  EXPECT_TRUE(trends.points().empty());
  events = 50;
  trends.sample(t0 + seconds(1), 2000);  // within the step: nothing
  EXPECT_TRUE(trends.points().empty());
  latency.observe(0.002);
  trends.sample(t0 + seconds(5), 6000);
  ASSERT_EQ(trends.points().size(), 1u);
  auto p = trends.points().back();
  EXPECT_EQ(p.t_ms, 6000);
  EXPECT_DOUBLE_EQ(p.events_per_s, 10.0);
  ASSERT_TRUE(p.p99_ms);
  EXPECT_GT(*p.p99_ms, 1.0);
  EXPECT_LE(*p.p99_ms, 2.5);
  EXPECT_EQ((std::pair{p.connections, p.active_runs}), (std::pair<int64_t, int64_t>{3, 1}));
  trends.sample(t0 + milliseconds(9600), 10600);  // a beat slightly early still makes the next point
  ASSERT_EQ(trends.points().size(), 2u);
  EXPECT_DOUBLE_EQ(trends.points().back().events_per_s, 0.0);
  EXPECT_FALSE(trends.points().back().p99_ms) << "nothing delivered in that step";
  trends.sample(t0 + seconds(15), 15000);
  ASSERT_EQ(trends.points().size(), 2u) << "keeps the last two";
  EXPECT_EQ(trends.points().front().t_ms, 10600);
  auto j = trends.json();
  EXPECT_TRUE(j.back().as_object().at("p99_ms").is_null());
}

}  // namespace
}  // namespace agentwire::monitoring
