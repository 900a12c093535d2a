#include "gateway/auth.hpp"

#include "testing/temp_dir.hpp"

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

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

// An HS256 token with exactly these claims.
std::string signedToken(const std::string& secret, const std::string& claims) {
  std::string input = b64url(R"({"alg":"HS256","typ":"JWT"})") + "." + b64url(claims);
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
       reinterpret_cast<const unsigned char*>(input.data()), input.size(), mac, &len);
  return input + "." + b64url(std::string(reinterpret_cast<char*>(mac), len));
}

TEST(AuthTest, TimeClaimsOfTheWrongTypeAreRefusedNotIgnored) {
  const std::string key = "0123456789abcdef0123456789abcdef";
  TokenAuthority a(key);
  EXPECT_TRUE(a.verify(signedToken(key, R"({"sub":"al"})")).ok()) << "no exp: valid";
  for (const char* exp : {R"("1000")", "true", "null", "[1]", R"({"a":1})"}) {
    auto r = a.verify(signedToken(key, std::string(R"({"sub":"al","exp":)") + exp + "}"));
    ASSERT_FALSE(r.ok()) << exp;
    EXPECT_EQ(r.error().code, "invalid_token") << exp;
  }
  // Fractional NumericDates are numbers like any other (RFC 7519 2).
  EXPECT_EQ(a.verify(signedToken(key, R"({"sub":"al","exp":1000.5})")).error().code, "token_expired");
  EXPECT_TRUE(a.verify(signedToken(key, R"({"sub":"al","exp":99999999999.5})")).ok());
}

TEST(AuthTest, NotBeforeIsEnforced) {
  const std::string key = "0123456789abcdef0123456789abcdef";
  TokenAuthority a(key);
  auto future = a.verify(signedToken(key, R"({"sub":"al","nbf":99999999999})"));
  ASSERT_FALSE(future.ok());
  EXPECT_EQ(future.error().code, "invalid_token");
  EXPECT_TRUE(a.verify(signedToken(key, R"({"sub":"al","nbf":1000})")).ok());
  EXPECT_EQ(a.verify(signedToken(key, R"({"sub":"al","nbf":"soon"})")).error().code, "invalid_token");
  EXPECT_EQ(a.verify(signedToken(key, R"({"sub":7})")).error().code, "invalid_token");
}

TEST(AuthTest, LoopbackHostsAndOrigins) {
  for (const char* h : {"localhost", "localhost:8080", "LOCALHOST:1", "127.0.0.1", "127.0.0.1:9", "127.1.2.3:80",
                        "[::1]", "[::1]:8080"}) {
    EXPECT_TRUE(loopbackHostHeader(h)) << h;
  }
  for (const char* h : {"", "attacker.example", "attacker.example:8080", "127.attacker.example", "localhost.evil",
                        "127.0.0.1:80x", "[::2]:80", "[::1]x", "0.0.0.0", "10.0.0.1"}) {
    EXPECT_FALSE(loopbackHostHeader(h)) << h;
  }
  EXPECT_TRUE(loopbackOrigin("http://localhost:8080"));
  EXPECT_TRUE(loopbackOrigin("https://127.0.0.1"));
  EXPECT_FALSE(loopbackOrigin("http://attacker.example"));
  EXPECT_FALSE(loopbackOrigin("null"));
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
