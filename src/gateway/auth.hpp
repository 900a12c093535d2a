#pragma once

#include "core/result.hpp"
#include "net/http_types.hpp"

#include <chrono>
#include <optional>
#include <string>

namespace agentwire::gateway {

// Verifies and issues HS256 JSON Web Tokens (libjwt). `sub` is the user id.
// Only HS256 is accepted: `alg=none` and every other algorithm are refused, whatever the
// signature says. `exp`, when present, is enforced. Thread-safe (immutable after construction).
class TokenAuthority {
 public:
  explicit TokenAuthority(std::string secret);

  // The user id, or an error: missing_token, invalid_token, token_expired.
  core::Result<std::string> verify(const std::string& token) const;
  std::string issue(const std::string& user_id, std::chrono::seconds ttl) const;

 private:
  std::string secret_;
};

struct BearerToken {
  std::string token;
  bool via_subprotocol = false;  // then the server must answer with subprotocol "jwt-auth"
};

// From `Authorization: Bearer <token>`, or from a `Sec-WebSocket-Protocol` entry `jwt.<token>`
// (browsers cannot set headers on a WebSocket). Query parameters are not accepted: they end up in logs.
std::optional<BearerToken> extractToken(const net::HttpRequest& req);

// Reads the secret from `path`, or creates it there (0600) with 32 random bytes, hex-encoded.
// For dev mode without a configured secret: tokens survive a restart of the server.
std::string loadOrCreateDevSecret(const std::string& path);
// A new random development secret (64 hex digits), not written anywhere.
std::string newDevSecret();

// True for a Host header naming a loopback address: localhost, 127.0.0.0/8 or [::1], with or
// without a port. Dev mode answers only such hosts (a DNS-rebound name is refused).
bool loopbackHostHeader(const std::string& host);
// True for an Origin of a loopback page: http(s)://localhost|127.x.x.x|[::1](:port).
bool loopbackOrigin(const std::string& origin);

// A user id we accept: 1..128 characters of [A-Za-z0-9_.@-], not starting with "__" (reserved).
bool validUserId(const std::string& id);

}  // namespace agentwire::gateway
