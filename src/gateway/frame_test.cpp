#include "gateway/frame.hpp"

#include <gtest/gtest.h>

namespace agentwire::gateway {
namespace {

TEST(FrameTest, ParsesTypeIdAndData) {
  auto f = parseFrame(R"({"type":"user_message","id":"c1","data":{"content":"hi"}})");
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(f->type, "user_message");
  EXPECT_EQ(f->id, "c1");
  EXPECT_EQ(f->data.at("content").as_string(), "hi");
}

TEST(FrameTest, AcceptsThePythonServiceAliases) {
  auto a = parseFrame(R"({"type":"chat_message","payload":{"content":"x"}})");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->type, "user_message");
  EXPECT_EQ(a->data.at("content").as_string(), "x");
  auto b = parseFrame(R"({"type":"user","data":{"content":"y"}})");
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->type, "user_message");
}

TEST(FrameTest, NumericIdsAreEchoedAsText) {
  auto f = parseFrame(R"({"type":"ping","id":42})");
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(f->id, "42");
}

TEST(FrameTest, ErrorsHaveStableCodes) {
  EXPECT_EQ(parseFrame("{not json").error().code, "invalid_json");
  EXPECT_EQ(parseFrame("[1,2]").error().code, "invalid_json");
  EXPECT_EQ(parseFrame(R"({"id":"x"})").error().code, "missing_field");
  EXPECT_EQ(parseFrame(R"({"type":""})").error().code, "missing_field");
  EXPECT_EQ(parseFrame(R"({"type":"ping","data":[1]})").error().code, "invalid_json");
}

}  // namespace
}  // namespace agentwire::gateway
