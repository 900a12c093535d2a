"""Named agents ([[agents.defs]]) through the real binary: GET /api/agents and list_agents; an
Anthropic-compatible agent against a fake Messages API server that streams the documented events
(text, a tool loop with tool_use / tool_result, max_tokens, an error event, HTTP 529); an
OpenAI-compatible agent limited to one tool (a call of another is refused with tool_not_allowed and
the model is told); token usage and finish_reason in agent_completed and in the metrics."""
import asyncio
import json
import os
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import fake_anthropic  # noqa: E402
import fake_openai  # noqa: E402
import harness  # noqa: E402
import wsclient  # noqa: E402
from fake_anthropic import FakeAnthropic  # noqa: E402
from fake_openai import FakeOpenAI  # noqa: E402
from wsclient import Client  # noqa: E402

TERMINAL = ("agent_completed", "agent_error", "agent_stopped")
EXAMPLES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "examples")


def config(dir_, openai_port, anthropic_port, extra=""):
    path = os.path.join(dir_, "agents.toml")
    with open(path, "w") as f:
        f.write(extra + f"""
[[agents.defs]]
name = "claude"
kind = "llm"
provider = "anthropic"
description = "Claude, through the Messages API"
base_url = "http://127.0.0.1:{anthropic_port}/v1"
api_key_env = "AW_TEST_ANTHROPIC_KEY"
model = "claude-test"
system_prompt = "Be brief."
max_tokens = 256

[[agents.defs]]
name = "gpt"
kind = "llm"
description = "A calculator-only model"
base_url = "http://127.0.0.1:{openai_port}/v1"
api_key = "sk-gpt"
model = "gpt-test"
temperature = 0.2
tools = ["calculator"]
max_steps = 3

[[agents.defs]]
name = "greeter"
kind = "echo"
description = "Says it back"

[[agents.defs]]
name = "tooled"
kind = "process"
command = "/usr/bin/python3 {EXAMPLES}/process_agent_tools.py"
tools = ["calculator", "word_count"]
""")
    return path


