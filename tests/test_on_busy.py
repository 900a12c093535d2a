"""Double-texting through the real binary: what a message does while its thread has a run in flight
(`on_busy`: enqueue, reject, interrupt; a thread's default from create_thread), and why a run stopped."""
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402
import wsclient  # noqa: E402
from wsclient import Client  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
# Emits agent_thinking, then waits until it is stopped: a run that keeps its thread busy.
HANG_AGENT = f"agents.process_command=/usr/bin/python3 {HERE}/agents/hang_after_thinking.py"
TERMINAL = ("agent_completed", "agent_error", "agent_stopped")


def seq_of(frames, run_id, type_):
    return next((f["seq"] for f in frames if f.get("run_id") == run_id and f["type"] == type_), None)


class OnBusyTest(unittest.IsolatedAsyncioTestCase):
    @classmethod
    def setUpClass(cls):
        cls.srv = harness.Server("--set", HANG_AGENT, "--set", "agents.workers=4",
                                 "--set", "agents.max_running_per_user=4").start()

    @classmethod
    def tearDownClass(cls):
        cls.srv.stop()

    async def connect(self, user):
        return await Client.connect(self.srv.port, wsclient.dev_token(self.srv.port, user))

    async def busy_thread(self, c, **thread):
        """A thread of c's user with a run that hangs after agent_thinking; returns (thread_id, run_id)."""
        t = await c.request("create_thread", thread, id_="t", want="thread_created")
        self.assertEqual(t["type"], "thread_created", t)
        first = await c.request("user_message", {"content": "first", "agent": "process",
                                                 "thread_id": t["data"]["thread_id"]}, id_="m1", want="ack")
        self.assertEqual(first["type"], "ack", first)
        run = first["data"]["run_id"]
        await c.recv_until(lambda f: f["type"] == "agent_thinking" and f.get("run_id") == run)
        return t["data"]["thread_id"], run

    async def end_of(self, c, run_id):
        # first(): a run can end before the reply to the request that ended it (stop_agent) arrives.
        return await c.first(lambda f: f["type"] in TERMINAL and f.get("run_id") == run_id)

    async def test_enqueue_waits_and_interrupt_stops_the_earlier_runs_in_order(self):
        c = await self.connect("olga")
        thread, first = await self.busy_thread(c)
        queued = await c.request("user_message", {"content": "second", "agent": "process", "thread_id": thread},
                                 id_="m2", want="ack")
        self.assertEqual(queued["type"], "ack", "enqueue (the default) accepts a message on a busy thread")
        takeover = await c.request("user_message", {"content": "third", "thread_id": thread, "on_busy": "interrupt"},
                                   id_="m3", want="ack")
        self.assertEqual(takeover["type"], "ack", takeover)
        ends = {r: await self.end_of(c, r) for r in (first, queued["data"]["run_id"], takeover["data"]["run_id"])}
        for r in (first, queued["data"]["run_id"]):
            self.assertEqual((ends[r]["type"], ends[r]["data"]["reason"]), ("agent_stopped", "interrupted"))
        self.assertEqual(ends[takeover["data"]["run_id"]]["type"], "agent_completed")
        # Never overlapping: each run started after the one before it on the thread ended.
        f = c.frames
        self.assertGreater(seq_of(f, queued["data"]["run_id"], "agent_started"), seq_of(f, first, "agent_stopped"))
        self.assertGreater(seq_of(f, takeover["data"]["run_id"], "agent_started"),
                           seq_of(f, queued["data"]["run_id"], "agent_stopped"))
        await c.close()

    async def test_reject_answers_thread_busy_and_stores_nothing(self):
        c = await self.connect("pia")
        thread, first = await self.busy_thread(c)
        refused = await c.request("user_message", {"content": "not now", "thread_id": thread, "on_busy": "reject"},
                                  id_="m2", want="ack")
        self.assertEqual((refused["type"], refused["data"]["code"]), ("error", "thread_busy"), refused)
        token = wsclient.dev_token(self.srv.port, "pia")
        status, body, _ = self.srv.request("POST", f"/api/threads/{thread}/messages",
                                           {"content": "nor now", "on_busy": "reject"},
                                           {"Authorization": f"Bearer {token}"})
        self.assertEqual((status, body["error"]["code"]), (409, "thread_busy"), body)
        history = await c.request("get_thread_history", {"thread_id": thread}, id_="h", want="thread_history")
        self.assertEqual([m["content"] for m in history["data"]["messages"]], ["first"])
        # Another thread of the same user is not busy.
        other = await c.request("user_message", {"content": "elsewhere", "on_busy": "reject"}, id_="m3", want="ack")
        self.assertEqual(other["type"], "ack", other)
        stop = await c.request("stop_agent", {"run_id": first}, id_="s", want="stop_requested")
        self.assertEqual(stop["type"], "stop_requested", stop)
        end = await self.end_of(c, first)
        self.assertEqual((end["type"], end["data"]["reason"]), ("agent_stopped", "requested"))
        again = await c.request("user_message", {"content": "now", "thread_id": thread, "on_busy": "reject"},
                                id_="m4", want="ack")
        self.assertEqual(again["type"], "ack", ("the thread takes a rejecting message once its run ended", again))
        await c.close()

    async def test_a_threads_default_applies_to_messages_that_give_none(self):
        c = await self.connect("quin")
        thread, first = await self.busy_thread(c, on_busy="reject")
        self.assertEqual(c.frames[[f.get("id") for f in c.frames].index("t")]["data"]["on_busy"], "reject")
        refused = await c.request("user_message", {"content": "default", "thread_id": thread}, id_="m2", want="ack")
        self.assertEqual(refused["data"].get("code"), "thread_busy", refused)
        # The message's own policy wins over the thread's.
        queued = await c.request("user_message", {"content": "mine", "thread_id": thread, "on_busy": "enqueue"},
                                 id_="m3", want="ack")
        self.assertEqual(queued["type"], "ack", queued)
        await c.request("stop_agent", {"run_id": first}, id_="s", want="stop_requested")
        end = await self.end_of(c, queued["data"]["run_id"])
        self.assertEqual(end["type"], "agent_completed")
        listed = await c.request("list_threads", {}, id_="l", want="threads")
        self.assertEqual(next(t for t in listed["data"]["threads"] if t["thread_id"] == thread)["on_busy"], "reject")
        await c.close()

    async def test_an_unknown_policy_is_invalid_field(self):
        c = await self.connect("rae")
        for type_, data in (("user_message", {"content": "x", "on_busy": "queue"}),
                            ("create_thread", {"on_busy": 3})):
            f = await c.request(type_, data, id_="bad")
            self.assertEqual((f["type"], f["data"]["code"]), ("error", "invalid_field"), f)
        pong = await c.request("ping", {}, id_="p")
        self.assertEqual(pong["type"], "pong")
        await c.close()


if __name__ == "__main__":
    unittest.main()
