#include "agents/bridge.hpp"

#include "agents/echo_agent.hpp"
#include "agents/process_agent.hpp"
#include "core/ids.hpp"
#include "delivery/delivery.hpp"
#include "delivery/in_process_connection.hpp"
#include "store/sqlite/sqlite_store.hpp"
#include "testing/temp_dir.hpp"

#include <gtest/gtest.h>

#include <condition_variable>
#include <future>
#include <mutex>
#include <set>
#include <thread>

namespace agentwire::agents {
namespace {

using delivery::InProcessConnection;

// Thinks, calls the calculator, answers.
class ScriptedAgent final : public Agent {
 public:
  const std::string& name() const override {
    static const std::string n = "scripted";
    return n;
  }
  std::string run(const RunInput&, RunContext& ctx) override {
    ctx.emitter.emit("agent_thinking", {{"reasoning", "adding"}, {"step", 1}});
    auto r = ctx.callTool("calculator", {{"op", "add"}, {"a", 2}, {"b", 3}});
    if (!r) return "no sum: " + r.error().code;
    return "2 + 3 = " + std::to_string(static_cast<int>(r->as_object().at("value").as_double()));
  }
};

// Works until cancelled (stop or deadline).
class SlowAgent final : public Agent {
 public:
  const std::string& name() const override {
    static const std::string n = "slow";
    return n;
  }
  std::string run(const RunInput&, RunContext& ctx) override {
    int step = 0;
    while (!ctx.cancel.cancelled()) {
      ctx.emitter.emit("agent_thinking", {{"reasoning", "still thinking"}, {"step", ++step}});
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return "never";
  }
};

// Thinks, then waits until its gate opens (or the run is cancelled), then answers.
struct Gate {
  std::mutex mutex;
  std::condition_variable cv;
  bool open = false;
  void release() {
    {
      std::lock_guard lock(mutex);
      open = true;
    }
    cv.notify_all();
  }
};

class GateAgent final : public Agent {
 public:
  explicit GateAgent(std::shared_ptr<Gate> gate) : gate_(std::move(gate)) {}
  const std::string& name() const override {
    static const std::string n = "gate";
    return n;
  }
  std::string run(const RunInput& in, RunContext& ctx) override {
    ctx.emitter.emit("agent_thinking", {{"reasoning", "waiting for the gate"}, {"step", 1}});
    std::unique_lock lock(gate_->mutex);
    while (!gate_->open && !ctx.cancel.cancelled()) gate_->cv.wait_for(lock, std::chrono::milliseconds(2));
    return "through: " + in.content;
  }

 private:
  std::shared_ptr<Gate> gate_;
};

class ThrowingAgent final : public Agent {
 public:
  const std::string& name() const override {
    static const std::string n = "crash";
    return n;
  }
  std::string run(const RunInput&, RunContext& ctx) override {
    ctx.emitter.emit("agent_thinking", {{"reasoning", "about to fail"}, {"step", 1}});
    throw std::runtime_error("segfault avoided");
  }
};

class BridgeTest : public ::testing::Test {
 protected:
  void SetUp() override { startWith({}); }
  void TearDown() override {
    if (bridge_) bridge_->stop();
    delivery_.stop();
    store_.stop();
  }

  void startWith(AgentWebSocketBridge::Options o) {
    if (bridge_) {
      bridge_->stop();
      delivery_.stop();
      store_.stop();
    }
    store_.start();
    delivery_.start();
    bridge_ = std::make_unique<AgentWebSocketBridge>(delivery_, store_, o, std::vector<std::string>{});
    addBuiltinTools(bridge_->tools());
    bridge_->addAgent(std::make_unique<EchoAgent>());
    bridge_->addAgent(std::make_unique<ScriptedAgent>());
    bridge_->addAgent(std::make_unique<SlowAgent>());
    bridge_->addAgent(std::make_unique<ThrowingAgent>());
    bridge_->addAgent(std::make_unique<GateAgent>(gate_));
    bridge_->addAgent(std::make_unique<ProcessAgent>(
        "proc_example", std::string("/usr/bin/python3 ") + AGENTWIRE_SOURCE_DIR + "/examples/process_agent.py"));
    bridge_->addAgent(std::make_unique<ProcessAgent>(
        "proc_crash", R"(read line; echo '{"type":"agent_thinking","reasoning":"x","step":1}'; exit 3)"));
    bridge_->addAgent(std::make_unique<ProcessAgent>("proc_hang", "sleep 30; sleep 30"));  // a shell with a child
    bridge_->addAgent(std::make_unique<ProcessAgent>("proc_garbage", "echo 'this is not json'; exec sleep 30"));
    bridge_->addAgent(std::make_unique<ProcessAgent>(
        "proc_error", R"(echo '{"type":"error","code":"upstream_down","message":"no model"}')"));
    bridge_->start();
  }