class AgentDefsTest(unittest.IsolatedAsyncioTestCase):
    @classmethod
    def setUpClass(cls):
        cls.openai = FakeOpenAI()
        cls.anthropic = FakeAnthropic()
        os.makedirs(harness.TMP_ROOT, exist_ok=True)
        dir_ = tempfile.mkdtemp(prefix="aw-defs-", dir=harness.TMP_ROOT)
        cls.srv = harness.Server("--config", config(dir_, cls.openai.port, cls.anthropic.port),
                                 env={"AW_TEST_ANTHROPIC_KEY": "sk-ant-test"}).start()

    @classmethod
    def tearDownClass(cls):
        cls.srv.stop()
        cls.openai.close()
        cls.anthropic.close()

    async def run_agent(self, agent, prompt, user="defs_user"):
        c = await Client.connect(self.srv.port, wsclient.dev_token(self.srv.port, user))
        ack = await c.request("user_message", {"content": prompt, "agent": agent}, id_="m", want="ack")
        self.assertEqual(ack["type"], "ack", ack)
        run_id = ack["data"]["run_id"]
        await c.recv_until(lambda f: f.get("run_id") == run_id and f["type"] in TERMINAL, timeout=20)
        await c.close()
        events = [f for f in c.events() if f.get("run_id") == run_id]
        self.assertEqual(events[0]["type"], "agent_started")
        self.assertEqual(events[0]["data"]["agent_name"], agent)
        self.assertEqual(sum(1 for e in events if e["type"] in TERMINAL), 1)
        return events

    def test_the_agents_a_user_may_pick_are_listed(self):
        token = wsclient.dev_token(self.srv.port, "lister")
        status, body, _ = self.srv.request("GET", "/api/agents", headers={"Authorization": f"Bearer {token}"})
        self.assertEqual(status, 200, body)
        self.assertEqual(body["default"], "echo")
        agents = {a["name"]: a for a in body["agents"]}
        self.assertEqual(sorted(agents), ["claude", "echo", "gpt", "greeter", "tooled"])
        self.assertEqual((agents["tooled"]["kind"], agents["tooled"]["tools"]), ("process", ["calculator", "word_count"]))
        self.assertEqual((agents["claude"]["kind"], agents["claude"]["provider"], agents["claude"]["model"]),
                         ("llm", "anthropic", "claude-test"))
        self.assertEqual(agents["claude"]["description"], "Claude, through the Messages API")
        self.assertIn("calculator", agents["claude"]["tools"], "no tools list: every tool")
        self.assertEqual(agents["gpt"]["tools"], ["calculator"])
        self.assertEqual((agents["greeter"]["kind"], agents["greeter"]["tools"]), ("echo", ["word_count"]))
        for a in agents.values():
            self.assertNotIn("api_key", a)
            self.assertNotIn("base_url", a)
        status, _, _ = self.srv.request("GET", "/api/agents")
        self.assertEqual(status, 401, "listing agents needs a token")

    async def test_list_agents_over_the_websocket(self):
        c = await Client.connect(self.srv.port, wsclient.dev_token(self.srv.port, "lister_ws"))
        reply = await c.request("list_agents", {}, id_="a", want="agents")
        await c.close()
        self.assertEqual(reply["type"], "agents", reply)
        self.assertEqual(reply["id"], "a")
        self.assertEqual({a["name"] for a in reply["data"]["agents"]}, {"claude", "echo", "gpt", "greeter", "tooled"})

    async def test_a_named_echo_agent_and_a_thread_bound_to_a_named_agent(self):
        events = await self.run_agent("greeter", "hello there")
        self.assertEqual(events[-1]["type"], "agent_completed")
        self.assertEqual(events[-1]["data"]["finish_reason"], "stop")
        self.assertNotIn("usage", events[-1]["data"], "an agent without a model reports no usage")
        c = await Client.connect(self.srv.port, wsclient.dev_token(self.srv.port, "bound"))
        t = await c.request("create_thread", {"title": "c", "agent": "claude"}, id_="t", want="thread_created")
        self.assertEqual(t["data"]["agent"], "claude")
        ack = await c.request("user_message", {"thread_id": t["data"]["thread_id"], "content": "stream"}, id_="m",
                              want="ack")
        run_id = ack["data"]["run_id"]
        done = await c.recv_until(lambda f: f.get("run_id") == run_id and f["type"] in TERMINAL, timeout=20)
        await c.close()
        self.assertEqual(done["data"]["content"], "Hello from Claude")

    async def test_anthropic_streaming_usage_and_headers(self):
        before = len(self.anthropic.requests)
        events = await self.run_agent("claude", "stream")
        chunks = "".join(e["data"]["delta"] for e in events if e["type"] == "agent_response_chunk")
        self.assertEqual(chunks, "Hello from Claude")
        done = events[-1]
        self.assertEqual(done["type"], "agent_completed", done)
        self.assertEqual(done["data"]["content"], "Hello from Claude")
        self.assertEqual(done["data"]["finish_reason"], "stop")
        self.assertEqual(done["data"]["usage"], {"input_tokens": fake_anthropic.INPUT_TOKENS + fake_anthropic.CACHE_READ,
                                                 "output_tokens": fake_anthropic.OUTPUT_TOKENS})
        req = self.anthropic.requests[before]
        self.assertEqual(req["headers"]["x-api-key"], "sk-ant-test", "the key came from api_key_env")
        self.assertEqual(req["headers"]["anthropic-version"], "2023-06-01")
        self.assertNotIn("Authorization", req["headers"])
        body = req["body"]
        self.assertEqual((body["model"], body["system"], body["max_tokens"], body["stream"]),
                         ("claude-test", "Be brief.", 256, True))
        self.assertEqual(body["messages"], [{"role": "user", "content": "stream"}])
        calc = next(t for t in body["tools"] if t["name"] == "calculator")
        self.assertEqual(calc["input_schema"]["type"], "object")

    async def test_anthropic_tool_use_loop(self):
        before = len(self.anthropic.requests)
        events = await self.run_agent("claude", "tool")
        ex = [e for e in events if e["type"] == "tool_executing"]
        done = [e for e in events if e["type"] == "tool_completed"]
        self.assertEqual(len(ex), 1)
        self.assertEqual((ex[0]["data"]["tool_call_id"], ex[0]["data"]["tool_name"], ex[0]["data"]["args"]),
                         ("toolu_1", "calculator", {"op": "mul", "a": 6, "b": 7}))
        self.assertEqual(done[0]["data"]["result"], {"value": 42.0})
        last = events[-1]
        self.assertEqual(last["data"]["content"], "The answer is 42")
        self.assertEqual(last["data"]["finish_reason"], "stop")
        per_call = fake_anthropic.INPUT_TOKENS + fake_anthropic.CACHE_READ
        self.assertEqual(last["data"]["usage"], {"input_tokens": 2 * per_call,
                                                 "output_tokens": 2 * fake_anthropic.OUTPUT_TOKENS},
                         "usage is summed over the run's two model calls")
        second = self.anthropic.requests[before + 1]["body"]["messages"]
        self.assertEqual([m["role"] for m in second], ["user", "assistant", "user"])
        self.assertEqual(second[1]["content"], [
            {"type": "text", "text": "Let me compute."},
            {"type": "tool_use", "id": "toolu_1", "name": "calculator", "input": {"op": "mul", "a": 6, "b": 7}}])
        result = second[2]["content"][0]
        self.assertEqual((result["type"], result["tool_use_id"], result["is_error"]), ("tool_result", "toolu_1", False))
        self.assertEqual(json.loads(result["content"]), {"value": 42.0})

    async def test_anthropic_cut_off_at_max_tokens_says_length(self):
        events = await self.run_agent("claude", "long")
        self.assertEqual(events[-1]["type"], "agent_completed")
        self.assertEqual(events[-1]["data"]["finish_reason"], "length")
        self.assertEqual(events[-1]["data"]["content"], "This answer is cut")

    async def test_anthropic_errors(self):
        events = await self.run_agent("claude", "overloaded")
        self.assertEqual(events[-1]["type"], "agent_error")
        self.assertEqual(events[-1]["data"]["code"], "upstream_error")
        self.assertIn("overloaded_error", events[-1]["data"]["message"])
        events = await self.run_agent("claude", "fail529")
        self.assertEqual(events[-1]["data"]["code"], "upstream_error")
        self.assertIn("HTTP 529", events[-1]["data"]["message"])
        events = await self.run_agent("claude", "garbage")
        self.assertEqual(events[-1]["data"]["code"], "upstream_protocol")

    async def test_openai_usage_finish_reason_and_request(self):
        before = len(self.openai.requests)
        events = await self.run_agent("gpt", "stream")
        done = events[-1]
        self.assertEqual(done["data"]["content"], "Hello from the model")
        self.assertEqual(done["data"]["finish_reason"], "stop")
        self.assertEqual(done["data"]["usage"], {"input_tokens": fake_openai.PROMPT_TOKENS,
                                                 "output_tokens": fake_openai.COMPLETION_TOKENS})
        body = self.openai.requests[before]["body"]
        self.assertEqual(body["stream_options"], {"include_usage": True})
        self.assertEqual((body["model"], body["temperature"]), ("gpt-test", 0.2))
        self.assertEqual([t["function"]["name"] for t in body["tools"]], ["calculator"], "only its allowed tools")
        events = await self.run_agent("gpt", "long")
        self.assertEqual(events[-1]["data"]["finish_reason"], "length")

    async def test_a_tool_outside_the_agents_list_is_refused_and_the_model_told(self):
        events = await self.run_agent("gpt", "call clock {}")
        completed = next(e for e in events if e["type"] == "tool_completed")
        self.assertEqual(completed["data"]["tool_name"], "clock")
        self.assertIn("may not call 'clock'", completed["data"]["result"]["error"])
        self.assertEqual(events[-1]["type"], "agent_completed")
        self.assertIn("may not call", events[-1]["data"]["content"], "the model saw the refusal")

    async def test_a_process_agent_calls_tools_over_json_lines(self):
        events = await self.run_agent("tooled", "multiply 6 7")
        types = [e["type"] for e in events]
        self.assertEqual(types, ["agent_started", "agent_thinking", "tool_executing", "tool_completed",
                                 "agent_response_chunk", "agent_completed"], types)
        self.assertIn("calculator, word_count", events[1]["data"]["reasoning"], "the run line lists its tools")
        self.assertEqual((events[2]["data"]["tool_call_id"], events[2]["data"]["tool_name"], events[2]["data"]["args"]),
                         ("c1", "calculator", {"op": "mul", "a": 6.0, "b": 7.0}))
        self.assertEqual(events[3]["data"]["result"], {"value": 42.0})
        self.assertEqual(events[-1]["data"]["content"], "6 × 7 = 42")
        # A tool outside its list: the program gets the error as its tool_result and goes on.
        events = await self.run_agent("tooled", "clock")
        self.assertEqual(events[-1]["type"], "agent_completed", events[-1])
        self.assertEqual(events[-1]["data"]["content"], "failed: tool_not_allowed: this agent may not call 'clock'")

    async def test_tokens_are_counted_by_agent(self):
        await self.run_agent("gpt", "stream", user="counted")
        _, text = self.srv.get("/metrics")
        samples = harness.metric_samples(text, "agentwire_agent_tokens_total")
        self.assertGreaterEqual(samples[frozenset({("agent", "gpt"), ("kind", "input")})], fake_openai.PROMPT_TOKENS)
        self.assertGreaterEqual(samples[frozenset({("agent", "gpt"), ("kind", "output")})],
                                fake_openai.COMPLETION_TOKENS)


