#include "agents/agent_lines.hpp"

#include <gtest/gtest.h>
#include <boost/json.hpp>

namespace agentwire::agents {
namespace {

TEST(AgentLine, AToolCallIsUnderstood) {
  auto l = parseAgentLine(R"({"type":"tool_call","tool_call_id":"c1","tool_name":"calculator","args":{"a":1}})", 1);
  ASSERT_TRUE(l.ok());
  ASSERT_TRUE(l->has_value());
  EXPECT_EQ((*l)->kind, AgentLine::Kind::ToolCall);
  EXPECT_EQ((*l)->tool_call_id, "c1");
  EXPECT_EQ((*l)->tool_name, "calculator");
  EXPECT_EQ((*l)->args.at("a"), boost::json::value(1));
  auto bare = parseAgentLine(R"({"type":"tool_call","tool_name":"clock"})", 2);
  ASSERT_TRUE(bare.ok());
  EXPECT_TRUE((*bare)->tool_call_id.empty()) << "agentwire names it";
  EXPECT_TRUE((*bare)->args.empty());
}

TEST(AgentLine, AMalformedToolCallIsAProtocolError) {
  for (const char* line : {R"({"type":"tool_call"})", R"({"type":"tool_call","tool_name":""})",
                           R"({"type":"tool_call","tool_name":"x","args":[1]})",
                           R"({"type":"tool_call","tool_name":"x","tool_call_id":7})"}) {
    auto l = parseAgentLine(line, 3);
    ASSERT_FALSE(l.ok()) << line;
    EXPECT_EQ(l.error().code, "agent_protocol") << line;
    EXPECT_NE(l.error().message.find("line 3"), std::string::npos) << l.error().message;
  }
}

}  // namespace
}  // namespace agentwire::agents