  std::shared_ptr<InProcessConnection> connect(const std::string& user) {
    auto c = std::make_shared<InProcessConnection>(user + "-conn", user);
    delivery_.attach(c, true);
    return c;
  }

  // A run in flight, as submit() leaves it once its message is stored: its events are stored only
  // while its record is there (the run fence).
  UserContext newRun(const std::string& user) {
    auto t = store_.createThread(user, "t", false);
    UserContext ctx{user, t->id, "run_" + std::to_string(++runs_), "req"};
    store::WriteBatch b;
    b.runs.push_back(store::RunRecord{ctx.run_id, user, t->id, "echo", "local", "queued", core::nowMs()});
    EXPECT_TRUE(store_.commit(b).ok());
    return ctx;
  }

  // The frames of one run, in the order received.
  static std::vector<boost::json::object> runFrames(const InProcessConnection& c, const std::string& run_id) {
    std::vector<boost::json::object> out;
    for (const auto& f : c.frames()) {
      auto* r = f.if_contains("run_id");
      if (r != nullptr && r->as_string() == run_id) out.push_back(f);
    }
    return out;
  }

  static bool terminal(const boost::json::object& f) {
    auto t = f.at("type").as_string();
    return t == "agent_completed" || t == "agent_error" || t == "agent_stopped";
  }