class ProcessAgentApprovalTest(unittest.IsolatedAsyncioTestCase):
    """A process agent's tool call that needs approval parks the run; the program runs again from its start
    when the person answers, and gets the tool's result (or the denial) as its tool_result."""

    @classmethod
    def setUpClass(cls):
        os.makedirs(harness.TMP_ROOT, exist_ok=True)
        dir_ = tempfile.mkdtemp(prefix="aw-defs-appr-", dir=harness.TMP_ROOT)
        path = os.path.join(dir_, "a.toml")
        with open(path, "w") as f:
            f.write(f'[[agents.defs]]\nname = "tooled"\nkind = "process"\n'
                    f'command = "/usr/bin/python3 {EXAMPLES}/process_agent_tools.py"\n')
        cls.srv = harness.Server("--config", path, "--set", "agents.approval_required_tools=calculator").start()

    @classmethod
    def tearDownClass(cls):
        cls.srv.stop()

    async def test_approved_and_denied(self):
        c = await Client.connect(self.srv.port, wsclient.dev_token(self.srv.port, "asker"))
        for decision, answer in (("approve", "6 × 7 = 42"), ("deny", "no product: the user denied this tool call")):
            ack = await c.request("user_message", {"content": "multiply 6 7", "agent": "tooled"}, id_="m" + decision,
                                  want="ack")
            run_id = ack["data"]["run_id"]
            asked = await c.recv_until(lambda f: f.get("run_id") == run_id and f["type"] == "tool_approval_requested")
            self.assertEqual((asked["data"]["tool_name"], asked["data"]["args"]),
                             ("calculator", {"op": "mul", "a": 6.0, "b": 7.0}))
            reply = await c.request("approve_tool", {"approval_id": asked["data"]["approval_id"], "decision": decision},
                                    id_="a" + decision, want="approval_recorded")
            self.assertEqual(reply["type"], "approval_recorded", reply)
            # first(): the run may end before the reply to approve_tool arrives.
            done = await c.first(lambda f: f.get("run_id") == run_id and f["type"] in TERMINAL, timeout=20)
            self.assertEqual((done["type"], done["data"]["content"]), ("agent_completed", answer), done)
            events = [f["type"] for f in c.events() if f.get("run_id") == run_id]
            self.assertEqual(events.count("agent_thinking"), 1, f"the replay's events are not sent again: {events}")
            self.assertEqual(events.count("agent_started"), 1)
        await c.close()


