// libFuzzer: one line of a process agent's output.
#include "agents/agent_lines.hpp"

#include <cstdint>
#include <cstdlib>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto r = agentwire::agents::parseAgentLine(std::string_view(reinterpret_cast<const char*>(data), size), 1);
  if (!r && r.error().code != "agent_protocol") std::abort();
  return 0;
}
