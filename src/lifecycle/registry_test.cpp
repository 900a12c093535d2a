#include "lifecycle/registry.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <mutex>
#include <stdexcept>
#include <thread>

namespace agentwire::lifecycle {
namespace {

// Records start/stop calls in one shared journal so tests can check the order.
struct Journal {
  std::mutex m;
  std::vector<std::string> lines;
  void add(std::string s) {
    std::lock_guard l(m);
    lines.push_back(std::move(s));
  }
  std::ptrdiff_t pos(const std::string& s) {
    std::lock_guard l(m);
    auto it = std::find(lines.begin(), lines.end(), s);
    return it == lines.end() ? -1 : it - lines.begin();
  }
};

class TestComponent : public Component {
 public:
  TestComponent(Journal& j, std::string name, std::vector<std::string> deps, Criticality crit = Criticality::Critical,
                bool fail = false, std::chrono::milliseconds delay = std::chrono::milliseconds(0))
      : Component(std::move(name), std::move(deps), crit), j_(j), fail_(fail), delay_(delay) {}
  void start() override {
    std::this_thread::sleep_for(delay_);
    j_.add("start:" + name());
    if (fail_) throw std::runtime_error("disk on fire");
  }
  void stop() override { j_.add("stop:" + name()); }

 private:
  Journal& j_;
  bool fail_;
  std::chrono::milliseconds delay_;
};

std::unique_ptr<TestComponent> comp(Journal& j, std::string name, std::vector<std::string> deps = {},
                                    Criticality crit = Criticality::Critical, bool fail = false) {
  return std::make_unique<TestComponent>(j, std::move(name), std::move(deps), crit, fail);
}

TEST(RegistryTest, StartsInDependencyOrderAndStopsInReverse) {
  Journal j;
  StartupTrace trace;
  Registry r(trace);
  // Registered out of order on purpose.
  r.add(comp(j, "bridge", {"handlers", "store"}));
  r.add(comp(j, "handlers", {"store"}));
  r.add(comp(j, "store", {"config"}));
  r.add(comp(j, "config"));
  EXPECT_EQ(r.startOrder(), (std::vector<std::string>{"config", "store", "handlers", "bridge"}));
  ASSERT_TRUE(r.startAll().ok);
  EXPECT_EQ(r.phase(), Phase::Running);
  EXPECT_LT(j.pos("start:config"), j.pos("start:store"));
  EXPECT_LT(j.pos("start:store"), j.pos("start:handlers"));
  EXPECT_LT(j.pos("start:handlers"), j.pos("start:bridge"));
  for (const auto& c : r.components()) EXPECT_EQ(c->health().state, HealthState::Healthy) << c->name();
  r.stopAll();
  EXPECT_LT(j.pos("stop:bridge"), j.pos("stop:handlers"));
  EXPECT_LT(j.pos("stop:handlers"), j.pos("stop:store"));
  EXPECT_LT(j.pos("stop:store"), j.pos("stop:config"));
  for (const auto& c : r.components()) EXPECT_EQ(c->health().state, HealthState::Stopped) << c->name();
}

TEST(RegistryTest, IndependentComponentsStartConcurrently) {
  Journal j;
  StartupTrace trace;
  Registry r(trace);
  // Two components that each wait for the other to have begun: only a concurrent start finishes.
  std::atomic<int> begun{0};
  struct Rendezvous : Component {
    std::atomic<int>& begun;
    Rendezvous(std::string n, std::atomic<int>& b) : Component(std::move(n), {}), begun(b) {}
    void start() override {
      ++begun;
      auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
      while (begun.load() < 2) {
        if (std::chrono::steady_clock::now() > deadline) throw std::runtime_error("peer never started");
        std::this_thread::yield();
      }
    }
    void stop() override {}
  };
  r.add(std::make_unique<Rendezvous>("a", begun));
  r.add(std::make_unique<Rendezvous>("b", begun));
  EXPECT_TRUE(r.startAll().ok);
}

TEST(RegistryTest, RefusesCycleNamingIt) {
  Journal j;
  StartupTrace trace;
  Registry r(trace);
  r.add(comp(j, "a", {"b"}));
  r.add(comp(j, "b", {"c"}));
  r.add(comp(j, "c", {"a"}));
  r.add(comp(j, "d"));
  try {
    r.startAll();
    FAIL() << "cycle accepted";
  } catch (const GraphError& e) {
    EXPECT_STREQ(e.what(), "dependency cycle: a -> b -> c -> a");
  }
  EXPECT_TRUE(j.lines.empty()) << "nothing may start when the graph is invalid";
}

TEST(RegistryTest, RefusesMissingDependency) {
  Journal j;
  StartupTrace trace;
  Registry r(trace);
  r.add(comp(j, "store"));
  r.add(comp(j, "bridge", {"delivery"}));
  try {
    r.startAll();
    FAIL() << "missing dependency accepted";
  } catch (const GraphError& e) {
    EXPECT_NE(std::string(e.what()).find("'bridge' depends on 'delivery'"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(j.lines.empty());
}

TEST(RegistryTest, RefusesDuplicateName) {
  Journal j;
  StartupTrace trace;
  Registry r(trace);
  r.add(comp(j, "store"));
  EXPECT_THROW(r.add(comp(j, "store")), GraphError);
}

TEST(RegistryTest, CriticalFailureAbortsAndStopsWhatStarted) {
  Journal j;
  StartupTrace trace;
  Registry r(trace);
  r.add(comp(j, "config"));
  r.add(comp(j, "store", {"config"}, Criticality::Critical, /*fail=*/true));
  r.add(comp(j, "handlers", {"store"}));
  auto res = r.startAll();
  EXPECT_FALSE(res.ok);
  EXPECT_EQ(res.failed_component, "store");
  EXPECT_EQ(res.error, "disk on fire");
  EXPECT_EQ(r.phase(), Phase::Failed);
  EXPECT_EQ(j.pos("start:handlers"), -1) << "a dependent of a failed component must not start";
  EXPECT_GE(j.pos("stop:config"), 0);
  EXPECT_GE(j.pos("stop:store"), 0) << "a half-started component is stopped too";
  EXPECT_LT(j.pos("stop:store"), j.pos("stop:config"));
  auto spans = trace.spans();
  auto handlers = std::find_if(spans.begin(), spans.end(), [](auto& s) { return s.component == "handlers"; });
  EXPECT_EQ(handlers->outcome, "not_started");
}

TEST(RegistryTest, OptionalFailureDegradesAndStartupContinues) {
  Journal j;
  StartupTrace trace;
  Registry r(trace);
  r.add(comp(j, "store"));
  r.add(comp(j, "analytics", {"store"}, Criticality::Optional, /*fail=*/true));
  r.add(comp(j, "bridge", {"analytics"}));
  ASSERT_TRUE(r.startAll().ok);
  auto h = r.find("analytics")->health();
  EXPECT_EQ(h.state, HealthState::Degraded);
  EXPECT_EQ(h.reason, "start failed: disk on fire");
  EXPECT_EQ(r.find("bridge")->health().state, HealthState::Healthy);
  EXPECT_GE(j.pos("start:bridge"), 0);
}

TEST(RegistryTest, OptionalMadeRequiredAbortsStartup) {
  Journal j;
  StartupTrace trace;
  Registry r(trace);
  auto& a = r.add(comp(j, "analytics", {}, Criticality::Optional, /*fail=*/true));
  a.setCriticality(Criticality::Critical);
  EXPECT_FALSE(r.startAll().ok);
}

TEST(RegistryTest, NoComponentUninitializedAfterSuccessfulStart) {
  Journal j;
  StartupTrace trace;
  Registry r(trace);
  r.add(comp(j, "a"));
  r.add(comp(j, "b", {"a"}, Criticality::Optional, true));
  r.add(comp(j, "c", {"b"}));
  ASSERT_TRUE(r.startAll().ok);
  for (const auto& c : r.components()) EXPECT_NE(c->health().state, HealthState::Uninitialized) << c->name();
}

TEST(RegistryTest, TraceRecordsEveryComponentWithTimesAndDependencies) {
  Journal j;
  StartupTrace trace;
  Registry r(trace);
  r.add(comp(j, "store"));
  r.add(std::make_unique<TestComponent>(j, "handlers", std::vector<std::string>{"store"}, Criticality::Critical, false,
                                        std::chrono::milliseconds(5)));
  ASSERT_TRUE(r.startAll().ok);
  auto spans = trace.spans();
  ASSERT_EQ(spans.size(), 2u);
  EXPECT_EQ(spans[1].component, "handlers");
  EXPECT_EQ(spans[1].dependencies, std::vector<std::string>{"store"});
  EXPECT_EQ(spans[1].outcome, "ok");
  EXPECT_GE(spans[1].end_ms - spans[1].start_ms, 4.5);
  EXPECT_GE(spans[1].start_ms, spans[0].end_ms);
  auto json = trace.toJson().as_object();
  EXPECT_TRUE(json.at("ok").as_bool());
  EXPECT_EQ(json.at("components").as_array().size(), 2u);
  EXPECT_NE(trace.toTable().find("handlers"), std::string::npos);
}

TEST(RegistryTest, ConcurrentHealthReadsDuringStartAreSafe) {
  Journal j;
  StartupTrace trace;
  Registry r(trace);
  for (int i = 0; i < 8; ++i) {
    std::vector<std::string> deps;
    if (i > 0) deps.push_back("c" + std::to_string(i - 1));
    r.add(std::make_unique<TestComponent>(j, "c" + std::to_string(i), deps, Criticality::Critical, false,
                                          std::chrono::milliseconds(1)));
  }
  std::atomic<bool> done{false};
  std::atomic<long> reads{0};
  std::vector<std::thread> readers;
  for (int t = 0; t < 4; ++t) {
    readers.emplace_back([&] {
      while (!done.load()) {
        for (const auto& c : r.components()) {
          auto h = c->health();
          EXPECT_FALSE(toString(h.state).empty());
          ++reads;
        }
        (void)trace.toJson();
      }
    });
  }
  EXPECT_TRUE(r.startAll().ok);
  r.stopAll();
  done = true;
  for (auto& t : readers) t.join();
  EXPECT_GT(reads.load(), 0);
}

}  // namespace
}  // namespace agentwire::lifecycle
