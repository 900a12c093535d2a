"""The llm agent against a local fake OpenAI-compatible server: streaming, a two-step tool loop,
upstream 500, an upstream stall, a malformed stream, a tool call that needs approval (the model is
not asked again when the run takes up). Through the real binary and a real client."""
import asyncio
import json
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402
import wsclient  # noqa: E402
import fake_openai  # noqa: E402
from fake_openai import FakeOpenAI  # noqa: E402
from wsclient import Client  # noqa: E402

TERMINAL = ("agent_completed", "agent_error", "agent_stopped")


class LlmAgentTest(unittest.IsolatedAsyncioTestCase):
    @classmethod
    def setUpClass(cls):
        cls.fake = FakeOpenAI()
        cls.srv = harness.Server("--set", f"agents.llm_base_url=http://127.0.0.1:{cls.fake.port}/v1",
                                 "--set", "agents.llm_api_key=sk-test", "--set", "agents.llm_model=fake-model",
                                 "--set", "agents.llm_idle_timeout_ms=1000").start()

    @classmethod
    def tearDownClass(cls):
        cls.srv.stop()
        cls.fake.close()

    async def run_llm(self, prompt):
        c = await Client.connect(self.srv.port, wsclient.dev_token(self.srv.port, "llm_user"))
        ack = await c.request("user_message", {"content": prompt, "agent": "llm"}, id_="m", want="ack")
        self.assertEqual(ack["type"], "ack", ack)
        run_id = ack["data"]["run_id"]
        await c.recv_until(lambda f: f.get("run_id") == run_id and f["type"] in TERMINAL, timeout=20)
        await c.close()
        events = [f for f in c.events() if f.get("run_id") == run_id]
        # Invariants: agent_started first, one terminal last, each tool_completed after its tool_executing.
        self.assertEqual(events[0]["type"], "agent_started")
        self.assertEqual(sum(1 for e in events if e["type"] in TERMINAL), 1)
        self.assertIn(events[-1]["type"], TERMINAL)
        opened = set()
        for e in events:
            if e["type"] == "tool_executing":
                opened.add(e["data"]["tool_call_id"])
            if e["type"] == "tool_completed":
                self.assertIn(e["data"]["tool_call_id"], opened)
        return events

    async def test_streamed_tokens_become_chunks(self):
        events = await self.run_llm("stream")
        chunks = [e["data"]["delta"] for e in events if e["type"] == "agent_response_chunk"]
        # Four tokens, rolled up into fewer chunks when they arrive within agents.chunk_window_ms.
        self.assertEqual("".join(chunks), "Hello from the model")
        self.assertLessEqual(len(chunks), 4)
        self.assertTrue(all(c for c in chunks), "empty deltas are not forwarded")
        self.assertEqual(events[-1]["type"], "agent_completed")
        self.assertEqual(events[-1]["data"]["content"], "Hello from the model")
        req = self.fake.requests[-1]
        self.assertEqual(req["headers"]["Authorization"], "Bearer sk-test")
        self.assertEqual(req["body"]["model"], "fake-model")
        self.assertTrue(req["body"]["stream"])
        self.assertIn("calculator", [t["function"]["name"] for t in req["body"]["tools"]])

    async def test_two_step_tool_loop(self):
        before = len(self.fake.requests)
        events = await self.run_llm("tool")
        ex = [e for e in events if e["type"] == "tool_executing"]
        done = [e for e in events if e["type"] == "tool_completed"]
        self.assertEqual(len(ex), 1)
        self.assertEqual(ex[0]["data"]["tool_call_id"], "call_1")
        self.assertEqual(ex[0]["data"]["tool_name"], "calculator")
        self.assertEqual(ex[0]["data"]["args"], {"op": "mul", "a": 6, "b": 7})
        self.assertEqual(done[0]["data"]["result"], {"value": 42.0})
        self.assertEqual(events[-1]["data"]["content"], "The answer is 42")
        second = self.fake.requests[before + 1]["body"]["messages"]
        self.assertEqual(second[-1]["role"], "tool")
        self.assertEqual(second[-1]["tool_call_id"], "call_1")
        self.assertEqual(second[-2]["tool_calls"][0]["function"]["arguments"], '{"op":"mul","a":6,"b":7}')

    async def test_upstream_500_is_agent_error_with_the_status(self):
        events = await self.run_llm("fail500")
        self.assertEqual(events[-1]["type"], "agent_error")
        self.assertEqual(events[-1]["data"]["code"], "upstream_error")
        self.assertIn("HTTP 500", events[-1]["data"]["message"])
        self.assertIn("model overloaded", events[-1]["data"]["message"])

    async def test_upstream_stall_is_agent_error_timeout(self):
        t0 = time.time()
        events = await self.run_llm("stall")
        self.assertEqual(events[-1]["type"], "agent_error")
        self.assertEqual(events[-1]["data"]["code"], "upstream_timeout")
        self.assertLess(time.time() - t0, 6, "the stall was not cut at the idle timeout")

    async def test_agent_chosen_per_thread(self):
        c = await Client.connect(self.srv.port, wsclient.dev_token(self.srv.port, "thread_agent"))
        bad = await c.request("create_thread", {"title": "t", "agent": "nope"}, id_="t0")
        self.assertEqual(bad["data"]["code"], "unknown_agent")
        t = await c.request("create_thread", {"title": "llm thread", "agent": "llm"}, id_="t1", want="thread_created")
        self.assertEqual(t["data"]["agent"], "llm")
        ack = await c.request("user_message", {"thread_id": t["data"]["thread_id"], "content": "stream"}, id_="m1",
                              want="ack")
        started = await c.recv_until(lambda f: f["type"] == "agent_started" and f["run_id"] == ack["data"]["run_id"])
        self.assertEqual(started["data"]["agent_name"], "llm", "the thread's agent was not used")
        await c.recv_until(lambda f: f["type"] in TERMINAL and f["run_id"] == ack["data"]["run_id"])
        # A message may still pick another agent explicitly.
        ack = await c.request("user_message", {"thread_id": t["data"]["thread_id"], "content": "x", "agent": "echo"},
                              id_="m2", want="ack")
        started = await c.recv_until(lambda f: f["type"] == "agent_started" and f["run_id"] == ack["data"]["run_id"])
        self.assertEqual(started["data"]["agent_name"], "echo")
        await c.close()

    async def test_malformed_stream_is_agent_error_protocol(self):
        events = await self.run_llm("garbage")
        self.assertEqual(events[-1]["data"]["code"], "upstream_protocol")

