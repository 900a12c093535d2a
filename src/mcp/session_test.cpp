#include "mcp/session.hpp"

#include "agents/agent.hpp"

#include <gtest/gtest.h>
#include <boost/json.hpp>

#include <atomic>
#include <thread>

namespace agentwire::mcp {
namespace {
namespace json = boost::json;
using std::chrono::milliseconds;

// A server scripted per method: answers synchronously from send(), or not at all.
struct FakeServer {
  std::vector<json::object> received;
  std::atomic<int> sent{0};  // what another thread may look at
  std::map<std::string, std::function<json::object(const json::object& params)>> answers;
  Session* session = nullptr;

  bool send(const std::string& line) {
    auto msg = json::parse(line).as_object();
    received.push_back(msg);
    ++sent;
    if (!msg.contains("id") || !msg.contains("method")) return true;  // a notification or our answer
    auto it = answers.find(std::string(msg.at("method").as_string()));
    if (it == answers.end()) return true;  // never answered
    json::object reply{{"jsonrpc", "2.0"}, {"id", msg.at("id")}};
    auto body = it->second(msg.contains("params") ? msg.at("params").as_object() : json::object{});
    if (body.contains("error")) {
      reply["error"] = body.at("error");
    } else {
      reply["result"] = body;
    }
    session->onLine(json::serialize(reply));
    return true;
  }
  std::vector<std::string> methods() const {
    std::vector<std::string> out;
    for (const auto& m : received) {
      if (m.contains("method")) out.emplace_back(m.at("method").as_string());
    }
    return out;
  }
};

class SessionTest : public ::testing::Test {
 protected:
  FakeServer server;
  Session session{[this](const std::string& l) { return server.send(l); }};
  void SetUp() override { server.session = &session; }
};

TEST_F(SessionTest, InitializeAgreesOnAVersionThenSaysInitialized) {
  server.answers["initialize"] = [](const json::object& p) {
    EXPECT_EQ(p.at("protocolVersion").as_string(), "2025-06-18");
    return json::object{{"protocolVersion", "2024-11-05"}, {"serverInfo", {{"name", "fake"}}}, {"capabilities", {}}};
  };
  auto r = session.initialize(milliseconds(1000));
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(session.protocolVersion(), "2024-11-05");
  EXPECT_EQ(server.methods(), (std::vector<std::string>{"initialize", "notifications/initialized"}));
}

TEST_F(SessionTest, AVersionThisClientDoesNotSpeakIsRefused) {
  server.answers["initialize"] = [](const json::object&) { return json::object{{"protocolVersion", "1999-01-01"}}; };
  auto r = session.initialize(milliseconds(1000));
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("1999-01-01"), std::string::npos);
  EXPECT_EQ(server.methods(), (std::vector<std::string>{"initialize"})) << "no initialized notification";
}

TEST_F(SessionTest, ToolsAreListedOverEveryPage) {
  server.answers["tools/list"] = [](const json::object& p) {
    if (!p.contains("cursor")) {
      return json::object{{"tools", json::array{{{"name", "a"},
                                                 {"description", "first"},
                                                 {"inputSchema", {{"$schema", "x"}, {"type", "object"}}}}}},
                          {"nextCursor", "page2"}};
    }
    EXPECT_EQ(p.at("cursor").as_string(), "page2");
    return json::object{{"tools", json::array{{{"name", "b"}}}}};
  };
  auto tools = session.listTools(milliseconds(1000));
  ASSERT_TRUE(tools);
  ASSERT_EQ(tools->size(), 2u);
  EXPECT_EQ((*tools)[0].description, "first");
  EXPECT_FALSE((*tools)[0].input_schema.contains("$schema"));
  EXPECT_EQ((*tools)[1].input_schema, (json::object{{"type", "object"}}));
}

TEST_F(SessionTest, ACallsResultIsSummarisedAndItsErrorsAreToolErrors) {
  server.answers["tools/call"] = [](const json::object& p) -> json::object {
    auto name = std::string(p.at("name").as_string());
    if (name == "ok") {
      return {{"content", json::array{{{"type", "text"}, {"text", "one"}},
                                      {{"type", "image"}, {"mimeType", "image/png"}, {"data", "AAAA"}},
                                      {{"type", "text"}, {"text", "two"}}}},
              {"structuredContent", {{"sum", 3}}}};
    }
    if (name == "fails")
      return {{"content", json::array{{{"type", "text"}, {"text", "no such file"}}}}, {"isError", true}};
    return {{"error", {{"code", -32602}, {"message", "unknown tool"}}}};
  };
  auto ok = session.callTool("ok", {{"x", 1}}, milliseconds(1000), nullptr);
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->at("text").as_string(), "one\ntwo");
  EXPECT_EQ(ok->at("structured").at("sum").as_int64(), 3);
  EXPECT_EQ(ok->at("other").at(0).at("mime_type").as_string(), "image/png");
  auto fails = session.callTool("fails", {}, milliseconds(1000), nullptr);
  ASSERT_FALSE(fails);
  EXPECT_EQ(fails.error().code, "tool_error");
  EXPECT_EQ(fails.error().message, "no such file");
  auto unknown = session.callTool("nope", {}, milliseconds(1000), nullptr);
  ASSERT_FALSE(unknown);
  EXPECT_NE(unknown.error().message.find("unknown tool"), std::string::npos);
}

