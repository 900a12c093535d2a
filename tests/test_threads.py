"""Renaming and deleting threads through the real binary, over WebSocket (rename_thread,
delete_thread) and HTTP (PATCH and DELETE /api/threads/{id}): the user's other connections get
thread_renamed / thread_deleted in their stream, a thread with a run in progress is not deleted,
a deleted thread's messages and runs are gone while its events stay in the stream, and another
user's thread cannot be touched."""
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402
import wsclient  # noqa: E402
from test_runs import HANG_AGENT, TERMINAL  # noqa: E402  (the agent that streams, then waits to be stopped)
from wsclient import Client  # noqa: E402


class ThreadEditingTest(unittest.IsolatedAsyncioTestCase):
    @classmethod
    def setUpClass(cls):
        cls.srv = harness.Server("--set", HANG_AGENT).start()

    @classmethod
    def tearDownClass(cls):
        cls.srv.stop()

    def token(self, user):
        return wsclient.dev_token(self.srv.port, user)

    def http(self, method, path, user, body=None):
        status, reply, _ = self.srv.request(method, path, body, headers={"Authorization": f"Bearer {self.token(user)}"})
        return status, reply

    async def connect(self, user):
        c = await Client.connect(self.srv.port, self.token(user))
        await c.request("ping", id_="live", want="pong")  # live from here on
        return c

    async def thread_with_answer(self, c, content):
        ack = (await c.request("user_message", {"content": content}, id_=content, want="ack"))["data"]
        await c.first(lambda f: f["type"] in TERMINAL and f.get("run_id") == ack["run_id"])
        return ack["thread_id"]

    async def test_a_rename_reaches_every_connection_of_the_user(self):
        c = await self.connect("rita")
        other = await self.connect("rita")
        thread = await self.thread_with_answer(c, "first words")
        r = await c.request("rename_thread", {"thread_id": thread, "title": "Trip plans"}, id_="r",
                            want="thread_renamed")
        self.assertEqual((r["type"], r["data"]), ("thread_renamed", {"thread_id": thread, "title": "Trip plans"}))
        ev = await other.first(lambda f: f["type"] == "thread_renamed" and "seq" in f)
        self.assertEqual((ev["thread_id"], ev["data"]["title"]), (thread, "Trip plans"))
        listed = await c.request("list_threads", {}, id_="l", want="threads")
        self.assertEqual([(t["thread_id"], t["title"]) for t in listed["data"]["threads"]], [(thread, "Trip plans")])

        status, body = self.http("PATCH", f"/api/threads/{thread}", "rita", {"title": "Été \"2027\""})
        self.assertEqual((status, body), (200, {"thread_id": thread, "title": "Été \"2027\""}))
        ev = await other.first(lambda f: f["type"] == "thread_renamed" and f["data"]["title"] == "Été \"2027\"")
        self.assertGreater(ev["seq"], 0)
        # The history is untouched.
        h = await c.request("get_thread_history", {"thread_id": thread}, id_="h", want="thread_history")
        self.assertEqual(h["data"]["messages"][0]["content"], "first words")
        await c.close()
        await other.close()

    async def test_bad_renames_get_their_error_codes(self):
        c = await self.connect("rob")
        thread = await self.thread_with_answer(c, "mine")
        cases = [
            ({"thread_id": thread}, "missing_field"),
            ({"thread_id": thread, "title": ""}, "missing_field"),
            ({"thread_id": thread, "title": 7}, "invalid_field"),
            ({"thread_id": thread, "title": "x" * 201}, "invalid_field"),
            ({"thread_id": thread, "title": "a\u0000b"}, "invalid_field"),
            ({"title": "t"}, "missing_field"),
            ({"thread_id": "thr_nonexistent", "title": "t"}, "thread_not_found"),
        ]
        for i, (data, code) in enumerate(cases):
            r = await c.request("rename_thread", data, id_=f"b{i}", want="thread_renamed")
            self.assertEqual((r["type"], r["data"]["code"]), ("error", code), data)
        status, body = self.http("PATCH", f"/api/threads/{thread}", "mallory", {"title": "mine now"})
        self.assertEqual((status, body["error"]["code"]), (403, "forbidden"))
        status, body = self.http("PATCH", f"/api/threads/{thread}", "rob", {"title": "x" * 201})
        self.assertEqual((status, body["error"]["code"]), (400, "invalid_field"))
        status, body = self.http("PATCH", "/api/threads/thr_nonexistent", "rob", {"title": "t"})
        self.assertEqual((status, body["error"]["code"]), (404, "thread_not_found"))
        listed = await c.request("list_threads", {}, id_="l", want="threads")
        self.assertEqual([t["title"] for t in listed["data"]["threads"]], ["mine"], "nothing renamed")
        await c.close()

    async def test_a_thread_is_deleted_only_when_no_run_is_in_progress(self):
        c = await self.connect("dina")
        other = await self.connect("dina")
        thread = await self.thread_with_answer(c, "keep the answer")
        # Sent right behind the message, before its ack: the run is counted from submission.
        await c.send("user_message", {"content": "hang", "agent": "process", "thread_id": thread}, "m")
        busy = await c.request("delete_thread", {"thread_id": thread}, id_="d1", want="thread_deleted")
        self.assertEqual((busy["type"], busy["data"]["code"]), ("error", "thread_busy"), busy)
        run = (await c.first(lambda f: f.get("id") == "m"))["data"]["run_id"]
        await c.first(lambda f: f["type"] == "agent_response_chunk" and f.get("run_id") == run)
        status, body = self.http("DELETE", f"/api/threads/{thread}", "dina")
        self.assertEqual((status, body["error"]["code"]), (409, "thread_busy"))
        h = await c.request("get_thread_history", {"thread_id": thread}, id_="h1", want="thread_history")
        self.assertEqual(len(h["data"]["messages"]), 3, "nothing removed: two messages and an answer")

        await c.request("stop_agent", {"run_id": run}, id_="s", want="stop_requested")
        await c.first(lambda f: f["type"] in TERMINAL and f.get("run_id") == run)
        status, body = self.http("DELETE", f"/api/threads/{thread}", "mallory")
        self.assertEqual((status, body["error"]["code"]), (403, "forbidden"))
        status, body = self.http("DELETE", f"/api/threads/{thread}", "dina")
        self.assertEqual((status, body), (200, {"thread_id": thread}))
        gone = await other.first(lambda f: f["type"] == "thread_deleted" and "seq" in f)
        self.assertEqual(gone["thread_id"], thread)

        # Messages and runs are gone; the thread cannot be used; its events stay in the stream.
        for i, (type_, data) in enumerate([
                ("get_thread_history", {"thread_id": thread}),
                ("list_runs", {"thread_id": thread}),
                ("user_message", {"content": "again", "thread_id": thread}),
                ("rename_thread", {"thread_id": thread, "title": "t"}),
                ("delete_thread", {"thread_id": thread})]):
            r = await c.request(type_, data, id_=f"g{i}", want="none")
            self.assertEqual((r["type"], r["data"]["code"]), ("error", "thread_not_found"), type_)
        status, body = self.http("DELETE", f"/api/threads/{thread}", "dina")
        self.assertEqual((status, body["error"]["code"]), (404, "thread_not_found"))
        listed = await c.request("list_threads", {}, id_="l", want="threads")
        self.assertEqual(listed["data"]["threads"], [])
        reader = await Client.connect(self.srv.port, self.token("dina"))
        await reader.request("resume", {"last_seq": 0, "epoch": other.established["epoch"]}, id_="r",
                             want="resume_complete")
        events = reader.events()
        self.assertEqual([e["seq"] for e in events], list(range(1, len(events) + 1)), "no gap, nothing reused")
        self.assertEqual(events[-1]["type"], "thread_deleted")
        self.assertIn("agent_completed", [e["type"] for e in events if e["thread_id"] == thread])
        for conn in (c, other, reader):
            await conn.close()


if __name__ == "__main__":
    unittest.main()
