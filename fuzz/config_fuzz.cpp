// libFuzzer: configuration files. Loading either gives a Config or throws ConfigError naming the
// problem; any other exception or a crash is a bug.
#include "core/config.hpp"

#include <cstdint>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    auto c = agentwire::core::loadConfigText(std::string_view(reinterpret_cast<const char*>(data), size));
    (void)agentwire::core::renderConfig(c);
  } catch (const agentwire::core::ConfigError&) {
  }
  return 0;
}
