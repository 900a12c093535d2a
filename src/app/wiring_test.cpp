#include "app/wiring.hpp"

#include "analytics/analytics_component.hpp"
#include "health/probes.hpp"

#include "app/components.hpp"
#include "core/logging.hpp"
#include "gateway/chat_handlers.hpp"
#include "gateway/message_router.hpp"
#include "store/sqlite/sqlite_store.hpp"
#include "testing/log_capture.hpp"
#include "testing/temp_dir.hpp"

#include <gtest/gtest.h>

#include <sstream>

namespace agentwire::app {
namespace {

core::Config testConfig(const testing::TempDir& dir) {
  core::Config c;
  c.store.path = dir.file("agentwire.db");
  return c;
}

std::size_t eventIndex(const std::vector<lifecycle::StartupTrace::Event>& events, const std::string& prefix) {
  for (std::size_t i = 0; i < events.size(); ++i) {
    if (events[i].what.rfind(prefix, 0) == 0) return i;
  }
  return events.size();
}

// The seed's "handler registration order" test.
TEST(HandlerRegistrationOrderTest, HandlersAreRegisteredBeforeAnythingCountsThem) {
  testing::TempDir dir;
  testing::LogCapture logs;
  auto cfg = testConfig(dir);
  lifecycle::StartupTrace trace;
  lifecycle::Registry registry(trace);
  buildDefaultGraph(registry, cfg);
  ASSERT_TRUE(registry.startAll().ok) << logs.text();

  auto events = trace.events();
  auto registered = eventIndex(events, "handlers_registered");
  auto counted = eventIndex(events, "handlers_counted");
  ASSERT_LT(registered, events.size()) << "no handler registration was recorded";
  ASSERT_LT(counted, events.size()) << "the self-check never counted handlers";
  EXPECT_LT(registered, counted) << "handlers were counted before they were registered";
  EXPECT_EQ(events[registered].what, "handlers_registered count=15");
  EXPECT_EQ(events[counted].what, "handlers_counted count=15");
  EXPECT_EQ(logs.text().find("zero handlers"), std::string::npos) << logs.text();
  registry.stopAll();
}

TEST(DefaultGraphTest, StartsInTheExpectedWorkingOrder) {
  testing::TempDir dir;
  auto cfg = testConfig(dir);
  lifecycle::StartupTrace trace;
  lifecycle::Registry registry(trace);
  buildDefaultGraph(registry, cfg);
  const std::vector<std::string> expected = {"config",    "store",        "delivery",   "message_handlers",
                                             "analytics", "agent_bridge", "self_check", "ws_gateway"};
  auto with_monitor = expected;
  with_monitor.push_back("alert_monitor");  // depends on config only; listed last by registration order
  EXPECT_EQ(registry.startOrder(), with_monitor);
  ASSERT_TRUE(registry.startAll().ok);
  // Each step finished before the next began.
  auto spans = trace.spans();
  auto span = [&](const std::string& n) {
    return *std::find_if(spans.begin(), spans.end(), [&](auto& s) { return s.component == n; });
  };
  for (std::size_t i = 1; i < expected.size(); ++i) {
    EXPECT_LE(span(expected[i - 1]).end_ms, span(expected[i]).start_ms) << expected[i - 1] << " / " << expected[i];
  }
  for (const auto& c : registry.components()) {
    EXPECT_EQ(c->health().state, lifecycle::HealthState::Healthy) << c->name() << ": " << c->health().reason;
  }
  registry.stopAll();
}

TEST(DefaultGraphTest, SelfCheckThreadsAreNeverListed) {
  testing::TempDir dir;
  auto cfg = testConfig(dir);
  cfg.node.id = "node-x";
  lifecycle::StartupTrace trace;
  lifecycle::Registry registry(trace);
  auto c = buildDefaultGraph(registry, cfg);
  ASSERT_TRUE(registry.startAll().ok);
  // Each node checks itself as its own system user: nodes sharing a database never mix their checks.
  const std::string user = core::systemUserFor("node-x");
  EXPECT_TRUE(c.store.listThreads(user, 10, {})->empty());
  EXPECT_GT(c.store.streamInfo(user)->last_seq, 0) << "the self-check delivered nothing";
  registry.stopAll();
}

TEST(DefaultGraphTest, RouterWithZeroHandlersNeverBecomesHealthy) {
  lifecycle::StartupTrace trace;
  lifecycle::Registry registry(trace);
  auto& router = registry.add(std::make_unique<gateway::MessageRouter>(trace, nullptr, std::vector<std::string>{}));
  auto r = registry.startAll();
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.failed_component, "message_handlers");
  EXPECT_NE(router.health().state, lifecycle::HealthState::Healthy);
}

TEST(DefaultGraphTest, UnreachableAnalyticsDegradesWithoutFailingStartup) {
  testing::TempDir dir;
  auto cfg = testConfig(dir);
  cfg.analytics.enabled = true;
  cfg.analytics.url = "http://127.0.0.1:1";  // nothing listens on port 1
  lifecycle::StartupTrace trace;
  lifecycle::Registry registry(trace);
  buildDefaultGraph(registry, cfg);
  ASSERT_TRUE(registry.startAll().ok);
  auto h = registry.find("analytics")->health();
  EXPECT_EQ(h.state, lifecycle::HealthState::Degraded);
  EXPECT_NE(h.reason.find("unreachable"), std::string::npos) << h.reason;
  registry.stopAll();
}

// Required analytics does not abort startup: the server runs, not ready, naming the reason,
// and turns ready by itself when ClickHouse answers (tests/test_analytics.py shows the recovery).
TEST(DefaultGraphTest, RequiredAnalyticsUnreachableKeepsTheServerNotReady) {
  testing::TempDir dir;
  auto cfg = testConfig(dir);
  cfg.analytics.enabled = true;
  cfg.analytics.required = true;
  cfg.analytics.url = "http://127.0.0.1:1";
  lifecycle::StartupTrace trace;
  lifecycle::Registry registry(trace);
  auto c = buildDefaultGraph(registry, cfg);
  auto r = registry.startAll();
  EXPECT_TRUE(r.ok);
  auto h = c.analytics.health();
  EXPECT_EQ(h.state, lifecycle::HealthState::Unhealthy);
  EXPECT_NE(h.reason.find("unreachable"), std::string::npos) << h.reason;
  EXPECT_FALSE(health::Probes(registry).isReady());
  registry.stopAll();
}

}  // namespace
}  // namespace agentwire::app
