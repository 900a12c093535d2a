#include "agents/tools.hpp"

#include "agents/agent.hpp"

#include <gtest/gtest.h>
#include <boost/json.hpp>

namespace agentwire::agents {
namespace {
namespace json = boost::json;

TEST(ToolRegistry, AToolIsFoundByItsNameOrItsFunctionNameAndNeverReplaced) {
  ToolRegistry r;
  Tool t;
  t.name = "files.read";
  t.function_name = "files__read";
  t.run = [](const json::object&) -> core::Result<json::value> { return json::value("first"); };
  EXPECT_TRUE(r.add(t));
  Tool again = t;
  again.run = [](const json::object&) -> core::Result<json::value> { return json::value("second"); };
  EXPECT_FALSE(r.add(again)) << "a tool, once added, is kept";
  ASSERT_NE(r.find("files__read"), nullptr);
  EXPECT_EQ(r.find("files__read"), r.find("files.read"));
  EXPECT_EQ(r.canonicalName("files__read"), "files.read");
  EXPECT_EQ(r.canonicalName("unknown"), "unknown");
  EXPECT_EQ(r.find("files.read")->run({}).value(), json::value("first"));
  auto tools = r.modelTools();
  ASSERT_EQ(tools.size(), 1u);
  EXPECT_EQ(tools[0].function_name, "files__read") << "the model sees the function name";
  EXPECT_EQ(tools[0].name, "files.read");
}

TEST(ToolRegistry, AnAgentsAllowListNamesToolsOrWholeServers) {
  ToolRegistry r;
  for (const char* name : {"clock", "files.read", "files.write", "filesystem.read"}) {
    Tool t;
    t.name = name;
    t.run = [](const json::object&) -> core::Result<json::value> { return json::value(); };
    r.add(t);
  }
  EXPECT_EQ(r.modelTools().size(), 4u) << "no list: every tool";
  auto some = r.modelTools({"clock", "files.*"});
  std::vector<std::string> names;
  for (const auto& t : some) names.push_back(t.function_name);
  EXPECT_EQ(names, (std::vector<std::string>{"clock", "files.read", "files.write"})) << "files.* is not filesystem.*";
  EXPECT_FALSE(ToolRegistry::permits({"clock"}, "calculator"));
  EXPECT_TRUE(ToolRegistry::permits({}, "calculator"));
}

TEST(ToolRegistry, ACancellableToolGetsTheRunsToken) {
  ToolRegistry r;
  Tool t;
  t.name = "s.wait";
  t.run_cancellable = [](const json::object&, const CancelToken* cancel) -> core::Result<json::value> {
    return json::value(cancel != nullptr && cancel->cancelled());
  };
  r.add(t);
  CancelToken token;
  token.cancel();
  EXPECT_EQ(r.find("s.wait")->run_cancellable({}, &token).value(), json::value(true));
}

TEST(RequiresApproval, ByNameOrForEveryToolOfAServer) {
  std::set<std::string> required{"calculator", "files.*", "web.fetch"};
  EXPECT_TRUE(requiresApproval(required, "calculator"));
  EXPECT_TRUE(requiresApproval(required, "files.write"));
  EXPECT_TRUE(requiresApproval(required, "web.fetch"));
  EXPECT_FALSE(requiresApproval(required, "web.search"));
  EXPECT_FALSE(requiresApproval(required, "clock"));
}

}  // namespace
}  // namespace agentwire::agents
