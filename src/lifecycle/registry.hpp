#pragma once

#include "lifecycle/component.hpp"
#include "lifecycle/startup_trace.hpp"

#include <spdlog/logger.h>

#include <atomic>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace agentwire::lifecycle {

// The dependency graph is wrong (missing dependency, cycle, duplicate name). Raised by validate()
// and startAll() before any component starts.
class GraphError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

enum class Phase { Idle, Starting, Running, Failed, Stopping, Stopped };
std::string_view toString(Phase p);

struct StartResult {
  bool ok = false;
  std::string failed_component;  // the critical component whose start() failed
  std::string error;
};

// Owns the components, starts them in dependency order (independent ones concurrently) and
// stops them in reverse. Thread-safe for readers (components(), phase(), health of each) while
// starting and stopping; add() only before startAll().
class Registry {
 public:
  explicit Registry(StartupTrace& trace);
  ~Registry();
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  // Takes ownership; returns the component for wiring. Throws GraphError on a duplicate name.
  template <typename T>
  T& add(std::unique_ptr<T> c) {
    T& ref = *c;
    addComponent(std::move(c));
    return ref;
  }

  // Throws GraphError naming every missing dependency, or the cycle (a -> b -> a).
  void validate() const;
  // Deterministic topological order: dependencies first, ties broken by registration order.
  std::vector<std::string> startOrder() const;

  // Starts everything. A critical failure stops what had started (reverse order) and returns
  // the failure; an optional failure marks the component degraded and startup continues.
  // Throws GraphError (starting nothing) when the graph is invalid.
  StartResult startAll();
  // Stops every started component in the reverse of the order their start() finished. Idempotent.
  void stopAll();

  Phase phase() const { return phase_.load(); }
  // Called when shutdown begins, before stopAll(), so readiness turns false at once.
  void beginShutdown();
  bool shuttingDown() const { return shutting_down_.load(); }

  const std::vector<ComponentPtr>& components() const { return components_; }
  Component* find(const std::string& name) const;
  StartupTrace& trace() { return trace_; }

 private:
  void addComponent(ComponentPtr c);
  std::size_t indexOf(const std::string& name) const;

  StartupTrace& trace_;
  std::shared_ptr<spdlog::logger> log_;
  std::vector<ComponentPtr> components_;
  std::vector<std::size_t> stop_order_;  // reversed completion order of start()
  std::atomic<Phase> phase_{Phase::Idle};
  std::atomic<bool> shutting_down_{false};
};

}  // namespace agentwire::lifecycle
