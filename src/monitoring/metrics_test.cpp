#include "monitoring/metrics.hpp"

#include <gtest/gtest.h>

namespace agentwire::monitoring {
namespace {

TEST(MetricsTest, ScrapeIsPrometheusTextWithHelpTypeAndLabels) {
  MetricsEndpoint m;
  int appended = 0;
  m.addSource([&](std::vector<Family>& out) {
    out.emplace_back("agentwire_events_appended_total", "Events appended.", Family::Type::Counter);
    out.back().add(appended);
    out.emplace_back("agentwire_component_healthy", "1 when healthy.", Family::Type::Gauge);
    out.back().add(1, {{"component", "store"}}).add(0, {{"component", "analytics"}});
  });
  appended = 7;  // read at scrape time, not at registration
  auto text = m.scrape();
  EXPECT_NE(text.find("# HELP agentwire_events_appended_total Events appended."), std::string::npos) << text;
  EXPECT_NE(text.find("# TYPE agentwire_events_appended_total counter"), std::string::npos) << text;
  EXPECT_NE(text.find("agentwire_events_appended_total 7"), std::string::npos) << text;
  EXPECT_NE(text.find("agentwire_component_healthy{component=\"analytics\"} 0"), std::string::npos) << text;
}

TEST(MetricsTest, ProcessMetricsArePresentAndPlausible) {
  MetricsEndpoint m;
  addProcessMetrics(m);
  auto text = m.scrape();
  for (const char* name : {"process_cpu_seconds_total", "process_resident_memory_bytes", "process_open_fds",
                           "process_max_fds", "process_start_time_seconds", "process_threads"}) {
    EXPECT_NE(text.find(std::string("# TYPE ") + name), std::string::npos) << name << "\n" << text;
  }
  EXPECT_EQ(text.find("process_resident_memory_bytes 0\n"), std::string::npos) << "RSS cannot be zero";
}

}  // namespace
}  // namespace agentwire::monitoring