class TokenBudgetTest(unittest.IsolatedAsyncioTestCase):
    """agents.user_daily_token_budget: every call of the fake model costs PROMPT + COMPLETION tokens."""
    PER_RUN = fake_openai.PROMPT_TOKENS + fake_openai.COMPLETION_TOKENS  # 24

    async def asyncSetUp(self):
        self.fake = FakeOpenAI()
        os.makedirs(harness.TMP_ROOT, exist_ok=True)
        self.args = ("--set", f"agents.llm_base_url=http://127.0.0.1:{self.fake.port}/v1",
                     "--set", "agents.default=llm", "--set", f"agents.user_daily_token_budget={2 * self.PER_RUN + 2}")
        self.srv = harness.Server(*self.args).start()

    async def asyncTearDown(self):
        self.srv.stop()
        self.fake.close()

    async def send(self, c, i):
        reply = await c.request("user_message", {"content": "stream"}, id_=f"m{i}")
        if reply["type"] != "ack":
            return reply
        run_id = reply["data"]["run_id"]
        return await c.recv_until(lambda f: f.get("run_id") == run_id and f["type"] in TERMINAL, timeout=20)

    async def test_runs_are_refused_once_the_days_budget_is_spent_and_other_users_go_on(self):
        c = await Client.connect(self.srv.port, wsclient.dev_token(self.srv.port, "spender"))
        for i in range(3):  # 0, 24, 48 used before each: all under 50
            done = await self.send(c, i)
            self.assertEqual(done["type"], "agent_completed", done)
        refused = await self.send(c, 3)
        self.assertEqual((refused["type"], refused["data"]["code"]), ("error", "quota_exceeded"), refused)
        self.assertIn(f"daily token budget of {2 * self.PER_RUN + 2} tokens is spent ({3 * self.PER_RUN} used",
                      refused["data"]["message"])
        self.assertIn("resets at", refused["data"]["message"])
        self.assertIn("T00:00:00Z", refused["data"]["message"])
        # Over HTTP: 429 with the same code; nothing was stored for the refused message.
        token = wsclient.dev_token(self.srv.port, "spender")
        status, body, _ = self.srv.request("POST", f"/api/threads/{done['thread_id']}/messages", {"content": "more"},
                                           headers={"Authorization": f"Bearer {token}"})
        self.assertEqual((status, body["error"]["code"]), (429, "quota_exceeded"), body)
        h = await c.request("get_thread_history", {"thread_id": done["thread_id"]}, id_="h", want="thread_history")
        self.assertEqual(sum(1 for m in h["data"]["messages"] if m["role"] == "user"), 1,
                         "a refused message is not stored")
        await c.close()
        other = await Client.connect(self.srv.port, wsclient.dev_token(self.srv.port, "frugal"))
        self.assertEqual((await self.send(other, 0))["type"], "agent_completed", "another user's budget is whole")
        await other.close()

        # The count is in the store: after a restart (nothing in memory) the next run is admitted, then
        # ended at its start with quota_exceeded, before its agent spends anything.
        self.srv.stop()
        self.srv = harness.Server(*self.args, data_dir=self.srv.dir).start()
        calls = len(self.fake.requests)
        c = await Client.connect(self.srv.port, wsclient.dev_token(self.srv.port, "spender"))
        ended = await self.send(c, 9)
        await c.close()
        self.assertEqual((ended["type"], ended["data"]["code"]), ("agent_error", "quota_exceeded"), ended)
        self.assertEqual(len(self.fake.requests), calls, "the model was not asked")


