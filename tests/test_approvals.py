"""Tool approvals through the real binary: the echo agent's word_count tool needs approval
(agents.approval_required_tools), so every run parks on it. Answered from a second connection, over
HTTP, denied, expired, answered twice, by another user, stopped while parked, across a SIGKILL and
restart; more parked runs than workers while another user's run still completes."""
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402
import wsclient  # noqa: E402
from wsclient import Client  # noqa: E402

TERMINAL = ("agent_completed", "agent_error", "agent_stopped")
APPROVAL = ("--set", "agents.approval_required_tools=word_count")


def of_run(run, *types):
    return lambda f: f.get("run_id") == run and f["type"] in types


class ApprovalServer:
    """A server started with ARGS, and the helpers of these tests."""
    ARGS = ()

    def setUp(self):
        self.srv = harness.Server(*self.ARGS).start()

    def tearDown(self):
        self.srv.stop()

    def auth(self, user):
        return {"Authorization": f"Bearer {wsclient.dev_token(self.srv.port, user)}"}

    async def connect(self, user):
        return await Client.connect(self.srv.port, wsclient.dev_token(self.srv.port, user))

    async def parked_run(self, c, content="count these four words", id_="m", thread=None):
        data = {"content": content}
        if thread:
            data["thread_id"] = thread
        ack = await c.request("user_message", data, id_=id_, want="ack")
        self.assertEqual(ack["type"], "ack", ack)
        run = ack["data"]["run_id"]
        req = await c.first(of_run(run, "tool_approval_requested", *TERMINAL))
        self.assertEqual(req["type"], "tool_approval_requested", req)
        return ack["data"], req["data"]


