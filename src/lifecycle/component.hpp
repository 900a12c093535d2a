#pragma once

#include "lifecycle/health.hpp"

#include <boost/json/object.hpp>

#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace agentwire::lifecycle {

enum class Criticality { Critical, Optional };

// A long-lived service with a name, the names of the components it needs, and start/stop.
//
// The registry calls start() once, after every dependency's start() returned, and stop() once,
// before any dependency's stop(). start() reports failure by throwing (startup is the control
// plane: fail fast with a clear message). stop() must not throw and is called even when start()
// failed half-way, so it must cope with a partly started component.
//
// health() is thread-safe and cheap: probes call it at any time, from any thread. A component
// sets its runtime health with setHealth(); the registry sets starting/stopping/stopped and
// the outcome of start() itself.
class Component {
 public:
  Component(std::string name, std::vector<std::string> dependencies, Criticality criticality = Criticality::Critical);
  virtual ~Component() = default;
  Component(const Component&) = delete;
  Component& operator=(const Component&) = delete;

  const std::string& name() const { return name_; }
  const std::vector<std::string>& dependencies() const { return dependencies_; }
  Criticality criticality() const { return criticality_; }
  bool critical() const { return criticality_ == Criticality::Critical; }
  // A config switch may make an optional component required before startup.
  void setCriticality(Criticality c) { criticality_ = c; }

  virtual void start() = 0;
  virtual void stop() = 0;

  Health health() const;
  // Runtime figures shown beside the health in /health (queue depths, last error...). Thread-safe.
  virtual boost::json::object details() const { return {}; }
  void setHealth(HealthState state, std::string reason = {});

 private:
  std::string name_;
  std::vector<std::string> dependencies_;
  Criticality criticality_;
  mutable std::mutex health_mutex_;
  Health health_;
};

using ComponentPtr = std::unique_ptr<Component>;

}  // namespace agentwire::lifecycle
