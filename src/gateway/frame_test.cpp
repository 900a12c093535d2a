#include "gateway/frame.hpp"

#include <gtest/gtest.h>
#include <boost/json.hpp>

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
  EXPECT_EQ(parseFrame(R"({"type":""})").error().code, "invalid_field");
  EXPECT_EQ(parseFrame(R"({"type":7})").error().code, "invalid_field");
  EXPECT_EQ(parseFrame(R"({"type":"ping","data":[1]})").error().code, "invalid_field");
  EXPECT_EQ(parseFrame(R"({"type":"ping","id":{"a":1}})").error().code, "invalid_field");
}

TEST(FrameTest, ErrorsOfAFrameWithAnIdNameIt) {
  std::string ref;
  EXPECT_FALSE(parseFrame(R"({"id":"r1","data":{}})", &ref).ok());
  EXPECT_EQ(ref, "r1");
  ref.clear();
  EXPECT_FALSE(parseFrame(R"({"id":9,"type":"ping","data":"x"})", &ref).ok());
  EXPECT_EQ(ref, "9");
}

TEST(FrameTest, TypedFieldsRefuseTheWrongTypeNamingTheField) {
  boost::json::object d{{"thread_id", boost::json::array{1}},
                        {"agent", 7},
                        {"title", "t"},
                        {"limit", 2.0},
                        {"before", 1.5},
                        {"none", nullptr}};
  auto t = optionalString(d, "thread_id");
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.error().code, "invalid_field");
  EXPECT_NE(t.error().message.find("data.thread_id"), std::string::npos);
  EXPECT_EQ(optionalString(d, "agent").error().code, "invalid_field");
  EXPECT_EQ(optionalString(d, "title").value(), std::optional<std::string>("t"));
  EXPECT_EQ(optionalString(d, "absent").value(), std::nullopt);
  EXPECT_EQ(optionalString(d, "none").value(), std::nullopt);
  EXPECT_EQ(optionalInt(d, "limit").value(), std::optional<int64_t>(2));
  EXPECT_EQ(optionalInt(d, "before").error().code, "invalid_field");
  EXPECT_EQ(optionalInt(d, "title").error().code, "invalid_field");
}

}  // namespace
}  // namespace agentwire::gateway
