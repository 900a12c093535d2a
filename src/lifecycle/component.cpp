#include "lifecycle/component.hpp"

namespace agentwire::lifecycle {

Component::Component(std::string name, std::vector<std::string> dependencies, Criticality criticality)
    : name_(std::move(name)), dependencies_(std::move(dependencies)), criticality_(criticality) {}

Health Component::health() const {
  std::lock_guard lock(health_mutex_);
  return health_;
}

void Component::setHealth(HealthState state, std::string reason) {
  std::lock_guard lock(health_mutex_);
  health_.state = state;
  health_.reason = std::move(reason);
}

}  // namespace agentwire::lifecycle