class ApprovalTest(ApprovalServer, unittest.IsolatedAsyncioTestCase):
    ARGS = (*APPROVAL, "--set", "agents.workers=1")

    async def test_approved_from_a_second_connection(self):
        c = await self.connect("ann")
        ack, req = await self.parked_run(c)
        run = ack["run_id"]
        self.assertEqual((req["tool_name"], req["args"]), ("word_count", {"text": "count these four words"}))
        self.assertTrue(req["approval_id"] and req["tool_call_id"])
        self.assertGreater(req["expires_at"], 0)
        state = await c.request("get_run", {"run_id": run}, id_="g", want="run")
        self.assertEqual(state["data"]["status"], "awaiting_approval", state)
        hist = await c.request("get_thread_history", {"thread_id": ack["thread_id"]}, id_="h", want="thread_history")
        self.assertEqual([(p["run_id"], p["status"]) for p in hist["data"]["runs_in_progress"]],
                         [(run, "awaiting_approval")])

        phone = await self.connect("ann")
        listed = await phone.request("list_approvals", {}, id_="l", want="approvals")
        self.assertEqual([a["approval_id"] for a in listed["data"]["approvals"]], [req["approval_id"]])
        ok = await phone.request("approve_tool", {"approval_id": req["approval_id"], "decision": "approve"}, id_="a",
                                 want="approval_recorded")
        self.assertEqual(ok["data"], {"approval_id": req["approval_id"], "decision": "approve"})

        done = await c.first(of_run(run, *TERMINAL))
        self.assertEqual(done["type"], "agent_completed", done)
        self.assertEqual(done["data"]["content"], "Echo (4 words): count these four words")
        types = [f["type"] for f in c.events() if f.get("run_id") == run]
        # Taking up again repeats nothing the client already had: one start, one thinking, one tool call.
        self.assertEqual(types[:4], ["agent_started", "agent_thinking", "tool_approval_requested",
                                     "tool_approval_resolved"], types)
        self.assertEqual(types.count("agent_started"), 1)
        self.assertEqual(types.count("agent_thinking"), 1)
        self.assertEqual(types.count("tool_executing"), 1)
        resolved = next(f["data"] for f in c.events() if f["type"] == "tool_approval_resolved")
        self.assertEqual((resolved["approval_id"], resolved["decision"]), (req["approval_id"], "approved"))
        self.assertTrue(resolved["by"].startswith("conn"), resolved)
        completed = next(f["data"] for f in c.events() if f["type"] == "tool_completed")
        self.assertEqual((completed["tool_call_id"], completed["result"]), (req["tool_call_id"], {"words": 4}))
        seqs = [f["seq"] for f in c.events()]
        self.assertEqual(seqs, list(range(seqs[0], seqs[0] + len(seqs))), "no gap, no repeat")

        # The first answer won: a second one is refused and changes nothing.
        again = await phone.request("approve_tool", {"approval_id": req["approval_id"], "decision": "deny"}, id_="a2")
        self.assertEqual((again["type"], again["data"]["code"]), ("error", "approval_resolved"), again)
        self.assertEqual((await c.request("get_run", {"run_id": run}, id_="g2", want="run"))["data"]["status"],
                         "completed")
        await c.close()
        await phone.close()

    async def test_denied_over_http_and_the_agent_gets_the_denial(self):
        c = await self.connect("bob")
        ack, req = await self.parked_run(c, "two words")
        status, body, _ = self.srv.request("GET", "/api/approvals", headers=self.auth("bob"))
        self.assertEqual((status, [a["approval_id"] for a in body["approvals"]]), (200, [req["approval_id"]]), body)
        self.assertEqual(body["approvals"][0]["run_id"], ack["run_id"])
        status, body, _ = self.srv.request("POST", f"/api/approvals/{req['approval_id']}",
                                           {"decision": "deny", "reason": "not now"}, headers=self.auth("bob"))
        self.assertEqual((status, body), (200, {"approval_id": req["approval_id"], "decision": "deny"}))
        done = await c.first(of_run(ack["run_id"], *TERMINAL))
        self.assertEqual(done["type"], "agent_completed", done)
        self.assertEqual(done["data"]["content"], "Echo (0 words): two words", "the tool's result was the denial")
        resolved = next(f["data"] for f in c.events() if f["type"] == "tool_approval_resolved")
        self.assertEqual((resolved["decision"], resolved["by"], resolved["reason"]), ("denied", "http", "not now"))
        completed = next(f["data"] for f in c.events() if f["type"] == "tool_completed")
        self.assertEqual(completed["approval"], "denied")
        self.assertIn("denied", completed["result"]["error"])
        self.assertFalse(any(f["type"] == "tool_executing" for f in c.events()), "a denied tool does not run")
        status, body, _ = self.srv.request("GET", "/api/approvals", headers=self.auth("bob"))
        self.assertEqual((status, body["approvals"]), (200, []))
        status, body, _ = self.srv.request("POST", f"/api/approvals/{req['approval_id']}", {"decision": "approve"},
                                           headers=self.auth("bob"))
        self.assertEqual((status, body["error"]["code"] if "error" in body else body.get("code")),
                         (409, "approval_resolved"), body)
        await c.close()

    async def test_another_users_approval_is_not_found_and_bad_answers_are_refused(self):
        c = await self.connect("cat")
        ack, req = await self.parked_run(c)
        other = await self.connect("dan")
        r = await other.request("approve_tool", {"approval_id": req["approval_id"], "decision": "approve"}, id_="x")
        self.assertEqual((r["type"], r["data"]["code"]), ("error", "approval_not_found"), r)
        status, body, _ = self.srv.request("POST", f"/api/approvals/{req['approval_id']}", {"decision": "approve"},
                                           headers=self.auth("dan"))
        self.assertEqual(status, 404, body)
        r = await other.request("approve_tool", {"approval_id": "apr_nope", "decision": "approve"}, id_="y")
        self.assertEqual(r["data"]["code"], "approval_not_found")
        r = await c.request("approve_tool", {"approval_id": req["approval_id"], "decision": "maybe"}, id_="z")
        self.assertEqual(r["data"]["code"], "invalid_field")
        r = await c.request("approve_tool", {"decision": "approve"}, id_="w")
        self.assertEqual(r["data"]["code"], "missing_field")
        r = await c.request("approve_tool", {"approval_id": req["approval_id"]}, id_="u")
        self.assertEqual(r["data"]["code"], "missing_field")
        # Still pending, still answerable by its user.
        ok = await c.request("approve_tool", {"approval_id": req["approval_id"], "decision": "approve"}, id_="v",
                             want="approval_recorded")
        self.assertEqual(ok["type"], "approval_recorded", ok)
        done = await c.first(of_run(ack["run_id"], *TERMINAL))
        self.assertEqual(done["type"], "agent_completed")
        await c.close()
        await other.close()

    async def test_parked_runs_hold_no_worker(self):
        # One worker; three runs parked, and another user's run is still executed (it parks too, which
        # needs a worker), then completes when approved.
        c = await self.connect("eve")
        parked = []
        for i in range(3):
            ack, req = await self.parked_run(c, f"run {i}", id_=f"m{i}")
            parked.append((ack, req))
        other = await self.connect("fay")
        ack, req = await self.parked_run(other, "another user")
        _, text = self.srv.get("/metrics")
        self.assertEqual(harness.metric_samples(text, "agentwire_agent_runs_awaiting_approval")[frozenset()], 4)
        await other.request("approve_tool", {"approval_id": req["approval_id"], "decision": "approve"}, id_="a",
                            want="approval_recorded")
        done = await other.first(of_run(ack["run_id"], *TERMINAL))
        self.assertEqual(done["type"], "agent_completed", done)
        for i, (ack, req) in enumerate(parked):
            await c.request("approve_tool", {"approval_id": req["approval_id"], "decision": "approve"}, id_=f"a{i}",
                            want="approval_recorded")
        for ack, _ in parked:
            done = await c.first(of_run(ack["run_id"], *TERMINAL))
            self.assertEqual(done["type"], "agent_completed", done)
        await c.close()
        await other.close()

    async def test_a_message_behind_a_parked_run_waits_for_it(self):
        c = await self.connect("gus")
        ack, req = await self.parked_run(c, "first")
        second = await c.request("user_message", {"content": "second", "thread_id": ack["thread_id"]}, id_="m2",
                                 want="ack")
        second_run = second["data"]["run_id"]
        state = await c.request("get_run", {"run_id": second_run}, id_="g", want="run")
        self.assertEqual(state["data"]["status"], "queued", "runs of a thread never overlap")
        await c.request("approve_tool", {"approval_id": req["approval_id"], "decision": "approve"}, id_="a",
                        want="approval_recorded")
        # The second run parks in turn, after the first one ended.
        await c.first(of_run(second_run, "tool_approval_requested"))
        order = [(f["type"], f["run_id"]) for f in c.events() if f["type"] in ("agent_started", "agent_completed")]
        self.assertEqual(order, [("agent_started", ack["run_id"]), ("agent_completed", ack["run_id"]),
                                 ("agent_started", second_run)])
        await c.close()

    async def test_stopping_a_parked_run_expires_its_approval(self):
        c = await self.connect("hal")
        ack, req = await self.parked_run(c)
        stop = await c.request("stop_agent", {"run_id": ack["run_id"]}, id_="s", want="stop_requested")
        self.assertEqual(stop["data"]["status"], "stopping")
        done = await c.first(of_run(ack["run_id"], *TERMINAL))
        self.assertEqual((done["type"], done["data"]["reason"]), ("agent_stopped", "requested"), done)
        resolved = next(f["data"] for f in c.events() if f["type"] == "tool_approval_resolved")
        self.assertEqual((resolved["decision"], resolved["by"]), ("expired", "stop_agent"))
        r = await c.request("approve_tool", {"approval_id": req["approval_id"], "decision": "approve"}, id_="a")
        self.assertEqual(r["data"]["code"], "approval_resolved")
        await c.close()

    async def test_a_parked_run_survives_a_crash_and_restart(self):
        c = await self.connect("ivy")
        ack, req = await self.parked_run(c, "survive this")
        epoch, last_seq = c.established["epoch"], c.events()[-1]["seq"]
        await c.close()
        self.srv.kill()  # SIGKILL: nothing is written on the way out
        self.srv = harness.Server(*self.ARGS, data_dir=self.srv.dir).start()
        status, body, _ = self.srv.request("GET", "/api/approvals", headers=self.auth("ivy"))
        self.assertEqual([a["approval_id"] for a in body["approvals"]], [req["approval_id"]], body)
        c = await self.connect("ivy")
        r = await c.request("resume", {"last_seq": last_seq, "epoch": epoch}, id_="res", want="resume_complete")
        self.assertEqual(r["type"], "resume_complete", r)
        state = await c.request("get_run", {"run_id": ack["run_id"]}, id_="g", want="run")
        self.assertEqual(state["data"]["status"], "awaiting_approval", "not interrupted by the restart")
        status, body, _ = self.srv.request("POST", f"/api/approvals/{req['approval_id']}", {"decision": "approve"},
                                           headers=self.auth("ivy"))
        self.assertEqual(status, 200, body)
        done = await c.first(of_run(ack["run_id"], *TERMINAL))
        self.assertEqual(done["type"], "agent_completed", done)
        self.assertEqual(done["data"]["content"], "Echo (2 words): survive this")
        types = [f["type"] for f in c.events() if f.get("run_id") == ack["run_id"]]
        self.assertEqual(types, ["tool_approval_resolved", "tool_executing", "tool_completed",
                                 *(["agent_response_chunk"] * (len(types) - 4)), "agent_completed"], types)
        await c.close()


    async def test_a_denial_holds_after_a_restart_that_no_longer_requires_approval(self):
        c = await self.connect("kay")
        ack, req = await self.parked_run(c, "denied anyway")
        last_seq = c.events()[-1]["seq"]
        epoch = c.established["epoch"]
        await c.close()
        self.srv.stop()
        # The tool no longer needs approval: the run still waits for its answer, and a denial holds.
        self.srv = harness.Server("--set", "agents.workers=1", data_dir=self.srv.dir).start()
        c = await self.connect("kay")
        await c.request("resume", {"last_seq": last_seq, "epoch": epoch}, id_="res", want="resume_complete")
        status, body, _ = self.srv.request("POST", f"/api/approvals/{req['approval_id']}", {"decision": "deny"},
                                           headers=self.auth("kay"))
        self.assertEqual(status, 200, body)
        done = await c.first(of_run(ack["run_id"], *TERMINAL))
        self.assertEqual((done["type"], done["data"]["content"]), ("agent_completed", "Echo (0 words): denied anyway"))
        types = [f["type"] for f in c.events() if f.get("run_id") == ack["run_id"]]
        self.assertNotIn("tool_executing", types)
        self.assertIn("agent_response_chunk", types, "events after the answer are sent")
        await c.close()


