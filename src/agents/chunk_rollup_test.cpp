#include "agents/chunk_rollup.hpp"

#include <gtest/gtest.h>

#include <mutex>
#include <thread>
#include <vector>

namespace agentwire::agents {
namespace {

using namespace std::chrono_literals;

struct Sink {
  std::mutex mutex;
  std::vector<std::pair<std::string, std::string>> events;  // (type, delta or type)
  ChunkRollup::Deliver deliver() {
    return [this](const std::string& type, boost::json::object data, const std::string&) -> core::Result<bool> {
      std::lock_guard lock(mutex);
      auto* d = data.if_contains("delta");
      events.emplace_back(type, d != nullptr ? std::string(d->as_string()) : type);
      return true;
    };
  }
  std::vector<std::pair<std::string, std::string>> snapshot() {
    std::lock_guard lock(mutex);
    return events;
  }
};

boost::json::object delta(const std::string& text, const std::string& id = "m1") {
  return {{"message_id", id}, {"delta", text}};
}

TEST(ChunkRollupTest, DeltasAreJoinedUntilAnotherEventAndKeepTheirOrder) {
  Sink sink;
  ChunkRollup r({10s, 4096}, sink.deliver());
  auto first = r.send("agent_response_chunk", delta("Hel"));
  EXPECT_TRUE(first.due) << "a new window asks for the timer";
  EXPECT_FALSE(r.send("agent_response_chunk", delta("lo")).due);
  EXPECT_TRUE(sink.snapshot().empty()) << "held within the window";
  r.send("tool_executing", {{"tool_call_id", "t1"}});
  r.send("agent_response_chunk", delta(" world"));
  r.send("agent_completed", {{"content", "Hello world"}}, "completed");
  using E = std::vector<std::pair<std::string, std::string>>;
  EXPECT_EQ(sink.snapshot(), (E{{"agent_response_chunk", "Hello"},
                                {"tool_executing", "tool_executing"},
                                {"agent_response_chunk", " world"},
                                {"agent_completed", "agent_completed"}}));
}

TEST(ChunkRollupTest, SizeMessageIdAndOtherFieldsEndAChunk) {
  Sink sink;
  ChunkRollup r({10s, 8}, sink.deliver());
  r.send("agent_response_chunk", delta("12345"));
  r.send("agent_response_chunk", delta("6789"));  // 9 bytes >= 8: sent
  r.send("agent_response_chunk", delta("a"));
  r.send("agent_response_chunk", delta("b", "m2"));  // another message: "a" goes first
  boost::json::object extra = delta("c", "m2");
  extra["index"] = 3;  // not plain text: passed through as it is, after what is held
  r.send("agent_response_chunk", extra);
  r.flush(true);
  using E = std::vector<std::pair<std::string, std::string>>;
  EXPECT_EQ(sink.snapshot(), (E{{"agent_response_chunk", "123456789"},
                                {"agent_response_chunk", "a"},
                                {"agent_response_chunk", "b"},
                                {"agent_response_chunk", "c"}}));
}

TEST(ChunkRollupTest, AZeroWindowSendsEveryDeltaAndCloseDropsWhatIsHeld) {
  Sink off;
  ChunkRollup r0({0ms, 4096}, off.deliver());
  r0.send("agent_response_chunk", delta("a"));
  r0.send("agent_response_chunk", delta("b"));
  EXPECT_EQ(off.snapshot().size(), 2u);
  Sink on;
  ChunkRollup r1({10s, 4096}, on.deliver());
  r1.send("agent_response_chunk", delta("held"));
  r1.close();
  r1.flush(true);
  EXPECT_FALSE(r1.send("agent_thinking", {}).result.ok());
  EXPECT_TRUE(on.snapshot().empty());
}

TEST(ChunkRollupTest, TheTimerSendsTextOfAnAgentThatWentQuiet) {
  Sink sink;
  RollupTimer timer;
  auto r = std::make_shared<ChunkRollup>(ChunkRollup::Options{20ms, 4096}, sink.deliver());
  auto sent = r->send("agent_response_chunk", delta("thinking aloud"));
  ASSERT_TRUE(sent.due);
  timer.schedule(r, *sent.due);
  // Waits on the condition (the timer's flush), not on a guess of how long it takes.
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while (sink.snapshot().empty() && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(1ms);
  using E = std::vector<std::pair<std::string, std::string>>;
  EXPECT_EQ(sink.snapshot(), (E{{"agent_response_chunk", "thinking aloud"}}));
}

}  // namespace
}  // namespace agentwire::agents
