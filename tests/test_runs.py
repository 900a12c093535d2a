"""Run state through the real binary: get_run and GET /api/runs/{id} through every state a run takes
(queued, running, stopped, completed), stop_agent answered with the run's status once it has ended,
a thread's runs listed (list_runs, GET /api/threads/{id}/runs), and another user's run not found."""
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402
import wsclient  # noqa: E402
from wsclient import Client  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
# Thinks, streams "partial answer so far", then waits until it is stopped.
HANG_AGENT = f"agents.process_command=/usr/bin/python3 {HERE}/agents/answer_then_hang.py"
TERMINAL = ("agent_completed", "agent_error", "agent_stopped")


class RunStateTest(unittest.IsolatedAsyncioTestCase):
    @classmethod
    def setUpClass(cls):
        cls.srv = harness.Server("--set", HANG_AGENT).start()

    @classmethod
    def tearDownClass(cls):
        cls.srv.stop()

    async def get_run(self, c, run_id):
        f = await c.request("get_run", {"run_id": run_id}, id_=f"g{run_id}", want="run")
        return f["data"] if f["type"] == "run" else f

    async def test_a_run_through_its_states(self):
        c = await Client.connect(self.srv.port, wsclient.dev_token(self.srv.port, "ruth"))
        first = await c.request("user_message", {"content": "hang", "agent": "process"}, id_="m1", want="ack")
        run = first["data"]["run_id"]
        thread = first["data"]["thread_id"]
        await c.recv_until(lambda f: f["type"] == "agent_response_chunk" and f.get("run_id") == run)
        # The thread keeps the first message's agent: this one names echo, which answers at once.
        queued = await c.request("user_message", {"content": "after", "thread_id": thread, "agent": "echo"}, id_="m2",
                                 want="ack")
        queued_run = queued["data"]["run_id"]

        state = await self.get_run(c, run)
        self.assertEqual((state["status"], state["thread_id"], state["agent"]), ("running", thread, "process"), state)
        self.assertIn("started_at", state)
        self.assertNotIn("ended_at", state)
        self.assertEqual((await self.get_run(c, queued_run))["status"], "queued")

        # A second device joining now sees both runs in progress, the first one's answer so far.
        joined = await Client.connect(self.srv.port, wsclient.dev_token(self.srv.port, "ruth"))
        h = await joined.request("get_thread_history", {"thread_id": thread}, id_="h", want="thread_history")
        progress = h["data"]["runs_in_progress"]
        self.assertEqual([(p["run_id"], p["status"]) for p in progress], [(run, "running"), (queued_run, "queued")])
        self.assertEqual(progress[0]["partial_answer"], "partial answer so far")
        chunk = next(f for f in c.frames if f["type"] == "agent_response_chunk" and f.get("run_id") == run)
        self.assertEqual(progress[0]["from_seq"], chunk["seq"] + 1, "live events continue right after it")
        await joined.close()

        stop = await c.request("stop_agent", {"run_id": run}, id_="s1", want="stop_requested")
        self.assertEqual((stop["type"], stop["data"]["status"]), ("stop_requested", "stopping"))
        # first(): the run can end before the reply to stop_agent arrives.
        await c.first(lambda f: f["type"] in TERMINAL and f.get("run_id") == run)
        state = await self.get_run(c, run)
        self.assertEqual(state["status"], "stopped")
        self.assertGreaterEqual(state["ended_at"], state["started_at"])
        # Stopping it again is not an error: the answer says how it ended.
        again = await c.request("stop_agent", {"run_id": run}, id_="s2", want="stop_requested")
        self.assertEqual((again["type"], again["data"]["status"]), ("stop_requested", "stopped"), again)

        ended = lambda f: f["type"] in TERMINAL and f.get("run_id") == queued_run  # noqa: E731
        # It may have ended while the requests above read their replies: those frames are kept.
        done = await c.first(ended)
        self.assertEqual(done["type"], "agent_completed")
        token = wsclient.dev_token(self.srv.port, "ruth")
        status, body, _ = self.srv.request("GET", f"/api/runs/{queued_run}", headers={"Authorization": f"Bearer {token}"})
        self.assertEqual((status, body["status"], body["agent"]), (200, "completed", "echo"), body)
        await c.close()

    async def test_a_threads_runs_are_listed_oldest_first_with_their_states(self):
        c = await Client.connect(self.srv.port, wsclient.dev_token(self.srv.port, "lia"))
        first = (await c.request("user_message", {"content": "one"}, id_="m1", want="ack"))["data"]
        await c.recv_until(lambda f: f["type"] in TERMINAL and f.get("run_id") == first["run_id"])
        thread = first["thread_id"]
        hang = (await c.request("user_message", {"content": "hang", "agent": "process", "thread_id": thread},
                                id_="m2", want="ack"))["data"]
        await c.recv_until(lambda f: f["type"] == "agent_response_chunk" and f.get("run_id") == hang["run_id"])
        queued = (await c.request("user_message", {"content": "later", "thread_id": thread}, id_="m3",
                                  want="ack"))["data"]
        other = (await c.request("user_message", {"content": "elsewhere"}, id_="m4", want="ack"))["data"]
        listed = await c.request("list_runs", {"thread_id": thread}, id_="l", want="runs")
        self.assertEqual(listed["data"]["thread_id"], thread)
        runs = [(r["run_id"], r["status"]) for r in listed["data"]["runs"]]
        self.assertEqual(runs, [(first["run_id"], "completed"), (hang["run_id"], "running"),
                                (queued["run_id"], "queued")], "not the other thread's run")
        self.assertNotIn(other["run_id"], [r for r, _ in runs])
        await c.request("stop_agent", {"run_id": hang["run_id"]}, id_="s", want="stop_requested")
        await c.first(lambda f: f["type"] in TERMINAL and f.get("run_id") == queued["run_id"])
        token = wsclient.dev_token(self.srv.port, "lia")
        status, body, _ = self.srv.request("GET", f"/api/threads/{thread}/runs",
                                           headers={"Authorization": f"Bearer {token}"})
        self.assertEqual(status, 200, body)
        self.assertEqual([(r["run_id"], r["status"]) for r in body["runs"]],
                         [(first["run_id"], "completed"), (hang["run_id"], "stopped"), (queued["run_id"], "completed")])
        intruder = wsclient.dev_token(self.srv.port, "max")
        status, body, _ = self.srv.request("GET", f"/api/threads/{thread}/runs",
                                           headers={"Authorization": f"Bearer {intruder}"})
        self.assertEqual(status, 403, body)
        await c.close()

    async def test_another_users_run_is_not_found(self):
        a = await Client.connect(self.srv.port, wsclient.dev_token(self.srv.port, "sam"))
        ack = await a.request("user_message", {"content": "mine"}, id_="m", want="ack")
        run = ack["data"]["run_id"]
        await a.recv_until(lambda f: f["type"] in TERMINAL and f.get("run_id") == run)
        b = await Client.connect(self.srv.port, wsclient.dev_token(self.srv.port, "tom"))
        f = await b.request("get_run", {"run_id": run}, id_="g", want="run")
        self.assertEqual((f["type"], f["data"]["code"]), ("error", "run_not_found"))
        f = await b.request("stop_agent", {"run_id": run}, id_="s", want="stop_requested")
        self.assertEqual((f["type"], f["data"]["code"]), ("error", "run_not_found"))
        token = wsclient.dev_token(self.srv.port, "tom")
        status, body, _ = self.srv.request("GET", f"/api/runs/{run}", headers={"Authorization": f"Bearer {token}"})
        self.assertEqual((status, body["error"]["code"]), (404, "run_not_found"))
        f = await b.request("get_run", {}, id_="g2", want="run")
        self.assertEqual(f["data"]["code"], "missing_field")
        await a.close()
        await b.close()


if __name__ == "__main__":
    unittest.main()