class ParkedLimitTest(ApprovalServer, unittest.IsolatedAsyncioTestCase):
    """agents.max_parked_per_user: a user cannot pile up runs waiting for approvals; other users can."""
    ARGS = (*APPROVAL, "--set", "agents.max_parked_per_user=2")

    async def test_a_run_past_the_users_limit_ends_with_approval_limit(self):
        c = await self.connect("piler")
        first = [await self.parked_run(c, f"run {i}", id_=f"m{i}") for i in range(2)]
        ack = await c.request("user_message", {"content": "one too many"}, id_="m2", want="ack")
        done = await c.first(of_run(ack["data"]["run_id"], "tool_approval_requested", *TERMINAL))
        self.assertEqual((done["type"], done["data"]["code"]), ("agent_error", "approval_limit"), done)
        self.assertIn("2 runs of this user are waiting", done["data"]["message"])
        other = await self.connect("calm")
        await self.parked_run(other, "someone else")  # another user's runs are not counted
        await other.close()
        # One answered and done: the user may have a run wait again.
        ack0, req0 = first[0]
        await c.request("approve_tool", {"approval_id": req0["approval_id"], "decision": "approve"}, id_="a",
                        want="approval_recorded")
        self.assertEqual((await c.first(of_run(ack0["run_id"], *TERMINAL)))["type"], "agent_completed")
        await self.parked_run(c, "room again", id_="m3")
        await c.close()