TEST_F(SessionTest, ACallWithoutAnAnswerTimesOutAndIsCancelledOnTheServer) {
  auto r = session.callTool("slow", {}, milliseconds(30), nullptr);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, "timeout");
  ASSERT_EQ(server.received.size(), 2u);
  EXPECT_EQ(server.received[1].at("method").as_string(), "notifications/cancelled");
  EXPECT_EQ(server.received[1].at("params").at("requestId"), server.received[0].at("id"));
  // A late answer to it is dropped, not taken for another call's.
  session.onLine(
      json::serialize(json::object{{"jsonrpc", "2.0"}, {"id", server.received[0].at("id")}, {"result", {}}}));
}

TEST_F(SessionTest, AStoppedRunCancelsItsCall) {
  agents::CancelToken token;
  std::thread stopper([&] {
    while (server.sent.load() == 0) std::this_thread::yield();
    token.cancel();
  });
  auto r = session.callTool("slow", {}, milliseconds(60000), &token);
  stopper.join();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, "cancelled");
  EXPECT_EQ(server.methods().back(), "notifications/cancelled");
}

TEST_F(SessionTest, TheServersRequestsAreAnsweredPingWithNothingElseRefused) {
  session.onLine(R"({"jsonrpc":"2.0","id":"s1","method":"ping"})");
  session.onLine(R"({"jsonrpc":"2.0","id":7,"method":"sampling/createMessage","params":{}})");
  ASSERT_EQ(server.received.size(), 2u);
  EXPECT_EQ(server.received[0].at("id").as_string(), "s1");
  EXPECT_TRUE(server.received[0].at("result").as_object().empty());
  EXPECT_EQ(server.received[1].at("error").at("code").as_int64(), -32601);
  std::string seen;
  session.setNotificationHandler([&](const std::string& m, const json::object&) { seen = m; });
  session.onLine(R"({"jsonrpc":"2.0","method":"notifications/tools/list_changed"})");
  EXPECT_EQ(seen, "notifications/tools/list_changed");
  session.onLine("not json at all");  // ignored
}

TEST_F(SessionTest, AServerThatEndsFailsTheWaitingCallAndEveryLaterOne) {
  std::thread closer([&] {
    while (server.sent.load() == 0) std::this_thread::yield();
    session.onClosed("exit status 1");
  });
  auto r = session.callTool("slow", {}, milliseconds(60000), nullptr);
  closer.join();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, "unavailable");
  EXPECT_NE(r.error().message.find("exit status 1"), std::string::npos);
  EXPECT_EQ(session.callTool("x", {}, milliseconds(1000), nullptr).error().code, "unavailable");
}

}  // namespace
}  // namespace agentwire::mcp
