#include "gateway/auth.hpp"

#include "testing/temp_dir.hpp"

#include <gtest/gtest.h>

namespace agentwire::gateway {
namespace {

std::string b64url(const std::string& in) {
  static const char* t = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out;
  int val = 0, bits = -6;
  for (unsigned char c : in) {
    val = (val << 8) + c;
    bits += 8;
    while (bits >= 0) {
      out.push_back(t[(val >> bits) & 0x3F]);
      bits -= 6;
    }
  }
  if (bits > -6) out.push_back(t[((val << 8) >> (bits + 8)) & 0x3F]);
  return out;
}

TEST(AuthTest, IssuedTokenVerifiesToItsUser) {
  TokenAuthority a("0123456789abcdef0123456789abcdef");
  auto user = a.verify(a.issue("alice", std::chrono::hours(1)));
  ASSERT_TRUE(user.ok()) << user.error().message;
  EXPECT_EQ(user.value(), "alice");
}

TEST(AuthTest, ForgedTokenIsRefused) {
  TokenAuthority a("secret-one-secret-one-secret-one");
  TokenAuthority b("secret-two-secret-two-secret-two");
  EXPECT_EQ(a.verify(b.issue("alice", std::chrono::hours(1))).error().code, "invalid_token");
  auto t = a.issue("alice", std::chrono::hours(1));
  t.back() = t.back() == 'A' ? 'B' : 'A';
  EXPECT_EQ(a.verify(t).error().code, "invalid_token");
}

TEST(AuthTest, ExpiredTokenIsRefused) {
  TokenAuthority a("0123456789abcdef0123456789abcdef");
  EXPECT_EQ(a.verify(a.issue("alice", std::chrono::seconds(-10))).error().code, "token_expired");
}

TEST(AuthTest, AlgNoneIsRefused) {
  TokenAuthority a("0123456789abcdef0123456789abcdef");
  std::string token = b64url(R"({"alg":"none","typ":"JWT"})") + "." + b64url(R"({"sub":"alice"})") + ".";
  auto r = a.verify(token);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, "invalid_token");
}

TEST(AuthTest, MissingAndGarbageTokens) {
  TokenAuthority a("0123456789abcdef0123456789abcdef");
  EXPECT_EQ(a.verify("").error().code, "missing_token");
  EXPECT_EQ(a.verify("not.a.jwt").error().code, "invalid_token");
}

TEST(AuthTest, ReservedOrOddUserIdsAreRefused) {
  TokenAuthority a("0123456789abcdef0123456789abcdef");
  EXPECT_FALSE(a.verify(a.issue("__agentwire_system", std::chrono::hours(1))).ok());
  EXPECT_FALSE(a.verify(a.issue("a b", std::chrono::hours(1))).ok());
  EXPECT_TRUE(validUserId("bob.smith@example-1"));
}

TEST(AuthTest, TokenFromHeaderOrSubprotocol) {
  net::HttpRequest r;
  r.headers["authorization"] = "Bearer abc";
  EXPECT_EQ(extractToken(r)->token, "abc");
  EXPECT_FALSE(extractToken(r)->via_subprotocol);
  net::HttpRequest s;
  s.headers["sec-websocket-protocol"] = "chat, jwt.xyz";
  EXPECT_EQ(extractToken(s)->token, "xyz");
  EXPECT_TRUE(extractToken(s)->via_subprotocol);
  EXPECT_FALSE(extractToken(net::HttpRequest{}).has_value());
}

TEST(AuthTest, DevSecretPersists) {
  testing::TempDir dir;
  auto s1 = loadOrCreateDevSecret(dir.file("dev-secret"));
  auto s2 = loadOrCreateDevSecret(dir.file("dev-secret"));
  EXPECT_EQ(s1, s2);
  EXPECT_EQ(s1.size(), 64u);
}

}  // namespace
}  // namespace agentwire::gateway
