// libFuzzer: a client frame as it arrives on a WebSocket. parseFrame and the typed field readers
// must answer every input with a frame or a documented error code, never crash or throw.
#include "gateway/frame.hpp"

#include <cstdint>
#include <cstdlib>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace agentwire::gateway;
  std::string ref;
  auto f = parseFrame(std::string_view(reinterpret_cast<const char*>(data), size), &ref);
  if (!f) {
    const auto& code = f.error().code;
    if (code != "invalid_json" && code != "missing_field" && code != "invalid_field") std::abort();
    return 0;
  }
  for (const char* key : {"content", "thread_id", "agent", "title", "epoch", "run_id", "before"}) {
    auto s = optionalString(f->data, key);
    if (!s && s.error().code != "invalid_field") std::abort();
  }
  for (const char* key : {"last_seq", "seq", "limit", "before"}) {
    auto i = optionalInt(f->data, key);
    if (!i && i.error().code != "invalid_field") std::abort();
  }
  return 0;
}
