#pragma once

#include "core/config.hpp"

namespace agentwire::app {

// Runs `agentwire serve` until SIGTERM/SIGINT. Returns the process exit code:
// 0 after a clean shutdown, 1 when a critical component failed to start.
int runServer(const core::Config& config);

}  // namespace agentwire::app