class AgentDefsConfigTest(unittest.TestCase):
    def check(self, toml, *expected):
        os.makedirs(harness.TMP_ROOT, exist_ok=True)
        dir_ = tempfile.mkdtemp(prefix="aw-defs-bad-", dir=harness.TMP_ROOT)
        path = os.path.join(dir_, "bad.toml")
        with open(path, "w") as f:
            f.write(toml)
        r = harness.run_cli("check-config", "--config", path)
        self.assertNotEqual(r.returncode, 0, r.stdout + r.stderr)
        for e in expected:
            self.assertIn(e, r.stdout + r.stderr)

    def test_bad_definitions_are_refused_with_what_is_wrong(self):
        self.check('[[agents.defs]]\nname = "x"\nkind = "robot"\n', "agent 'x'", "kind must be echo, llm or process")
        self.check('[[agents.defs]]\nname = "x"\nkind = "llm"\n', "base_url is required")
        self.check('[[agents.defs]]\nname = "echo"\nkind = "echo"\n', "the name is taken")
        self.check('[[agents.defs]]\nname = "x"\nkind = "llm"\nbase_url = "http://h/v1"\ntools = ["clok"]\n',
                   "tool 'clok'")
        self.check('[[agents.defs]]\nname = "x"\nkind = "llm"\nbase_url = "http://h/v1"\nprovider = "acme"\n',
                   "provider must be openai or anthropic")
        self.check('[[agents.defs]]\nname = "x"\nkind = "llm"\nbase_url = "http://h/v1"\n'
                   'api_key_env = "AW_SURELY_UNSET_VARIABLE"\n', "AW_SURELY_UNSET_VARIABLE")
        self.check('[[agents.defs]]\nname = "x"\nkind = "echo"\nflavour = "mint"\n', "agents.defs.flavour")


if __name__ == "__main__":
    unittest.main()
