#include "core/text.hpp"

#include <gtest/gtest.h>

namespace agentwire::core {
namespace {

TEST(TextTest, ValidUtf8AcceptsWellFormedAndRefusesBrokenSequences) {
  EXPECT_TRUE(validUtf8(""));
  EXPECT_TRUE(validUtf8("plain ascii"));
  EXPECT_TRUE(validUtf8("h\xC3\xA9llo \xE2\x82\xAC \xF0\x9F\x98\x80"));  // é € 😀
  EXPECT_FALSE(validUtf8("\xC3"));                                       // cut in half
  EXPECT_FALSE(validUtf8("\xE2\x82"));
  EXPECT_FALSE(validUtf8("\xC0\xAF"));          // overlong '/'
  EXPECT_FALSE(validUtf8("\xED\xA0\x80"));      // surrogate
  EXPECT_FALSE(validUtf8("\xF4\x90\x80\x80"));  // above U+10FFFF
  EXPECT_FALSE(validUtf8("\x80"));              // stray continuation
  EXPECT_FALSE(validUtf8("\xFF"));
}

TEST(TextTest, TruncateNeverCutsACodePoint) {
  std::string s = "\xF0\x9F\x98\x80\xC3\xA9x";  // 😀 é x
  EXPECT_EQ(truncateUtf8(s, 0), "");
  EXPECT_EQ(truncateUtf8(s, 1), "\xF0\x9F\x98\x80");
  EXPECT_EQ(truncateUtf8(s, 2), "\xF0\x9F\x98\x80\xC3\xA9");
  EXPECT_EQ(truncateUtf8(s, 10), s);
  // The bug this replaces: 60 bytes of 2-byte characters cut in the middle of one.
  std::string many;
  for (int i = 0; i < 61; ++i) many += "\xC3\xA9";
  for (std::size_t n = 0; n < 70; ++n) EXPECT_TRUE(validUtf8(truncateUtf8(many, n))) << n;
}

TEST(TextTest, TitleIsTheFirstLineTrimmedAndMarkedWhenCut) {
  EXPECT_EQ(titleFrom("  hello world  \nsecond line", 60), "hello world");
  EXPECT_EQ(titleFrom("\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9", 3), "\xC3\xA9\xC3\xA9\xE2\x80\xA6");
  EXPECT_EQ(titleFrom("   ", 10), "");
  EXPECT_TRUE(validUtf8(titleFrom(std::string(59, 'a') + "\xF0\x9F\x98\x80\xF0\x9F\x98\x80", 60)));
}

}  // namespace
}  // namespace agentwire::core
