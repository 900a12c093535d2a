#include "gateway/auth.hpp"

#include <fmt/format.h>
#include <jwt.h>
#include <sys/stat.h>
#include <boost/json.hpp>

#include <cerrno>
#include <ctime>
#include <fstream>
#include <memory>
#include <optional>
#include <random>
#include <sstream>
#include <stdexcept>

namespace agentwire::gateway {
namespace {

struct JwtFree {
  void operator()(jwt_t* j) const { jwt_free(j); }
};
using JwtPtr = std::unique_ptr<jwt_t, JwtFree>;

std::string trim(const std::string& s) {
  auto b = s.find_first_not_of(" \t");
  auto e = s.find_last_not_of(" \t");
  return b == std::string::npos ? std::string{} : s.substr(b, e - b + 1);
}

}  // namespace

TokenAuthority::TokenAuthority(std::string secret) : secret_(std::move(secret)) {
  if (secret_.empty()) throw std::invalid_argument("token secret must not be empty");
}

core::Result<std::string> TokenAuthority::verify(const std::string& token) const {
  if (token.empty()) return core::Error{"missing_token", "no token"};
  jwt_t* raw = nullptr;
  int rc = jwt_decode(&raw, token.c_str(), reinterpret_cast<const unsigned char*>(secret_.data()),
                      static_cast<int>(secret_.size()));
  JwtPtr jwt(raw);
  if (rc != 0 || !jwt) return core::Error{"invalid_token", "token signature or format is invalid"};
  // libjwt accepts alg=none tokens when given a key; we refuse anything but HS256.
  if (jwt_get_alg(jwt.get()) != JWT_ALG_HS256) {
    return core::Error{"invalid_token",
                       fmt::format("algorithm '{}' is not accepted", jwt_alg_str(jwt_get_alg(jwt.get())))};
  }
  // The time claims are read from the claims JSON, not with jwt_get_grant_int (which ignores a
  // claim of the wrong type: a token whose exp is "1000" or true would never expire).
  char* raw_claims = jwt_get_grants_json(jwt.get(), nullptr);
  if (raw_claims == nullptr) return core::Error{"invalid_token", "token has no claims"};
  boost::system::error_code ec;
  auto claims = boost::json::parse(raw_claims, ec);
  free(raw_claims);  // libjwt 1.10 has no jwt_free_str
  if (ec || !claims.is_object()) return core::Error{"invalid_token", "token claims are not a JSON object"};
  const auto& c = claims.as_object();
  double now = static_cast<double>(std::time(nullptr));
  // RFC 7519 NumericDate: a JSON number of seconds (fractions allowed).
  auto numericDate = [&](const char* name) -> core::Result<std::optional<double>> {
    auto* v = c.if_contains(name);
    if (v == nullptr) return std::optional<double>();
    if (v->is_int64()) return std::optional<double>(static_cast<double>(v->as_int64()));
    if (v->is_uint64()) return std::optional<double>(static_cast<double>(v->as_uint64()));
    if (v->is_double()) return std::optional<double>(v->as_double());
    return core::Error{"invalid_token", fmt::format("claim '{}' is not a NumericDate", name)};
  };
  auto exp = numericDate("exp");
  if (!exp) return exp.error();
  if (*exp && **exp <= now) return core::Error{"token_expired", "token has expired"};
  auto nbf = numericDate("nbf");
  if (!nbf) return nbf.error();
  if (*nbf && **nbf > now) return core::Error{"invalid_token", "token is not valid yet (nbf)"};
  auto* sub = c.if_contains("sub");
  if (sub == nullptr || !sub->is_string() || !validUserId(std::string(sub->as_string()))) {
    return core::Error{"invalid_token", "token has no valid 'sub'"};
  }
  return std::string(sub->as_string());
}

std::string TokenAuthority::issue(const std::string& user_id, std::chrono::seconds ttl) const {
  jwt_t* raw = nullptr;
  if (jwt_new(&raw) != 0) throw std::runtime_error("jwt_new failed");
  JwtPtr jwt(raw);
  long now = static_cast<long>(std::time(nullptr));
  jwt_add_grant(jwt.get(), "sub", user_id.c_str());
  jwt_add_grant_int(jwt.get(), "iat", now);
  jwt_add_grant_int(jwt.get(), "exp", now + static_cast<long>(ttl.count()));
  jwt_set_alg(jwt.get(), JWT_ALG_HS256, reinterpret_cast<const unsigned char*>(secret_.data()),
              static_cast<int>(secret_.size()));
  char* out = jwt_encode_str(jwt.get());
  if (out == nullptr) throw std::runtime_error("jwt_encode_str failed");
  std::string token(out);
  free(out);  // libjwt 1.10 has no jwt_free_str
  return token;
}

std::optional<BearerToken> extractToken(const net::HttpRequest& req) {
  auto auth = req.header("authorization");
  if (auth.size() > 7 && (auth.rfind("Bearer ", 0) == 0 || auth.rfind("bearer ", 0) == 0)) {
    return BearerToken{trim(auth.substr(7)), false};
  }
  std::stringstream protos(req.header("sec-websocket-protocol"));
  std::string p;
  while (std::getline(protos, p, ',')) {
    p = trim(p);
    if (p.rfind("jwt.", 0) == 0) return BearerToken{p.substr(4), true};
  }
  return std::nullopt;
}

std::string newDevSecret() {
  std::random_device rd;
  std::string s;
  for (int i = 0; i < 32; ++i) s += fmt::format("{:02x}", rd() & 0xff);
  return s;
}

std::string loadOrCreateDevSecret(const std::string& path) {
  {
    std::ifstream in(path);
    std::string s;
    if (in && std::getline(in, s) && s.size() >= 32) return s;
  }
  std::string s = newDevSecret();
  std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    if (!out) throw std::runtime_error(fmt::format("cannot write dev secret to '{}'", path));
    out << s << "\n";
  }
  ::chmod(tmp.c_str(), 0600);
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    throw std::runtime_error(fmt::format("cannot write dev secret to '{}'", path));
  }
  return s;
}

