#include "lifecycle/health.hpp"

namespace agentwire::lifecycle {

std::string_view toString(HealthState s) {
  switch (s) {
    case HealthState::Uninitialized: return "uninitialized";
    case HealthState::Starting: return "starting";
    case HealthState::Healthy: return "healthy";
    case HealthState::Degraded: return "degraded";
    case HealthState::Unhealthy: return "unhealthy";
    case HealthState::Stopping: return "stopping";
    case HealthState::Stopped: return "stopped";
  }
  return "unknown";
}

}  // namespace agentwire::lifecycle
