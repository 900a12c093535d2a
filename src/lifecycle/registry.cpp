#include "lifecycle/registry.hpp"

#include "core/logging.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <condition_variable>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>

namespace agentwire::lifecycle {

std::string_view toString(Phase p) {
  switch (p) {
    case Phase::Idle: return "idle";
    case Phase::Starting: return "starting";
    case Phase::Running: return "running";
    case Phase::Failed: return "failed";
    case Phase::Stopping: return "stopping";
    case Phase::Stopped: return "stopped";
  }
  return "unknown";
}

Registry::Registry(StartupTrace& trace) : trace_(trace), log_(core::logger("lifecycle")) {}

Registry::~Registry() {
  stopAll();
}

void Registry::addComponent(ComponentPtr c) {
  if (phase_.load() != Phase::Idle) throw GraphError("components can only be added before startup");
  if (find(c->name()) != nullptr) throw GraphError(fmt::format("duplicate component name '{}'", c->name()));
  trace_.declare(c->name(), c->dependencies(), c->critical());
  components_.push_back(std::move(c));
}

Component* Registry::find(const std::string& name) const {
  for (const auto& c : components_) {
    if (c->name() == name) return c.get();
  }
  return nullptr;
}

std::size_t Registry::indexOf(const std::string& name) const {
  for (std::size_t i = 0; i < components_.size(); ++i) {
    if (components_[i]->name() == name) return i;
  }
  return components_.size();
}

void Registry::validate() const {
  std::vector<std::string> missing;
  for (const auto& c : components_) {
    for (const auto& d : c->dependencies()) {
      if (find(d) == nullptr)
        missing.push_back(fmt::format("'{}' depends on '{}', which is not registered", c->name(), d));
    }
  }
  if (!missing.empty()) {
    std::string msg = "missing dependency: ";
    for (std::size_t i = 0; i < missing.size(); ++i) msg += (i ? "; " : "") + missing[i];
    throw GraphError(msg);
  }
  // Depth-first search with colours; the grey path at the back edge is the cycle.
  enum Colour { White, Grey, Black };
  std::vector<Colour> colour(components_.size(), White);
  std::vector<std::size_t> path;
  std::function<void(std::size_t)> visit = [&](std::size_t i) {
    colour[i] = Grey;
    path.push_back(i);
    for (const auto& d : components_[i]->dependencies()) {
      std::size_t j = indexOf(d);
      if (colour[j] == Grey) {
        std::string cycle;
        auto from = std::find(path.begin(), path.end(), j);
        for (auto it = from; it != path.end(); ++it) cycle += components_[*it]->name() + " -> ";
        cycle += components_[j]->name();
        throw GraphError("dependency cycle: " + cycle);
      }
      if (colour[j] == White) visit(j);
    }
    path.pop_back();
    colour[i] = Black;
  };
  for (std::size_t i = 0; i < components_.size(); ++i) {
    if (colour[i] == White) visit(i);
  }
}

std::vector<std::string> Registry::startOrder() const {
  validate();
  std::vector<bool> placed(components_.size(), false);
  std::vector<std::string> order;
  while (order.size() < components_.size()) {
    for (std::size_t i = 0; i < components_.size(); ++i) {
      if (placed[i]) continue;
      const auto& deps = components_[i]->dependencies();
      bool ready = std::all_of(deps.begin(), deps.end(), [&](const std::string& d) { return placed[indexOf(d)]; });
      if (ready) {
        placed[i] = true;
        order.push_back(components_[i]->name());
        break;
      }
    }
  }
  return order;
}

StartResult Registry::startAll() {
  validate();
  phase_ = Phase::Starting;
  const std::size_t n = components_.size();
  std::vector<std::size_t> waiting_on(n, 0);
  std::vector<std::vector<std::size_t>> dependents(n);
  for (std::size_t i = 0; i < n; ++i) {
    for (const auto& d : components_[i]->dependencies()) {
      ++waiting_on[i];
      dependents[indexOf(d)].push_back(i);
    }
  }

  std::mutex m;
  std::condition_variable cv;
  std::vector<std::size_t> ready;
  std::vector<std::size_t> finished;  // completion order, guarded by m
  std::vector<bool> launched(n, false);
  std::size_t running = 0;
  StartResult result{true, {}, {}};
  std::vector<std::thread> threads;

  for (std::size_t i = 0; i < n; ++i) {
    if (waiting_on[i] == 0) ready.push_back(i);
  }

  auto runOne = [&](std::size_t i) {
    Component& c = *components_[i];
    std::string outcome = "ok";
    std::string error;
    try {
      c.start();
      HealthState s = c.health().state;
      if (s == HealthState::Starting) c.setHealth(HealthState::Healthy);
      if (c.health().state == HealthState::Degraded) outcome = "degraded";
      if (c.health().state == HealthState::Unhealthy) outcome = "unhealthy";  // started, but not ready yet
    } catch (const std::exception& e) {
      error = e.what();
    } catch (...) {
      error = "unknown exception";
    }
    if (!error.empty()) {
      if (c.critical()) {
        outcome = "failed";
        c.setHealth(HealthState::Unhealthy, "start failed: " + error);
      } else {
        outcome = "degraded";
        c.setHealth(HealthState::Degraded, "start failed: " + error);
        log_->warn("optional component '{}' failed to start, continuing degraded: {}", c.name(), error);
      }
    }
    trace_.endSpan(c.name(), outcome, error);
    std::lock_guard lock(m);
    finished.push_back(i);
    --running;
    if (outcome == "failed") {
      if (result.ok) result = StartResult{false, c.name(), error};
    } else {
      for (std::size_t d : dependents[i]) {
        if (--waiting_on[d] == 0) ready.push_back(d);
      }
    }
    cv.notify_all();
  };

  {
    std::unique_lock lock(m);
    for (;;) {
      while (!ready.empty() && result.ok) {
        std::size_t i = ready.front();
        ready.erase(ready.begin());
        launched[i] = true;
        ++running;
        Component& c = *components_[i];
        c.setHealth(HealthState::Starting);
        trace_.beginSpan(c.name(), c.dependencies(), c.critical());
        threads.emplace_back(runOne, i);
      }
      if (running == 0) break;
      cv.wait(lock);
    }
  }
  for (auto& t : threads) t.join();

  stop_order_.assign(finished.rbegin(), finished.rend());
  for (std::size_t i = 0; i < n; ++i) {
    if (!launched[i]) trace_.endSpan(components_[i]->name(), "not_started");
  }
  trace_.finish(result.ok);
  log_->info("startup trace:\n{}", trace_.toTable());

  if (!result.ok) {
    phase_ = Phase::Failed;
    log_->error("critical component '{}' failed to start: {}", result.failed_component, result.error);
    stopAll();
    phase_ = Phase::Failed;
    return result;
  }
  phase_ = Phase::Running;
  return result;
}

void Registry::beginShutdown() {
  shutting_down_ = true;
}

void Registry::stopAll() {
  shutting_down_ = true;
  if (stop_order_.empty()) return;
  Phase before = phase_.load();
  phase_ = Phase::Stopping;
  auto order = std::move(stop_order_);
  stop_order_.clear();
  for (std::size_t i : order) {
    Component& c = *components_[i];
    c.setHealth(HealthState::Stopping);
    auto t0 = std::chrono::steady_clock::now();
    try {
      c.stop();
    } catch (const std::exception& e) {
      log_->error("component '{}' threw while stopping: {}", c.name(), e.what());
    }
    c.setHealth(HealthState::Stopped);
    log_->debug("stopped '{}' in {:.2f} ms", c.name(),
                std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  phase_ = before == Phase::Failed ? Phase::Failed : Phase::Stopped;
}

}  // namespace agentwire::lifecycle
