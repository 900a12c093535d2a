// libFuzzer: raw bytes of an HTTP request through Beast's parser and our own checks (framing,
// target, query, headers).
#include "net/request_parse.hpp"

#include <cstdint>
#include <cstdlib>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto r = agentwire::net::parseHttpRequest(std::string_view(reinterpret_cast<const char*>(data), size), 64 * 1024);
  if (!r) {
    const auto& code = r.error().code;
    if (code != "bad_request" && code != "too_large" && code != "incomplete") std::abort();
    return 0;
  }
  if (r->path.empty() || r->path[0] != '/') std::abort();  // origin-form only
  for (const auto& [name, value] : r->headers) {
    for (char c : name) {
      if (c >= 'A' && c <= 'Z') std::abort();  // names are lower-cased
    }
  }
  return 0;
}