  bool waitForEnd(const InProcessConnection& c, const std::string& run_id,
                  std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      for (const auto& f : runFrames(c, run_id)) {
        if (terminal(f)) return true;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    return false;
  }

  // First agent_started, exactly one terminal and it is last, each tool_executing before its
  // tool_completed, seq strictly increasing. Returns the terminal type.
  static std::string checkInvariants(const std::vector<boost::json::object>& frames) {
    EXPECT_FALSE(frames.empty());
    if (frames.empty()) return {};
    EXPECT_EQ(frames.front().at("type").as_string(), "agent_started");
    int terminals = 0;
    std::set<std::string> open_calls;
    std::set<std::string> waiting;
    int64_t last_seq = 0;
    for (const auto& f : frames) {
      auto type = f.at("type").as_string();
      EXPECT_GT(f.at("seq").as_int64(), last_seq);
      last_seq = f.at("seq").as_int64();
      if (terminal(f)) ++terminals;
      // A call opens at tool_executing, or at tool_approval_requested (a denied call never executes).
      if (type == "tool_executing" || type == "tool_approval_requested") {
        open_calls.insert(std::string(f.at("data").at("tool_call_id").as_string()));
      }
      if (type == "tool_approval_requested") waiting.insert(std::string(f.at("data").at("tool_call_id").as_string()));
      if (type == "tool_completed") {
        EXPECT_EQ(open_calls.erase(std::string(f.at("data").at("tool_call_id").as_string())), 1u)
            << "tool_completed without its tool_executing or tool_approval_requested";
      }
    }
    EXPECT_EQ(terminals, 1);
    EXPECT_TRUE(terminal(frames.back()));
    // Only a call that waited for approval may stay open: its run was stopped while it waited.
    for (const auto& call : open_calls) EXPECT_EQ(waiting.count(call), 1u) << call;
    return std::string(frames.back().at("type").as_string());
  }

  // Submits a message as the gateway does and returns what `accepted` was called with.
  core::Result<store::Message> submit(const UserContext& ctx, const std::string& content, OnBusy on_busy,
                                      const std::string& agent = "gate") {
    std::promise<core::Result<store::Message>> p;
    auto f = p.get_future();
    bridge_->submit(AgentWebSocketBridge::Submission{ctx, content, agent, on_busy},
                    [&p](const core::Result<store::Message>& r) { p.set_value(r); });
    return f.get();
  }

  UserContext onThread(const std::string& user, const std::string& thread_id) {
    return UserContext{user, thread_id, "run_" + std::to_string(++runs_), "req"};
  }

  static int64_t seqOf(const InProcessConnection& c, const std::string& run_id, const std::string& type) {
    for (const auto& f : runFrames(c, run_id)) {
      if (f.at("type").as_string() == type) return f.at("seq").as_int64();
    }
    return -1;
  }

  std::shared_ptr<Gate> gate_ = std::make_shared<Gate>();
  testing::TempDir dir_;
  store::SqliteStore store_{dir_.file("agentwire.db"), {}};
  delivery::Delivery delivery_{store_, {}};
  std::unique_ptr<AgentWebSocketBridge> bridge_;
  int runs_ = 0;
};

TEST_F(BridgeTest, EveryAgentKindKeepsTheEventOrderInvariants) {
  auto c = connect("ann");
  for (const char* agent : {"echo", "scripted", "crash"}) {
    auto ctx = newRun("ann");
    ASSERT_TRUE(bridge_->startRun(ctx, "one two three", agent).ok());
    ASSERT_TRUE(waitForEnd(*c, ctx.run_id)) << agent;
    delivery_.flush();
    auto end = checkInvariants(runFrames(*c, ctx.run_id));
    EXPECT_EQ(end, std::string(agent) == "crash" ? "agent_error" : "agent_completed") << agent;
  }
}

TEST_F(BridgeTest, EchoEmitsAllFiveEventsAndStoresTheAnswer) {
  auto c = connect("bea");
  auto ctx = newRun("bea");
  ASSERT_TRUE(bridge_->startRun(ctx, "hello agent", "").ok());  // default agent: echo
  ASSERT_TRUE(waitForEnd(*c, ctx.run_id));
  std::vector<std::string> types;
  for (const auto& f : runFrames(*c, ctx.run_id)) {
    if (f.at("type").as_string() != "agent_response_chunk") types.emplace_back(f.at("type").as_string());
  }
  EXPECT_EQ(types, (std::vector<std::string>{"agent_started", "agent_thinking", "tool_executing", "tool_completed",
                                             "agent_completed"}));
  auto done = runFrames(*c, ctx.run_id).back().at("data").as_object();
  auto history = *store_.listMessages(ctx.thread_id, 10, 0);
  ASSERT_EQ(history.size(), 1u);
  EXPECT_EQ(history[0].role, "agent");
  EXPECT_EQ(history[0].id, done.at("message_id").as_string());
  EXPECT_EQ(history[0].content, done.at("content").as_string());
}

TEST_F(BridgeTest, TimeoutEndsTheRunWithAgentErrorTimeout) {
  startWith({.workers = 2, .run_timeout_ms = 50});
  auto c = connect("cy");
  auto ctx = newRun("cy");
  ASSERT_TRUE(bridge_->startRun(ctx, "x", "slow").ok());
  ASSERT_TRUE(waitForEnd(*c, ctx.run_id));
  delivery_.flush();
  auto frames = runFrames(*c, ctx.run_id);
  EXPECT_EQ(checkInvariants(frames), "agent_error");
  EXPECT_EQ(frames.back().at("data").at("code").as_string(), "timeout");
}

TEST_F(BridgeTest, StopAgentEndsTheRunWithAgentStopped) {
  auto c = connect("dee");
  auto ctx = newRun("dee");
  ASSERT_TRUE(bridge_->startRun(ctx, "x", "slow").ok());
  ASSERT_TRUE(c->waitFor("agent_thinking"));
  EXPECT_FALSE(bridge_->stopRun("someone_else", ctx.run_id)) << "only the run's user may stop it";
  EXPECT_TRUE(bridge_->stopRun("dee", ctx.run_id));
  ASSERT_TRUE(waitForEnd(*c, ctx.run_id));
  delivery_.flush();
  EXPECT_EQ(checkInvariants(runFrames(*c, ctx.run_id)), "agent_stopped");
}

TEST_F(BridgeTest, CrashBecomesAgentErrorInternalAndTheBridgeKeepsWorking) {
  auto c = connect("eve");
  auto bad = newRun("eve");
  ASSERT_TRUE(bridge_->startRun(bad, "x", "crash").ok());
  ASSERT_TRUE(waitForEnd(*c, bad.run_id));
  delivery_.flush();
  auto frames = runFrames(*c, bad.run_id);
  EXPECT_EQ(frames.back().at("data").at("code").as_string(), "internal");
  auto good = newRun("eve");
  ASSERT_TRUE(bridge_->startRun(good, "y", "echo").ok());
  ASSERT_TRUE(waitForEnd(*c, good.run_id));
  EXPECT_EQ(runFrames(*c, good.run_id).back().at("type").as_string(), "agent_completed");
}

TEST_F(BridgeTest, AUserRunsAtMostTheLimitAtOnceAndOthersAreNotHeldUp) {
  startWith({.workers = 4, .max_running_per_user = 2, .run_timeout_ms = 60000});
  auto c = connect("fin");
  auto other = connect("gil");
  std::vector<UserContext> slow;
  for (int i = 0; i < 3; ++i) {
    slow.push_back(newRun("fin"));
    ASSERT_TRUE(bridge_->startRun(slow.back(), "x", "slow").ok());
  }
  // Two of fin's runs start; the third waits while a worker is free...
  auto started = [&](const UserContext& r) {
    for (const auto& f : runFrames(*c, r.run_id)) {
      if (f.at("type").as_string() == "agent_started") return true;
    }
    return false;
  };
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (!(started(slow[0]) && started(slow[1])) && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  // ...which another user's run gets at once.
  auto gil = newRun("gil");
  ASSERT_TRUE(bridge_->startRun(gil, "hi", "echo").ok());
  ASSERT_TRUE(waitForEnd(*other, gil.run_id, std::chrono::seconds(5)));
  EXPECT_FALSE(started(slow[2])) << "a third run of the same user started beside two running ones";
  bridge_->stopRun("fin", slow[0].run_id);
  ASSERT_TRUE(waitForEnd(*c, slow[0].run_id));
  deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (!started(slow[2]) && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  EXPECT_TRUE(started(slow[2])) << "the waiting run did not start when a slot freed";
  for (auto& r : slow) bridge_->stopRun("fin", r.run_id);
}

TEST_F(BridgeTest, PerUserQueueLimitAnswersRateLimited) {
  startWith({.workers = 1, .max_running_per_user = 1, .max_queued_per_user = 2, .run_timeout_ms = 60000});
  auto first = newRun("hal");
  ASSERT_TRUE(bridge_->startRun(first, "x", "slow").ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(50));  // first is running, not queued
  ASSERT_TRUE(bridge_->startRun(newRun("hal"), "x", "slow").ok());
  ASSERT_TRUE(bridge_->startRun(newRun("hal"), "x", "slow").ok());
  auto over = bridge_->startRun(newRun("hal"), "x", "slow");
  ASSERT_FALSE(over.ok());
  EXPECT_EQ(over.error().code, "rate_limited");
  EXPECT_TRUE(bridge_->startRun(newRun("ivy"), "x", "echo").ok()) << "other users are not limited by hal";
}

TEST_F(BridgeTest, HundredUsersFiveRunsEachNoEmitterReachesAnotherUser) {
  startWith({.workers = 4,
             .max_queue = 10000,
             .max_running_per_user = 2,
             .max_queued_per_user = 16,
             .run_timeout_ms = 60000});
  std::vector<std::shared_ptr<InProcessConnection>> conns;
  std::map<std::string, std::set<std::string>> threads_of;
  std::vector<UserContext> all;
  for (int u = 0; u < 100; ++u) {
    std::string user = "u" + std::to_string(u);
    conns.push_back(connect(user));
    for (int r = 0; r < 5; ++r) {
      auto ctx = newRun(user);
      threads_of[user].insert(ctx.thread_id);
      all.push_back(ctx);
    }
  }
  std::vector<std::thread> senders;
  for (int t = 0; t < 4; ++t) {
    senders.emplace_back([&, t] {
      for (std::size_t i = t; i < all.size(); i += 4) {
        ASSERT_TRUE(bridge_->startRun(all[i], "msg of " + all[i].user_id, i % 2 ? "echo" : "scripted").ok());
      }
    });
  }
  for (auto& s : senders) s.join();
  for (std::size_t i = 0; i < all.size(); ++i) {
    ASSERT_TRUE(waitForEnd(*conns[i / 5], all[i].run_id)) << all[i].run_id;
  }
  delivery_.flush();
  for (int u = 0; u < 100; ++u) {
    std::string user = "u" + std::to_string(u);
    for (const auto& f : conns[u]->frames()) {
      ASSERT_TRUE(threads_of[user].count(std::string(f.at("thread_id").as_string())))
          << user << " received an event of another user's thread";
      if (f.at("type").as_string() == "agent_started") {
        EXPECT_EQ(f.at("data").at("input").as_string(), "msg of " + user);
      }
    }
    for (int r = 0; r < 5; ++r) checkInvariants(runFrames(*conns[u], all[u * 5 + r].run_id));
  }
}

TEST_F(BridgeTest, AnEmitterCannotDeliverToAnotherUsersThread) {
  auto victim = connect("jo");
  auto jo_thread = store_.createThread("jo", "private", false)->id;
  // An emitter made for mallory but pointed at jo's thread: delivery refuses it.
  auto emitter = bridge_->createUserEmitter(UserContext{"mallory", jo_thread, "run_x", "req"});
  auto r = emitter->emit("agent_thinking", {{"reasoning", "sneaky"}});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, "forbidden");
  delivery_.flush();
  EXPECT_TRUE(victim->frames().empty());
}

TEST_F(BridgeTest, ProcessAgentExampleStreamsItsEventsAndCompletes) {
  auto c = connect("pam");
  auto ctx = newRun("pam");
  ASSERT_TRUE(bridge_->startRun(ctx, "one two three", "proc_example").ok());
  ASSERT_TRUE(waitForEnd(*c, ctx.run_id));
  delivery_.flush();
  auto frames = runFrames(*c, ctx.run_id);
  EXPECT_EQ(checkInvariants(frames), "agent_completed");
  EXPECT_EQ(frames.back().at("data").at("content").as_string(), "Reversed: three two one");
  std::string streamed;
  for (const auto& f : frames) {
    if (f.at("type").as_string() == "agent_response_chunk") {
      streamed += f.at("data").at("delta").as_string();
      EXPECT_EQ(f.at("data").at("message_id").as_string(), ctx.run_id + "_answer");
    }
  }
  EXPECT_EQ(streamed, "Reversed: three two one");
}

TEST_F(BridgeTest, ProcessAgentCrashHangGarbageAndReportedErrorsBecomeAgentError) {
  startWith({.workers = 4, .run_timeout_ms = 1500});
  auto c = connect("quin");
  struct Case {
    const char* agent;
    const char* code;
  };
  std::vector<std::pair<Case, UserContext>> runs;
  for (Case k : {Case{"proc_crash", "agent_exited"}, Case{"proc_hang", "timeout"},
                 Case{"proc_garbage", "agent_protocol"}, Case{"proc_error", "upstream_down"}}) {
    auto ctx = newRun("quin");
    ASSERT_TRUE(bridge_->startRun(ctx, "x", k.agent).ok());
    runs.emplace_back(k, ctx);
  }
  for (auto& [k, ctx] : runs) {
    ASSERT_TRUE(waitForEnd(*c, ctx.run_id)) << k.agent;
    delivery_.flush();
    auto frames = runFrames(*c, ctx.run_id);
    EXPECT_EQ(checkInvariants(frames), "agent_error") << k.agent;
    EXPECT_EQ(frames.back().at("data").at("code").as_string(), k.code) << k.agent;
  }
}

TEST_F(BridgeTest, StoppingAProcessAgentKillsTheProgram) {
  auto c = connect("rex");
  auto ctx = newRun("rex");
  ASSERT_TRUE(bridge_->startRun(ctx, "x", "proc_hang").ok());
  ASSERT_TRUE(c->waitFor("agent_started"));
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_TRUE(bridge_->stopRun("rex", ctx.run_id));
  ASSERT_TRUE(waitForEnd(*c, ctx.run_id));
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(2));
  EXPECT_EQ(runFrames(*c, ctx.run_id).back().at("type").as_string(), "agent_stopped");
}

TEST_F(BridgeTest, ToolRegistryBuiltinsAndUnknownTool) {
  auto c = connect("kai");
  auto ctx = newRun("kai");
  auto emitter = bridge_->createUserEmitter(ctx);
  auto sum = bridge_->tools().call(*emitter, "calculator", {{"op", "mul"}, {"a", 6}, {"b", 7}});
  ASSERT_TRUE(sum.ok());
  EXPECT_EQ(sum->as_object().at("value").as_double(), 42.0);
  EXPECT_EQ(bridge_->tools().call(*emitter, "calculator", {{"op", "div"}, {"a", 1}, {"b", 0}}).error().code,
            "invalid_args");
  EXPECT_EQ(bridge_->tools().call(*emitter, "nope", {}).error().code, "unknown_tool");
  EXPECT_TRUE(bridge_->tools().call(*emitter, "clock", {}).ok());
  delivery_.flush();
  auto frames = c->frames();
  ASSERT_EQ(frames.size(), 8u) << "each call emits tool_executing and tool_completed";
  EXPECT_EQ(frames[5].at("data").at("result").at("error").as_string(), "no tool named 'nope'");
}

}  // namespace
}  // namespace agentwire::agents

namespace agentwire::agents {
namespace {

TEST_F(BridgeTest, RunsOfOneThreadNeverOverlapAndStartInOrder) {
  startWith({.workers = 4, .max_running_per_user = 4, .run_timeout_ms = 60000});
  auto c = connect("olga");
  auto thread = store_.createThread("olga", "t", false);
  auto other = store_.createThread("olga", "u", false);
  auto first = onThread("olga", thread->id);
  ASSERT_TRUE(submit(first, "one", OnBusy::Enqueue).ok());
  ASSERT_TRUE(c->waitFor("agent_thinking"));
  auto second = onThread("olga", thread->id);
  ASSERT_TRUE(submit(second, "two", OnBusy::Enqueue).ok()) << "enqueue accepts a message on a busy thread";
  // A run queued after `second` on another thread starts while `second` waits: workers were free.
  auto beside = onThread("olga", other->id);
  ASSERT_TRUE(submit(beside, "three", OnBusy::Enqueue).ok());
  ASSERT_TRUE(c->waitFor(
      [&](const boost::json::object& f) {
        return f.at("type").as_string() == "agent_started" && f.at("run_id").as_string() == beside.run_id;
      },
      std::chrono::seconds(5)));
  EXPECT_EQ(seqOf(*c, second.run_id, "agent_started"), -1) << "a second run of a busy thread started";
  gate_->release();
  for (const auto* r : {&first, &second, &beside}) ASSERT_TRUE(waitForEnd(*c, r->run_id));
  delivery_.flush();
  EXPECT_GT(seqOf(*c, second.run_id, "agent_started"), seqOf(*c, first.run_id, "agent_completed"))
      << "the second run started before the first one ended";
  EXPECT_EQ(checkInvariants(runFrames(*c, second.run_id)), "agent_completed");
}

TEST_F(BridgeTest, RejectRefusesAMessageForABusyThreadAndStoresNothing) {
  auto c = connect("pia");
  auto thread = store_.createThread("pia", "t", false);
  auto first = onThread("pia", thread->id);
  ASSERT_TRUE(submit(first, "one", OnBusy::Reject).ok()) << "an idle thread takes a rejecting message";
  ASSERT_TRUE(c->waitFor("agent_thinking"));
  auto refused = submit(onThread("pia", thread->id), "two", OnBusy::Reject);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code, "thread_busy");
  auto other = store_.createThread("pia", "u", false);
  EXPECT_TRUE(submit(onThread("pia", other->id), "elsewhere", OnBusy::Reject, "echo").ok())
      << "another thread of the user is not busy";
  gate_->release();
  ASSERT_TRUE(waitForEnd(*c, first.run_id));
  delivery_.flush();
  auto history = *store_.listMessages(thread->id, 10, 0);
  ASSERT_EQ(history.size(), 2u) << "the refused message was stored";  // "one" and its answer
  EXPECT_EQ(history[0].content, "one");
  // Once the run ended the thread takes a rejecting message again.
  auto again = onThread("pia", thread->id);
  EXPECT_TRUE(submit(again, "three", OnBusy::Reject, "echo").ok());
  ASSERT_TRUE(waitForEnd(*c, again.run_id));
}

TEST_F(BridgeTest, InterruptStopsTheEarlierRunsOfTheThreadThenRuns) {
  startWith({.workers = 4, .max_running_per_user = 4, .run_timeout_ms = 60000});
  auto c = connect("quin");
  auto thread = store_.createThread("quin", "t", false);
  auto first = onThread("quin", thread->id);
  ASSERT_TRUE(submit(first, "one", OnBusy::Enqueue).ok());
  ASSERT_TRUE(c->waitFor("agent_thinking"));
  auto queued = onThread("quin", thread->id);
  ASSERT_TRUE(submit(queued, "two", OnBusy::Enqueue).ok());
  auto takeover = onThread("quin", thread->id);
  ASSERT_TRUE(submit(takeover, "three", OnBusy::Interrupt, "echo").ok());
  for (const auto* r : {&first, &queued, &takeover}) ASSERT_TRUE(waitForEnd(*c, r->run_id));
  delivery_.flush();
  for (const auto* r : {&first, &queued}) {
    auto frames = runFrames(*c, r->run_id);
    EXPECT_EQ(checkInvariants(frames), "agent_stopped");
    EXPECT_EQ(frames.back().at("data").at("reason").as_string(), "interrupted");
  }
  EXPECT_EQ(checkInvariants(runFrames(*c, takeover.run_id)), "agent_completed");
  EXPECT_GT(seqOf(*c, takeover.run_id, "agent_started"), seqOf(*c, queued.run_id, "agent_stopped"));
  // A run of another thread is not touched by the interrupt.
  auto other = store_.createThread("quin", "u", false);
  auto beside = onThread("quin", other->id);
  ASSERT_TRUE(submit(beside, "four", OnBusy::Enqueue).ok());
  ASSERT_TRUE(submit(onThread("quin", thread->id), "five", OnBusy::Interrupt, "echo").ok());
  gate_->release();
  ASSERT_TRUE(waitForEnd(*c, beside.run_id));
  EXPECT_EQ(runFrames(*c, beside.run_id).back().at("type").as_string(), "agent_completed");
}

TEST_F(BridgeTest, AStoppedRunSaysWhy) {
  auto c = connect("rae");
  auto ctx = newRun("rae");
  ASSERT_TRUE(bridge_->startRun(ctx, "x", "slow").ok());
  ASSERT_TRUE(c->waitFor("agent_thinking"));
  ASSERT_TRUE(bridge_->stopRun("rae", ctx.run_id));
  ASSERT_TRUE(waitForEnd(*c, ctx.run_id));
  EXPECT_EQ(runFrames(*c, ctx.run_id).back().at("data").at("reason").as_string(), "requested");
}

}  // namespace
}  // namespace agentwire::agents

namespace agentwire::agents {
namespace {

// Many runs park on one worker; answers race each other (two per approval, from two threads), stops
// race answers. Every run ends exactly once, with its events in order and nothing repeated; the
// first answer of each approval is the one that counts. Under TSan: the workers, the approvals thread
// and the answering threads share the bridge's state.
TEST_F(BridgeTest, ParkedRunsAreAnsweredOnceWhateverRacesThem) {
  startWith({.workers = 1, .max_queue = 1000, .max_queued_per_user = 100, .approval_required_tools = {"calculator"}});
  auto c = connect("pam");
  constexpr int kRuns = 12;
  std::vector<UserContext> runs;
  for (int i = 0; i < kRuns; ++i) {
    runs.push_back(newRun("pam"));
    ASSERT_TRUE(bridge_->startRun(runs.back(), "x", "scripted").ok());
  }
  std::vector<std::string> approvals;
  for (const auto& r : runs) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    std::string id;
    while (id.empty() && std::chrono::steady_clock::now() < deadline) {
      for (const auto& f : runFrames(*c, r.run_id)) {
        if (f.at("type").as_string() == "tool_approval_requested") {
          id = std::string(f.at("data").at("approval_id").as_string());
        }
      }
      if (id.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    ASSERT_FALSE(id.empty()) << "run " << r.run_id << " never parked: parked runs must not hold the worker";
    approvals.push_back(id);
  }
  EXPECT_EQ(bridge_->parkedRuns(), static_cast<std::size_t>(kRuns));
  EXPECT_EQ(bridge_->answerApproval("someone_else", approvals[0], true, "", "x").error().code, "approval_not_found");

  std::atomic<int> wins{0};
  auto answer = [&](bool approve) {
    for (int i = 0; i < kRuns; ++i) {
      if (i % 4 == 3) {
        (void)bridge_->stopRun("pam", runs[i].run_id);
        continue;
      }
      auto r = bridge_->answerApproval("pam", approvals[i], approve, approve ? "" : "no", approve ? "t1" : "t2");
      if (r) {
        ++wins;
      } else {
        EXPECT_EQ(r.error().code, "approval_resolved");
      }
    }
  };
  std::thread t1(answer, true);
  std::thread t2(answer, false);
  t1.join();
  t2.join();
  for (const auto& r : runs) ASSERT_TRUE(waitForEnd(*c, r.run_id)) << r.run_id;
  delivery_.flush();
  int answered = 0;
  for (int i = 0; i < kRuns; ++i) {
    auto frames = runFrames(*c, runs[i].run_id);
    auto end = checkInvariants(frames);
    int started = 0, resolved = 0;
    std::string decision;
    for (const auto& f : frames) {
      auto type = f.at("type").as_string();
      if (type == "agent_started") ++started;
      if (type == "tool_approval_resolved") {
        ++resolved;
        decision = std::string(f.at("data").at("decision").as_string());
      }
    }
    EXPECT_EQ(started, 1);
    EXPECT_EQ(resolved, 1) << "each approval is resolved once";
    if (i % 4 == 3) {
      // A stop races nothing here: it expires the approval, and the run ends stopped.
      EXPECT_EQ(decision, "expired");
      EXPECT_EQ(end, "agent_stopped");
      continue;
    }
    ++answered;
    EXPECT_TRUE(decision == "approved" || decision == "denied") << decision;
    EXPECT_EQ(end, "agent_completed");
  }
  EXPECT_EQ(wins.load(), answered) << "one winning answer per approval";
  EXPECT_EQ(bridge_->parkedRuns(), 0u);
  EXPECT_EQ(bridge_->activeRuns(), 0u);
}

}  // namespace
}  // namespace agentwire::agents

namespace agentwire::agents {
namespace {

// Stops sent at any moment of a run's life, parking included (a stop that lands while the run is
// being parked, before its approval is stored, must still end it). Every run ends exactly once, and
// nothing is left parked or counted.
TEST_F(BridgeTest, StopsRacingParkingEndEveryRunOnce) {
  startWith({.workers = 2, .max_queue = 1000, .max_queued_per_user = 100, .approval_required_tools = {"calculator"}});
  auto c = connect("sid");
  constexpr int kRuns = 40;
  std::vector<UserContext> runs;
  for (int i = 0; i < kRuns; ++i) {
    runs.push_back(newRun("sid"));
    ASSERT_TRUE(bridge_->startRun(runs.back(), "x", "scripted").ok());
    // From at once to well after parking: some stops find the run queued, executing, being parked, parked.
    std::this_thread::sleep_for(std::chrono::microseconds(37 * (i % 16)));
    (void)bridge_->stopRun("sid", runs.back().run_id);
  }
  for (const auto& r : runs) ASSERT_TRUE(waitForEnd(*c, r.run_id)) << r.run_id;
  delivery_.flush();
  for (const auto& r : runs) {
    auto frames = runFrames(*c, r.run_id);
    EXPECT_EQ(checkInvariants(frames), "agent_stopped") << r.run_id;
    int requested = 0, resolved = 0;
    for (const auto& f : frames) {
      requested += f.at("type").as_string() == "tool_approval_requested";
      resolved += f.at("type").as_string() == "tool_approval_resolved";
    }
    EXPECT_EQ(requested, resolved) << "a run that parked has its approval resolved (expired) before it ends";
  }
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (bridge_->activeRuns() > 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  EXPECT_EQ(bridge_->parkedRuns(), 0u);
  EXPECT_EQ(bridge_->activeRuns(), 0u);
}

}  // namespace
}  // namespace agentwire::agents
