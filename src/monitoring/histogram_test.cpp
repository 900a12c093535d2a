#include "monitoring/histogram.hpp"

#include <gtest/gtest.h>

namespace agentwire::monitoring {
namespace {

TEST(HistogramTest, BucketsAreCumulativeAndCountIncludesOverflow) {
  Histogram h({0.1, 1, 10});
  for (double v : {0.05, 0.1, 0.5, 5.0, 50.0}) h.observe(v);
  auto s = h.snapshot();
  EXPECT_EQ(s.cumulative, (std::vector<uint64_t>{2, 3, 4}));
  EXPECT_EQ(s.count, 5u);
  EXPECT_DOUBLE_EQ(s.sum, 55.65);
}

}  // namespace
}  // namespace agentwire::monitoring
