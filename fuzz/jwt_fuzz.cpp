// libFuzzer: tokens as a client sends them (Authorization header or subprotocol). verify() must
// answer with a user or one of its three error codes.
#include "gateway/auth.hpp"

#include <cstdint>
#include <cstdlib>
#include <string>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace agentwire::gateway;
  static const TokenAuthority authority("0123456789abcdef0123456789abcdef");
  std::string input(reinterpret_cast<const char*>(data), size);
  agentwire::net::HttpRequest req;
  req.headers["authorization"] = "Bearer " + input;
  req.headers["sec-websocket-protocol"] = "jwt-auth, jwt." + input;
  for (const auto& token : {std::optional<BearerToken>(BearerToken{input, false}), extractToken(req)}) {
    if (!token) continue;
    auto r = authority.verify(token->token);
    if (r.ok()) {
      if (!validUserId(r.value())) std::abort();
    } else if (r.error().code != "invalid_token" && r.error().code != "token_expired" &&
               r.error().code != "missing_token") {
      std::abort();
    }
  }
  (void)loopbackHostHeader(input);
  (void)loopbackOrigin(input);
  return 0;
}
