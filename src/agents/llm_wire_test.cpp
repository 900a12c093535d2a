#include "agents/llm_wire.hpp"

#include <gtest/gtest.h>

namespace agentwire::agents::llm {
namespace {
namespace json = boost::json;

TEST(AnthropicStream, TextToolUseStopReasonAndUsage) {
  std::string shown;
  auto p = anthropicWire()->parser([&](const std::string& t) { shown += t; });
  for (
      const char* e : {
          R"({"type":"message_start","message":{"usage":{"input_tokens":10,"cache_read_input_tokens":5,"output_tokens":1}}})",
          R"({"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}})",
          R"({"type":"ping"})",
          R"({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Let me "}})",
          R"({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"see."}})",
          R"({"type":"content_block_stop","index":0})",
          R"({"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_1","name":"calculator","input":{}}})",
          R"({"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"a\":"}})",
          R"({"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"6}"}})",
          R"({"type":"content_block_stop","index":1})",
          R"({"type":"message_delta","delta":{"stop_reason":"tool_use"},"usage":{"output_tokens":9}})",
          R"({"type":"message_stop"})",
      }) {
    p->data(e);
  }
  EXPECT_TRUE(p->errorCode().empty()) << p->errorMessage();
  EXPECT_TRUE(p->done());
  auto c = p->take();
  EXPECT_EQ(shown, "Let me see.");
  EXPECT_EQ(c.content, "Let me see.");
  ASSERT_EQ(c.calls.size(), 1u);
  EXPECT_EQ(c.calls[0].id, "toolu_1");
  EXPECT_EQ(c.calls[0].name, "calculator");
  EXPECT_EQ(c.calls[0].arguments, R"({"a":6})");
  EXPECT_EQ(c.finish_reason, "tool_calls");
  EXPECT_TRUE(c.usage_known);
  EXPECT_EQ(c.input_tokens, 15) << "cached input counts as input";
  EXPECT_EQ(c.output_tokens, 9) << "message_delta's usage is cumulative";
}

TEST(AnthropicStream, StopReasonsInTheCommonWords) {
  for (auto [stop, expected] : std::vector<std::pair<std::string, std::string>>{{"end_turn", "stop"},
                                                                                {"max_tokens", "length"},
                                                                                {"refusal", "content_filter"},
                                                                                {"pause_turn", "pause_turn"}}) {
    auto p = anthropicWire()->parser([](const std::string&) {});
    p->data(R"({"type":"message_delta","delta":{"stop_reason":")" + stop + R"("}})");
    EXPECT_EQ(p->take().finish_reason, expected) << stop;
  }
}

TEST(AnthropicStream, AnErrorEventAndAMalformedOneAreReported) {
  auto p = anthropicWire()->parser([](const std::string&) {});
  p->data(R"({"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}})");
  EXPECT_EQ(p->errorCode(), "upstream_error");
  EXPECT_NE(p->errorMessage().find("overloaded_error: Overloaded"), std::string::npos) << p->errorMessage();
  auto q = anthropicWire()->parser([](const std::string&) {});
  q->data("{nope");
  EXPECT_EQ(q->errorCode(), "upstream_protocol");
  auto r = anthropicWire()->parser([](const std::string&) {});
  r->data(R"({"type":"content_block_delta","index":3,"delta":{"type":"input_json_delta","partial_json":"{"}})");
  EXPECT_EQ(r->errorCode(), "upstream_protocol") << "arguments for a block that never started";
}

TEST(OpenAiStream, UsageChunkFinishReasonAndToolCalls) {
  std::string shown;
  auto p = openAiWire()->parser([&](const std::string& t) { shown += t; });
  p->data(R"({"choices":[{"index":0,"delta":{"role":"assistant","content":"Hi"},"finish_reason":null}]})");
  p->data(
      R"({"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"c1","function":{"name":"clock","arguments":"{}"}}]}}]})");
  p->data(R"({"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]})");
  p->data(R"({"choices":[],"usage":{"prompt_tokens":20,"completion_tokens":4,"total_tokens":24}})");
  p->data("[DONE]");
  EXPECT_TRUE(p->done());
  auto c = p->take();
  EXPECT_EQ(shown, "Hi");
  EXPECT_EQ(c.finish_reason, "tool_calls");
  ASSERT_EQ(c.calls.size(), 1u);
  EXPECT_EQ(c.calls[0].name, "clock");
  EXPECT_TRUE(c.usage_known);
  EXPECT_EQ(c.input_tokens, 20);
  EXPECT_EQ(c.output_tokens, 4);
}

TEST(OpenAiStream, NoFinishReasonMeansStopWithoutToolCalls) {
  auto p = openAiWire()->parser([](const std::string&) {});
  p->data(R"({"choices":[{"index":0,"delta":{"content":"ok"}}]})");
  auto c = p->take();
  EXPECT_EQ(c.finish_reason, "stop");
  EXPECT_FALSE(c.usage_known);
}

TEST(Completion, RoundTripsAndReadsWhatEarlierVersionsRecorded) {
  Completion c;
  c.content = "x";
  c.calls.push_back(ToolCall{"c1", "clock", "{}"});
  c.finish_reason = "tool_calls";
  c.usage_known = true;
  c.input_tokens = 3;
  c.output_tokens = 4;
  auto back = Completion::fromJson(c.toJson());
  EXPECT_EQ(back.content, "x");
  EXPECT_EQ(back.calls[0].arguments, "{}");
  EXPECT_EQ(back.finish_reason, "tool_calls");
  EXPECT_EQ(back.input_tokens + back.output_tokens, 7);
  // A run parked before this version recorded {content, tool_calls} only.
  auto old = Completion::fromJson(json::parse(
      R"({"content":"","tool_calls":[{"id":"c1","type":"function","function":{"name":"calculator","arguments":"{}"}}]})"));
  EXPECT_EQ(old.calls.size(), 1u);
  EXPECT_FALSE(old.usage_known);
  EXPECT_TRUE(old.finish_reason.empty());
}

TEST(AnthropicWire, ATurnWithToolsBecomesToolUseAndToolResultBlocks) {
  auto w = anthropicWire();
  Settings s{"claude", "Be brief.", std::nullopt, 0};
  auto messages = w->start(s, "hi");
  Completion c;
  c.content = "Let me see.";
  c.calls.push_back(ToolCall{"toolu_1", "calculator", R"({"a":6})"});
  w->append(messages, c, {ToolResult{"toolu_1", R"({"value":6})", false}});
  ASSERT_EQ(messages.size(), 3u);
  EXPECT_EQ(messages[1].at("content").as_array()[1].at("input"), json::parse(R"({"a":6})"));
  EXPECT_EQ(messages[2].at("content").as_array()[0].at("tool_use_id").as_string(), "toolu_1");
  auto r = w->request(s, messages, {ToolRegistry::ModelTool{"calculator", "calculator", "math", json::object{}}});
  EXPECT_EQ(r.at("system").as_string(), "Be brief.");
  EXPECT_EQ(r.at("max_tokens").as_int64(), 4096) << "the API requires one";
  EXPECT_EQ(r.at("tools").as_array()[0].at("input_schema").at("type").as_string(), "object");
}

}  // namespace
}  // namespace agentwire::agents::llm
