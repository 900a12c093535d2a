#include "net/ws_codec.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace agentwire::net::wsproto {
namespace {

// A client frame: masked, as RFC 6455 requires of clients.
std::string clientFrame(uint8_t op, std::string_view payload, bool fin = true, uint8_t rsv = 0,
                        int force_length_form = 0) {
  std::string f;
  f.push_back(static_cast<char>((fin ? 0x80 : 0) | rsv | op));
  std::size_t n = payload.size();
  int form = force_length_form != 0 ? force_length_form : (n < 126 ? 7 : n <= 0xFFFF ? 16 : 64);
  if (form == 7) {
    f.push_back(static_cast<char>(0x80 | n));
  } else if (form == 16) {
    f.push_back(static_cast<char>(0x80 | 126));
    f.push_back(static_cast<char>(n >> 8));
    f.push_back(static_cast<char>(n));
  } else {
    f.push_back(static_cast<char>(0x80 | 127));
    for (int i = 0; i < 8; ++i) f.push_back(static_cast<char>(static_cast<uint64_t>(n) >> (56 - 8 * i)));
  }
  const uint8_t key[4] = {0x37, 0xfa, 0x21, 0x3d};
  f.append(reinterpret_cast<const char*>(key), 4);
  for (std::size_t i = 0; i < n; ++i) f.push_back(static_cast<char>(payload[i] ^ key[i & 3]));
  return f;
}

struct Recorder : Decoder::Handler {
  std::vector<std::pair<std::string, bool>> messages;
  std::vector<std::string> pings, pongs;
  int close_code = 0;
  std::string close_reason;
  void onMessage(std::string_view p, bool text) override { messages.emplace_back(std::string(p), text); }
  void onPing(std::string_view p) override { pings.emplace_back(p); }
  void onPong(std::string_view p) override { pongs.emplace_back(p); }
  void onClose(int code, std::string_view reason) override {
    close_code = code;
    close_reason = std::string(reason);
  }
};

int feedAll(Decoder& d, std::string bytes, Recorder& r) {
  return d.feed(bytes.data(), bytes.size(), r);
}

TEST(WsCodecTest, ServerHeadersUseTheShortestLengthForm) {
  uint8_t h[kMaxHeader];
  EXPECT_EQ(encodeHeader(Opcode::kText, 0, h), 2u);
  EXPECT_EQ(h[0], 0x81);
  EXPECT_EQ(h[1], 0);
  EXPECT_EQ(encodeHeader(Opcode::kText, 125, h), 2u);
  EXPECT_EQ(h[1], 125);
  EXPECT_EQ(encodeHeader(Opcode::kBinary, 126, h), 4u);
  EXPECT_EQ(h[0], 0x82);
  EXPECT_EQ(h[1], 126);
  EXPECT_EQ((h[2] << 8) | h[3], 126);
  EXPECT_EQ(encodeHeader(Opcode::kText, 65535, h), 4u);
  EXPECT_EQ(encodeHeader(Opcode::kText, 65536, h), 10u);
  EXPECT_EQ(h[1], 127);
  EXPECT_EQ(h[7], 1);  // 65536 = 0x10000, big-endian
  EXPECT_EQ(encodeHeader(Opcode::kClose, 2, h), 2u);
  EXPECT_EQ(h[0], 0x88);
}

TEST(WsCodecTest, ClosePayloadCarriesTheCodeAndCutsTheReasonOnACodePoint) {
  auto p = closePayload(4001, "slow_consumer");
  EXPECT_EQ(static_cast<uint8_t>(p[0]), 4001 >> 8);
  EXPECT_EQ(static_cast<uint8_t>(p[1]), 4001 & 0xFF);
  EXPECT_EQ(p.substr(2), "slow_consumer");
  std::string long_reason(122, 'a');
  long_reason += "\xC3\xA9\xC3\xA9";  // é é: the first one straddles the 123-byte limit
  auto cut = closePayload(1000, long_reason);
  EXPECT_LE(cut.size(), kMaxControlPayload);
  EXPECT_EQ(cut.substr(2), std::string(122, 'a'));
}

TEST(WsCodecTest, OneFramePerMessageAndManyFramesInOneRead) {
  Decoder d(1024);
  Recorder r;
  std::string bytes = clientFrame(0x1, R"({"type":"ping"})") + clientFrame(0x2, std::string("\0\1\2", 3)) +
                      clientFrame(0x9, "p") + clientFrame(0xA, "q");
  EXPECT_EQ(feedAll(d, bytes, r), 0);
  ASSERT_EQ(r.messages.size(), 2u);
  EXPECT_EQ(r.messages[0], std::make_pair(std::string(R"({"type":"ping"})"), true));
  EXPECT_EQ(r.messages[1], std::make_pair(std::string("\0\1\2", 3), false));
  EXPECT_EQ(r.pings, std::vector<std::string>{"p"});
  EXPECT_EQ(r.pongs, std::vector<std::string>{"q"});
  EXPECT_EQ(d.bufferedBytes(), 0u) << "nothing kept between complete frames";
}

TEST(WsCodecTest, EverySplitOfTheBytesDecodesTheSameMessagesOnce) {
  std::string payload(300, 'x');  // a 16-bit length form
  std::string bytes = clientFrame(0x1, "first") + clientFrame(0x1, payload, false) + clientFrame(0x9, "hb") +
                      clientFrame(0x0, "tail") + clientFrame(0x1, "\xE2\x82\xAC");
  for (std::size_t cut1 = 0; cut1 <= bytes.size(); cut1 += 7) {
    for (std::size_t cut2 = cut1; cut2 <= bytes.size(); cut2 += 13) {
      Decoder d(4096);
      Recorder r;
      ASSERT_EQ(feedAll(d, bytes.substr(0, cut1), r), 0);
      ASSERT_EQ(feedAll(d, bytes.substr(cut1, cut2 - cut1), r), 0);
      ASSERT_EQ(feedAll(d, bytes.substr(cut2), r), 0);
      ASSERT_EQ(r.messages.size(), 3u) << cut1 << "/" << cut2;
      EXPECT_EQ(r.messages[0].first, "first");
      EXPECT_EQ(r.messages[1].first, payload + "tail");
      EXPECT_EQ(r.messages[2].first, "\xE2\x82\xAC");
      EXPECT_EQ(r.pings, std::vector<std::string>{"hb"}) << "a control frame between fragments";
    }
  }
  // Byte by byte.
  Decoder d(4096);
  Recorder r;
  for (char c : bytes) ASSERT_EQ(feedAll(d, std::string(1, c), r), 0);
  EXPECT_EQ(r.messages.size(), 3u);
}

TEST(WsCodecTest, ATextMessageSplitInsideACodePointIsValidAsAWhole) {
  Decoder d(64);
  Recorder r;
  EXPECT_EQ(feedAll(d, clientFrame(0x1, "\xE2\x82", false) + clientFrame(0x0, "\xAC"), r), 0);
  ASSERT_EQ(r.messages.size(), 1u);
  EXPECT_EQ(r.messages[0].first, "\xE2\x82\xAC");
}

TEST(WsCodecTest, ProtocolViolationsFailWith1002) {
  auto fails = [](const std::string& bytes, int code) {
    Decoder d(1 << 20);
    Recorder r;
    std::string b = bytes;
    EXPECT_EQ(d.feed(b.data(), b.size(), r), code);
    EXPECT_TRUE(r.messages.empty());
  };
  std::string unmasked = clientFrame(0x1, "hi");
  unmasked[1] = static_cast<char>(unmasked[1] & 0x7F);
  fails(unmasked, kProtocolError);
  fails(clientFrame(0x1, "hi", true, 0x40), kProtocolError);                    // RSV1 without permessage-deflate
  fails(clientFrame(0x3, "hi"), kProtocolError);                                // reserved opcode
  fails(clientFrame(0xB, "hi"), kProtocolError);                                // reserved control opcode
  fails(clientFrame(0x0, "hi"), kProtocolError);                                // continuation of nothing
  fails(clientFrame(0x1, "a", false) + clientFrame(0x1, "b"), kProtocolError);  // new message mid-way
  fails(clientFrame(0x9, std::string(126, 'p')), kProtocolError);               // control over 125 bytes
  fails(clientFrame(0x9, "p", false), kProtocolError);                          // fragmented control
  fails(clientFrame(0x1, "short", true, 0, 16), kProtocolError);                // non-minimal 16-bit length
  fails(clientFrame(0x1, std::string(300, 'x'), true, 0, 64), kProtocolError);  // non-minimal 64-bit length
  std::string huge = clientFrame(0x1, std::string(70000, 'x'));
  huge[2] = static_cast<char>(0x80);  // the 64-bit length's most significant bit
  fails(huge.substr(0, 14), kProtocolError);
}

TEST(WsCodecTest, AMessageOverTheLimitFailsWith1009FromItsHeaderAlone) {
  Decoder d(100);
  Recorder r;
  std::string big = clientFrame(0x1, std::string(5000, 'x'));
  EXPECT_EQ(feedAll(d, big.substr(0, 8), r), kTooBig) << "known before the payload arrives";
  EXPECT_LT(d.bufferedBytes(), 100u);
  Decoder f(100);
  Recorder r2;
  EXPECT_EQ(feedAll(f, clientFrame(0x1, std::string(60, 'a'), false) + clientFrame(0x0, std::string(60, 'b')), r2),
            kTooBig)
      << "the fragments together";
  Decoder exact(100);
  Recorder r3;
  EXPECT_EQ(feedAll(exact, clientFrame(0x1, std::string(100, 'a')), r3), 0) << "the limit itself is allowed";
  EXPECT_EQ(r3.messages.size(), 1u);
}

TEST(WsCodecTest, TextThatIsNotUtf8FailsWith1007) {
  Decoder d(100);
  Recorder r;
  EXPECT_EQ(feedAll(d, clientFrame(0x1, "\xC0\xAF"), r), kInvalidPayload);
  Decoder b(100);
  EXPECT_EQ(feedAll(b, clientFrame(0x2, "\xC0\xAF"), r), 0) << "binary is not text";
  Decoder f(100);
  EXPECT_EQ(feedAll(f, clientFrame(0x1, "\xE2\x82", false) + clientFrame(0x0, "x"), r), kInvalidPayload);
}

TEST(WsCodecTest, CloseFramesCarryAValidCodeAndUtf8ReasonAndEndDecoding) {
  auto close = [](std::string payload, int& code, std::string& reason) {
    Decoder d(100);
    Recorder r;
    std::string b = clientFrame(0x8, payload) + clientFrame(0x1, "after");
    int rc = d.feed(b.data(), b.size(), r);
    code = r.close_code;
    reason = r.close_reason;
    EXPECT_TRUE(r.messages.empty()) << "nothing after a close frame";
    return rc;
  };
  int code = 0;
  std::string reason;
  EXPECT_EQ(close(closePayload(1000, "bye"), code, reason), 0);
  EXPECT_EQ(code, 1000);
  EXPECT_EQ(reason, "bye");
  EXPECT_EQ(close("", code, reason), 0);
  EXPECT_EQ(code, kNoStatus);
  EXPECT_EQ(close("x", code, reason), kProtocolError);
  for (int bad : {999, 1004, 1005, 1006, 1015, 2000, 2999, 5000}) {
    EXPECT_EQ(close(closePayload(bad, ""), code, reason), kProtocolError) << bad;
  }
  for (int good : {1000, 1001, 1002, 1003, 1007, 1011, 1012, 1014, 3000, 4001, 4999}) {
    EXPECT_EQ(close(closePayload(good, ""), code, reason), 0) << good;
  }
  EXPECT_EQ(close(closePayload(1000, "\xFF"), code, reason), kInvalidPayload);
}

TEST(WsCodecTest, NothingLargeIsKeptOnceALargeMessageIsDone) {
  Decoder d(1 << 20);
  Recorder r;
  std::string big = clientFrame(0x1, std::string(200000, 'x'), false) + clientFrame(0x0, "y");
  // In pieces, as reads deliver it.
  for (std::size_t i = 0; i < big.size(); i += 16384) ASSERT_EQ(feedAll(d, big.substr(i, 16384), r), 0);
  ASSERT_EQ(r.messages.size(), 1u);
  EXPECT_EQ(r.messages[0].first.size(), 200001u);
  EXPECT_EQ(d.bufferedBytes(), 0u);
}

}  // namespace
}  // namespace agentwire::net::wsproto