class LlmApprovalTest(unittest.IsolatedAsyncioTestCase):
    # Each call of the fake model costs PROMPT + COMPLETION tokens; the "tool" prompt makes two calls,
    # one before the approval and one after. The budget lets one such run through and not a second.
    BUDGET = 30

    def setUp(self):
        self.fake = FakeOpenAI()
        self.args = ("--set", f"agents.llm_base_url=http://127.0.0.1:{self.fake.port}/v1",
                     "--set", "agents.default=llm", "--set", "agents.approval_required_tools=calculator",
                     "--set", f"agents.user_daily_token_budget={self.BUDGET}")
        self.srv = harness.Server(*self.args).start()

    def tearDown(self):
        self.srv.stop()
        self.fake.close()

    def tokens(self, calls):
        """The tokens counted by this process, once it has counted `calls` model calls' worth (a run's are
        counted just after its last event is sent). More than that, a call counted twice, fails the check
        that follows."""
        def read():
            _, text = self.srv.get("/metrics")
            samples = harness.metric_samples(text, "agentwire_agent_tokens_total")
            return (samples.get(frozenset({("agent", "llm"), ("kind", "input")}), 0),
                    samples.get(frozenset({("agent", "llm"), ("kind", "output")}), 0))
        harness.wait_for(lambda: read()[0] >= calls * fake_openai.PROMPT_TOKENS, timeout=10,
                         what=f"{calls} model calls counted")
        return read()

    async def park(self, c):
        ack = await c.request("user_message", {"content": "tool"}, id_="m", want="ack")
        run = ack["data"]["run_id"]
        req = await c.recv_until(lambda f: f.get("run_id") == run and f["type"] in ("tool_approval_requested",
                                                                                     *TERMINAL))
        self.assertEqual(req["type"], "tool_approval_requested", req)
        return run, req

    async def assert_budget_spent_with(self, c, used):
        refused = await c.request("user_message", {"content": "stream"}, id_="over")
        self.assertEqual((refused["type"], refused["data"]["code"]), ("error", "quota_exceeded"), refused)
        self.assertIn(f"({used} used", refused["data"]["message"])

    async def run_with(self, decision):
        c = await Client.connect(self.srv.port, wsclient.dev_token(self.srv.port, "ll"))
        run, req = await self.park(c)
        self.assertEqual((req["data"]["tool_call_id"], req["data"]["tool_name"]), ("call_1", "calculator"))
        self.assertEqual(req["data"]["args"], {"op": "mul", "a": 6, "b": 7})
        self.assertEqual(len(self.fake.requests), 1)
        ok = await c.request("approve_tool", {"approval_id": req["data"]["approval_id"], "decision": decision,
                                              "reason": "no maths today"}, id_="a", want="approval_recorded")
        self.assertEqual(ok["type"], "approval_recorded", ok)
        # The run may end before the answer's reply is read.
        done = await c.first(lambda f: f.get("run_id") == run and f["type"] in TERMINAL)
        # The first completion was recorded: taking up again asks the model only for the next step.
        self.assertEqual(len(self.fake.requests), 2, [r["body"]["messages"] for r in self.fake.requests])
        events = [f for f in c.events() if f.get("run_id") == run]
        self.assertEqual([e["type"] for e in events].count("agent_thinking"), 1)
        # Both calls counted once: the first when the run parked, the second (not the replayed first) at its end.
        per_call = fake_openai.PROMPT_TOKENS + fake_openai.COMPLETION_TOKENS
        self.assertEqual(done["data"]["usage"], {"input_tokens": 2 * fake_openai.PROMPT_TOKENS,
                                                 "output_tokens": 2 * fake_openai.COMPLETION_TOKENS})
        self.assertEqual(self.tokens(2), (2 * fake_openai.PROMPT_TOKENS, 2 * fake_openai.COMPLETION_TOKENS))
        await self.assert_budget_spent_with(c, 2 * per_call)
        await c.close()
        return done, self.fake.requests[1]["body"]["messages"], events

    async def test_approved_the_tool_runs_and_the_model_answers_with_its_result(self):
        done, messages, events = await self.run_with("approve")
        self.assertEqual((done["type"], done["data"]["content"]), ("agent_completed", "The answer is 42"))
        self.assertEqual(messages[-1], {"role": "tool", "tool_call_id": "call_1", "content": '{"value":4.2E1}'})
        self.assertEqual([e["type"] for e in events].count("tool_executing"), 1)

    async def test_denied_the_model_sees_the_denial(self):
        done, messages, events = await self.run_with("deny")
        self.assertEqual(done["type"], "agent_completed", done)
        self.assertIn("denied", done["data"]["content"])
        self.assertIn("no maths today", json.loads(messages[-1]["content"])["error"])
        self.assertFalse(any(e["type"] == "tool_executing" for e in events))

    async def test_a_parked_run_that_is_stopped_has_its_tokens_counted(self):
        # Counted when it parked: it never asks the model again, and the budget sees what it spent.
        c = await Client.connect(self.srv.port, wsclient.dev_token(self.srv.port, "ll"))
        run, _ = await self.park(c)
        stop = await c.request("stop_agent", {"run_id": run}, id_="s", want="stop_requested")
        self.assertEqual(stop["type"], "stop_requested", stop)
        done = await c.first(lambda f: f.get("run_id") == run and f["type"] in TERMINAL)
        self.assertEqual(done["type"], "agent_stopped", done)
        self.assertEqual(self.tokens(1), (fake_openai.PROMPT_TOKENS, fake_openai.COMPLETION_TOKENS))
        # 24 of 30 spent: the next run is admitted (and spends 24 more), the one after is refused.
        ack = await c.request("user_message", {"content": "stream"}, id_="m2", want="ack")
        run2 = ack["data"]["run_id"]
        await c.first(lambda f: f.get("run_id") == run2 and f["type"] in TERMINAL)
        self.tokens(2)
        await self.assert_budget_spent_with(c, 2 * (fake_openai.PROMPT_TOKENS + fake_openai.COMPLETION_TOKENS))
        await c.close()

    async def test_a_run_taken_up_after_a_restart_counts_only_its_new_calls(self):
        c = await Client.connect(self.srv.port, wsclient.dev_token(self.srv.port, "ll"))
        run, req = await self.park(c)
        await c.close()
        self.srv.stop()
        self.srv = harness.Server(*self.args, data_dir=self.srv.dir).start()
        c = await Client.connect(self.srv.port, wsclient.dev_token(self.srv.port, "ll"))
        ok = await c.request("approve_tool", {"approval_id": req["data"]["approval_id"], "decision": "approve"},
                             id_="a", want="approval_recorded")
        self.assertEqual(ok["type"], "approval_recorded", ok)
        done = await c.first(lambda f: f.get("run_id") == run and f["type"] in TERMINAL)
        self.assertEqual((done["type"], done["data"]["content"]), ("agent_completed", "The answer is 42"), done)
        self.assertEqual(done["data"]["usage"]["input_tokens"], 2 * fake_openai.PROMPT_TOKENS)
        # This process made one call of the two; the store has both, once each.
        self.assertEqual(self.tokens(1), (fake_openai.PROMPT_TOKENS, fake_openai.COMPLETION_TOKENS))
        await self.assert_budget_spent_with(c, 2 * (fake_openai.PROMPT_TOKENS + fake_openai.COMPLETION_TOKENS))
        await c.close()


if __name__ == "__main__":
    unittest.main()
