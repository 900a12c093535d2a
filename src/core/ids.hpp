#pragma once

#include <cstdint>
#include <string>

namespace agentwire::core {

// The user the routing self-check runs as: delivered like any user, left out of metrics and analytics.
inline constexpr const char* kSystemUser = "__agentwire_system";

// A random identifier with a readable prefix: "thr_5f1c0a9e3b7d2c41". Thread-safe.
std::string newId(const char* prefix);

// Milliseconds since the Unix epoch (wall clock), for timestamps on the wire.
int64_t nowMs();

}  // namespace agentwire::core
