#include "gateway/auth.hpp"

#include <fmt/format.h>
#include <jwt.h>
#include <sys/stat.h>

#include <cerrno>
#include <ctime>
#include <fstream>
#include <memory>
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
  errno = 0;
  long exp = jwt_get_grant_int(jwt.get(), "exp");
  if (errno == 0 && exp != 0 && exp <= static_cast<long>(std::time(nullptr))) {
    return core::Error{"token_expired", "token has expired"};
  }
  const char* sub = jwt_get_grant(jwt.get(), "sub");
  if (sub == nullptr || !validUserId(sub)) return core::Error{"invalid_token", "token has no valid 'sub'"};
  return std::string(sub);
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

std::string loadOrCreateDevSecret(const std::string& path) {
  {
    std::ifstream in(path);
    std::string s;
    if (in && std::getline(in, s) && s.size() >= 32) return s;
  }
  std::random_device rd;
  std::string s;
  for (int i = 0; i < 32; ++i) s += fmt::format("{:02x}", rd() & 0xff);
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

bool validUserId(const std::string& id) {
  if (id.empty() || id.size() > 128 || id.rfind("__", 0) == 0) return false;
  for (unsigned char c : id) {
    if (!(std::isalnum(c) || c == '_' || c == '.' || c == '@' || c == '-')) return false;
  }
  return true;
}

}  // namespace agentwire::gateway