bool loopbackHostHeader(const std::string& host_header) {
  std::string host = host_header;
  if (host.empty()) return false;
  if (host.front() == '[') {
    auto close = host.find(']');
    if (close == std::string::npos) return false;
    std::string rest = host.substr(close + 1);
    if (!rest.empty() &&
        (rest[0] != ':' || rest.size() == 1 || rest.find_first_not_of("0123456789", 1) != std::string::npos)) {
      return false;
    }
    return host.substr(1, close - 1) == "::1";
  }
  auto colon = host.rfind(':');
  if (colon != std::string::npos) {
    std::string port = host.substr(colon + 1);
    if (port.empty() || port.find_first_not_of("0123456789") != std::string::npos) return false;
    host = host.substr(0, colon);
  }
  for (auto& c : host) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (host == "localhost") return true;
  // 127.0.0.0/8 as a dotted quad of numbers only (not 127.attacker.example).
  if (host.rfind("127.", 0) != 0) return false;
  int dots = 0;
  for (char c : host) {
    if (c == '.') {
      ++dots;
    } else if (!std::isdigit(static_cast<unsigned char>(c))) {
      return false;
    }
  }
  return dots == 3;
}

bool loopbackOrigin(const std::string& origin) {
  for (const char* scheme : {"http://", "https://"}) {
    if (origin.rfind(scheme, 0) == 0) return loopbackHostHeader(origin.substr(std::string(scheme).size()));
  }
  return false;
}

bool validUserId(const std::string& id) {
  if (id.empty() || id.size() > 128 || id.rfind("__", 0) == 0) return false;
  for (unsigned char c : id) {
    if (!(std::isalnum(c) || c == '_' || c == '.' || c == '@' || c == '-')) return false;
  }
  return true;
}

}  // namespace agentwire::gateway