class ApprovalExpiryTest(unittest.IsolatedAsyncioTestCase):
    def setUp(self):
        self.srv = harness.Server(*APPROVAL, "--set", "agents.approval_timeout_ms=300").start()

    def tearDown(self):
        self.srv.stop()

    async def test_an_unanswered_approval_expires_and_the_run_goes_on(self):
        c = await Client.connect(self.srv.port, wsclient.dev_token(self.srv.port, "jo"))
        ack = await c.request("user_message", {"content": "too late"}, id_="m", want="ack")
        run = ack["data"]["run_id"]
        done = await c.first(of_run(run, *TERMINAL))
        self.assertEqual((done["type"], done["data"]["content"]), ("agent_completed", "Echo (0 words): too late"))
        req = next(f["data"] for f in c.events() if f["type"] == "tool_approval_requested")
        resolved = next(f["data"] for f in c.events() if f["type"] == "tool_approval_resolved")
        self.assertEqual((resolved["approval_id"], resolved["decision"], resolved["by"]),
                         (req["approval_id"], "expired", "timeout"))
        completed = next(f["data"] for f in c.events() if f["type"] == "tool_completed")
        self.assertEqual(completed["approval"], "expired")
        r = await c.request("approve_tool", {"approval_id": req["approval_id"], "decision": "approve"}, id_="a")
        self.assertEqual(r["data"]["code"], "approval_resolved")
        await c.close()


if __name__ == "__main__":
    unittest.main()
