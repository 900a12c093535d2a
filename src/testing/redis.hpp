#pragma once

#include <optional>
#include <string>

namespace agentwire::testing {

// The Redis the test services started (AW_TEST_REDIS_URL), or nullopt (see postgres.hpp for what
// a missing one means).
std::optional<std::string> redisUrl();

}  // namespace agentwire::testing
