#pragma once

#include <string>
#include <string_view>

namespace agentwire::lifecycle {

enum class HealthState { Uninitialized, Starting, Healthy, Degraded, Unhealthy, Stopping, Stopped };

std::string_view toString(HealthState s);

struct Health {
  HealthState state = HealthState::Uninitialized;
  std::string reason;
};

}  // namespace agentwire::lifecycle
