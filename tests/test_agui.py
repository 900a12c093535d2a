"""AG-UI over the real binary: POST /agui answers an SSE stream whose events follow the rules
(RUN_STARTED first, exactly one RUN_FINISHED/RUN_ERROR last, non-empty deltas, tool calls
started before they end and before their result); a tool approval as CUSTOM events on a stream that
stays open, with keep-alives, while the run waits."""
import http.client
import json
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402
import wsclient  # noqa: E402


def agui(port, token, body):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    headers = {"Content-Type": "application/json", "Accept": "text/event-stream"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    c.request("POST", "/agui", body=json.dumps(body), headers=headers)
    r = c.getresponse()
    raw = r.read().decode()  # the server closes the stream at the run's end
    c.close()
    events = []
    for block in raw.split("\n\n"):
        for line in block.splitlines():
            if line.startswith("data: "):
                events.append(json.loads(line[6:]))
    return r.status, r.getheader("Content-Type"), events, raw


class AguiRules:
    """The AG-UI event rules, checked on a run's events (mixed into the test cases)."""

    def check_rules(self, events):
        types = [e["type"] for e in events]
        self.assertEqual(types[0], "RUN_STARTED")
        ends = [t for t in types if t in ("RUN_FINISHED", "RUN_ERROR")]
        self.assertEqual(len(ends), 1, (types, self.srv.logs()[-4000:]))
        self.assertIn(types[-1], ("RUN_FINISHED", "RUN_ERROR"))
        open_text, started_tools, ended_tools = False, set(), set()
        for e in events:
            t = e["type"]
            if t == "TEXT_MESSAGE_START":
                self.assertFalse(open_text)
                open_text = True
            if t == "TEXT_MESSAGE_CONTENT":
                self.assertTrue(open_text, "content outside a text message")
                self.assertTrue(e["delta"], "empty delta")
            if t == "TEXT_MESSAGE_END":
                self.assertTrue(open_text)
                open_text = False
            if t == "TOOL_CALL_START":
                started_tools.add(e["toolCallId"])
            if t in ("TOOL_CALL_ARGS", "TOOL_CALL_END"):
                self.assertIn(e["toolCallId"], started_tools)
            if t == "TOOL_CALL_END":
                ended_tools.add(e["toolCallId"])
            if t == "TOOL_CALL_RESULT":
                self.assertIn(e["toolCallId"], ended_tools)
        self.assertFalse(open_text, "a text message was never ended")


class AguiTest(AguiRules, unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.srv = harness.Server().start()
        cls.token = wsclient.dev_token(cls.srv.port, "agui_user")

    @classmethod
    def tearDownClass(cls):
        cls.srv.stop()

    def test_run_streams_ag_ui_events(self):
        body = {"threadId": "client-thread-1", "runId": "client-run-1", "state": {}, "tools": [], "context": [],
                "forwardedProps": {}, "messages": [{"id": "m1", "role": "user", "content": "count these four words"}]}
        status, ctype, events, raw = agui(self.srv.port, self.token, body)
        self.assertEqual(status, 200)
        self.assertTrue(ctype.startswith("text/event-stream"))
        self.check_rules(events)
        self.assertEqual(events[0]["threadId"], "client-thread-1")
        self.assertEqual(events[0]["runId"], "client-run-1")
        self.assertEqual(events[-1]["type"], "RUN_FINISHED")
        types = [e["type"] for e in events]
        for t in ("STEP_STARTED", "STEP_FINISHED", "TOOL_CALL_START", "TOOL_CALL_ARGS", "TOOL_CALL_END",
                  "TOOL_CALL_RESULT", "TEXT_MESSAGE_START", "TEXT_MESSAGE_CONTENT", "TEXT_MESSAGE_END"):
            self.assertIn(t, types)
        text = "".join(e["delta"] for e in events if e["type"] == "TEXT_MESSAGE_CONTENT")
        self.assertEqual(text, "Echo (4 words): count these four words")
        args = next(e for e in events if e["type"] == "TOOL_CALL_ARGS")
        self.assertEqual(json.loads(args["delta"]), {"text": "count these four words"})
        # The run is an ordinary run of the user: its thread and answer are stored.
        status, threads = self.srv.get("/api/threads", headers={"Authorization": f"Bearer {self.token}"})
        self.assertIn("count these four words", [t["title"] for t in threads["threads"]])

    def test_events_have_ids_and_a_dropped_client_rejoins_after_the_last_one(self):
        body = {"messages": [{"id": "m1", "role": "user", "content": "rejoin these words"}], "runId": "client-run-9"}
        _, _, events, raw = agui(self.srv.port, self.token, body)
        ids = [b.split("\n")[0][4:] for b in raw.strip().split("\n\n")]
        self.assertTrue(all(b.startswith("id: ") for b in raw.strip().split("\n\n")), "every event has an id")
        self.assertEqual(len(set(ids)), len(ids))
        run_id = ids[0].split("/")[0]
        auth = {"Authorization": f"Bearer {self.token}"}

        def rejoin(last=None):
            c = http.client.HTTPConnection("127.0.0.1", self.srv.port, timeout=20)
            c.request("GET", f"/agui/runs/{run_id}", headers={**auth, **({"Last-Event-ID": last} if last else {})})
            r = c.getresponse()
            text = r.read().decode()
            c.close()
            got = [json.loads(line[6:]) for b in text.split("\n\n") for line in b.splitlines()
                   if line.startswith("data: ")]
            return r.status, got

        def strip(evs):
            return [{k: v for k, v in e.items() if k != "timestamp"} for e in evs]

        # Dropped after the third event: the rest, exactly, then the end.
        status, rest = rejoin(ids[2])
        self.assertEqual(status, 200)
        self.assertEqual(strip(rest), strip(events[3:]))
        self.assertEqual(rest[-1]["type"], "RUN_FINISHED")
        self.assertEqual(rest[-1]["runId"], "client-run-9", "the client's runId")
        # Without Last-Event-ID: the whole run again.
        status, whole = rejoin()
        self.assertEqual(strip(whole), strip(events))
        # Another user's run, and an id of another run.
        other = wsclient.dev_token(self.srv.port, "agui_other")
        c = http.client.HTTPConnection("127.0.0.1", self.srv.port, timeout=20)
        c.request("GET", f"/agui/runs/{run_id}", headers={"Authorization": f"Bearer {other}"})
        r = c.getresponse()
        self.assertEqual((r.status, json.loads(r.read())["error"]["code"]), (404, "run_not_found"))
        c.request("GET", f"/agui/runs/{run_id}", headers={**auth, "Last-Event-ID": "run_other/3/0"})
        r = c.getresponse()
        self.assertEqual((r.status, json.loads(r.read())["error"]["code"]), (400, "invalid_field"))
        c.close()

    def test_errors_are_json_before_the_stream(self):
        status, _, _, raw = agui(self.srv.port, None, {"messages": [{"role": "user", "content": "x"}]})
        self.assertEqual(status, 401)
        status, _, _, raw = agui(self.srv.port, self.token, {"messages": []})
        self.assertEqual(status, 400)
        self.assertIn("missing_field", raw)

    def test_a_new_thread_counts_against_the_users_cap(self):
        srv = harness.Server("--set", "limits.max_threads_per_user=2").start()
        self.addCleanup(srv.stop)
        token = wsclient.dev_token(srv.port, "capped")
        body = {"messages": [{"role": "user", "content": "hello"}]}
        for _ in range(2):
            status, _, events, raw = agui(srv.port, token, body)
            self.assertEqual((status, events[-1]["type"]), (200, "RUN_FINISHED"), raw)
        status, _, _, raw = agui(srv.port, token, body)
        self.assertEqual(status, 409, raw)
        self.assertEqual(json.loads(raw)["error"]["code"], "thread_limit")
        # A run on a thread the user has is not a new thread: still allowed.
        _, threads = srv.get("/api/threads", headers={"Authorization": f"Bearer {token}"})
        self.assertEqual(len(threads["threads"]), 2)
        status, _, events, raw = agui(srv.port, token, {**body, "threadId": threads["threads"][0]["thread_id"]})
        self.assertEqual((status, events[-1]["type"]), (200, "RUN_FINISHED"), raw)


class AguiApprovalTest(AguiRules, unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.srv = harness.Server("--set", "agents.approval_required_tools=word_count",
                                 "--set", "ws.sse_keepalive_ms=50").start()
        cls.token = wsclient.dev_token(cls.srv.port, "agui_approver")

    @classmethod
    def tearDownClass(cls):
        cls.srv.stop()

    def test_an_approval_is_custom_events_and_the_stream_waits_for_it(self):
        c = http.client.HTTPConnection("127.0.0.1", self.srv.port, timeout=20)
        body = {"runId": "client-run-a", "messages": [{"id": "m1", "role": "user", "content": "three more words"}]}
        c.request("POST", "/agui", body=json.dumps(body),
                  headers={"Content-Type": "application/json", "Authorization": f"Bearer {self.token}"})
        r = c.getresponse()
        self.assertEqual(r.status, 200)
        events, keepalive = [], False
        # Read until the request, then until a keep-alive comment: the stream is open while the run waits.
        while not (keepalive and any(e["type"] == "CUSTOM" for e in events)):
            line = r.fp.readline().decode()
            self.assertTrue(line, "the stream ended while the run waited")
            if line.startswith("data: "):
                events.append(json.loads(line[6:]))
            keepalive = keepalive or (line.startswith(": keepalive") and bool(events))
        requested = next(e for e in events if e["type"] == "CUSTOM")
        self.assertEqual(requested["name"], "tool_approval_requested")
        approval = requested["value"]["approval_id"]
        status, reply, _ = self.srv.request("POST", f"/api/approvals/{approval}", {"decision": "approve"},
                                            headers={"Authorization": f"Bearer {self.token}"})
        self.assertEqual(status, 200, reply)
        for line in r.read().decode().splitlines():
            if line.startswith("data: "):
                events.append(json.loads(line[6:]))
        c.close()
        self.check_rules(events)
        types = [e["type"] for e in events]
        self.assertEqual(types[-1], "RUN_FINISHED")
        self.assertEqual(types.count("TOOL_CALL_START"), 1, "announced once, before the approval")
        customs = [(e["name"], e["value"].get("decision")) for e in events if e["type"] == "CUSTOM"]
        self.assertEqual(customs, [("tool_approval_requested", None), ("tool_approval_resolved", "approved")])
        self.assertLess(types.index("TOOL_CALL_START"), types.index("CUSTOM"))
        result = next(e for e in events if e["type"] == "TOOL_CALL_RESULT")
        self.assertEqual(json.loads(result["content"]), {"words": 3})


if __name__ == "__main__":
    harness.main()
