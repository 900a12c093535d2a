"""GET /api/events through the real binary: the user's stream as server-sent events (id = seq,
event = type, data = the WebSocket frame), resumed with Last-Event-ID across a restart, resync on an
epoch change, auth by header or ?access_token=, the per-user connection limit, keep-alive comments,
and a client that leaves releases its place."""
import json
import os
import socket
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402
import wsclient  # noqa: E402
from harness import metric  # noqa: E402



def wait_for(pred, what, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return
        time.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


class Sse:
    """A raw HTTP client of one event stream: the status, then events as they come."""

    def __init__(self, port, path="/api/events", headers=None):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=20)
        lines = [f"GET {path} HTTP/1.1", "Host: 127.0.0.1", "Accept: text/event-stream", "Connection: close"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                break
            self.buf += chunk
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        self.status = int(head.split(b" ")[1])
        self.head = head.decode()
        self.comments = 0

    def body(self):
        """The rest of a refused request's body (it is not a stream)."""
        self.sock.settimeout(5)
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    break
                self.buf += chunk
        except (socket.timeout, ConnectionResetError):
            pass
        self.sock.close()
        return self.buf.decode()

    def next(self):
        """The next event as {id?, event, data} (None at the end of the stream)."""
        while True:
            while b"\n\n" not in self.buf:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return None
                self.buf += chunk
            block, _, self.buf = self.buf.partition(b"\n\n")
            ev = {}
            for line in block.decode().split("\n"):
                if line.startswith(":"):
                    self.comments += 1
                    continue
                key, _, value = line.partition(": ")
                ev[key] = value
            if ev:
                ev["data"] = json.loads(ev["data"])
                return ev

    def until(self, pred):
        while True:
            ev = self.next()
            if ev is None:
                raise AssertionError("the stream ended")
            if pred(ev):
                return ev

    def close(self):
        self.sock.close()


class ServerCase(unittest.TestCase):
    """A server per test, started with ARGS, and a user's messages sent over the HTTP API."""
    ARGS = ()

    def setUp(self):
        self.srv = harness.Server(*self.ARGS).start()

    def tearDown(self):
        self.srv.stop()

    def auth(self, user):
        return {"Authorization": f"Bearer {wsclient.dev_token(self.srv.port, user)}"}

    def post(self, user, content):
        status, t, _ = self.srv.request("POST", "/api/threads", {}, headers=self.auth(user))
        self.assertEqual(status, 201, t)
        status, body, _ = self.srv.request("POST", f"/api/threads/{t['thread_id']}/messages", {"content": content},
                                           headers=self.auth(user))
        self.assertEqual(status, 202, body)
        return body


class EventStreamTest(ServerCase):
    ARGS = ("--set", "ws.max_connections_per_user=2", "--set", "ws.sse_keepalive_ms=200")

    def test_events_carry_seq_as_id_and_type_as_event(self):
        s = Sse(self.srv.port, headers=self.auth("ada"))
        self.assertEqual(s.status, 200, s.head)
        self.assertIn("text/event-stream", s.head)
        first = s.next()
        self.assertEqual(first["event"], "connection_established")
        self.assertNotIn("id", first, "a frame without a seq has no id")
        ack = self.post("ada", "hello events")
        done = s.until(lambda e: e["event"] == "agent_completed")
        self.assertEqual(done["data"]["run_id"], ack["run_id"])
        self.assertEqual(int(done["id"]), done["data"]["seq"])
        self.assertEqual(done["data"]["type"], "agent_completed")
        s.close()

    def test_last_event_id_resumes_across_a_restart_and_an_epoch_change_resyncs(self):
        token = wsclient.dev_token(self.srv.port, "bo")
        s = Sse(self.srv.port, headers={"Authorization": f"Bearer {token}"})
        epoch = s.next()["data"]["data"]["epoch"]
        self.post("bo", "before")
        seen = s.until(lambda e: e["event"] == "agent_completed")
        s.close()
        self.srv.stop()
        self.srv = harness.Server(*self.ARGS, data_dir=self.srv.dir).start()
        missed = self.post("bo", "while away")  # committed while no stream is open
        # EventSource's way: the last id in a header, and the epoch in the URL it reconnects to.
        s = Sse(self.srv.port, f"/api/events?access_token={token}&epoch={epoch}", headers={"Last-Event-ID": seen["id"]})
        self.assertEqual(s.status, 200, s.head)
        self.assertEqual(s.next()["event"], "connection_established")
        # The missed run's events: replayed, or live after resume_complete for those not yet stored when
        # the stream resumed (the 202 answers once the message is durable, its run's events follow).
        after, resumed = [], False
        while True:
            ev = s.next()
            if ev["event"] == "resume_complete":
                resumed = True
                continue
            after.append(ev)
            if ev["event"] == "agent_completed" and ev["data"]["run_id"] == missed["run_id"]:
                break
        if not resumed:
            self.assertEqual(s.next()["event"], "resume_complete")
        self.assertEqual(int(after[0]["id"]), int(seen["id"]) + 1, "the next event after the last one seen")
        ids = [int(e["id"]) for e in after]
        self.assertEqual(ids, list(range(ids[0], ids[0] + len(ids))), "no gap, nothing twice")
        self.post("bo", "live again")
        s.until(lambda e: e["event"] == "agent_completed" and int(e["id"]) > ids[-1])
        s.close()
        # Its place under the per-user limit (2 here) comes back once the server sees it leave.
        wait_for(lambda: metric(self.srv, "agentwire_connections") == 0, "the stream to be released")
        # Another epoch (the store was replaced): told to reload, never a silent gap.
        s = Sse(self.srv.port, "/api/events?epoch=ep_other", headers={"Authorization": f"Bearer {token}",
                                                                       "Last-Event-ID": "1"})
        s.next()
        self.assertEqual(s.next()["event"], "resync_required")
        s.close()

    def test_auth_errors_and_a_bad_last_event_id_are_json_before_any_stream(self):
        s = Sse(self.srv.port)
        self.assertEqual(s.status, 401)
        self.assertIn("missing_token", s.body())
        s = Sse(self.srv.port, "/api/events?access_token=not.a.jwt")
        self.assertEqual(s.status, 401)
        s.body()
        s = Sse(self.srv.port, headers={**self.auth("cy"), "Last-Event-ID": "seven"})
        self.assertEqual(s.status, 400)
        self.assertIn("invalid_field", s.body())

    def test_streams_count_under_the_per_user_limit_and_give_their_place_back(self):
        a = Sse(self.srv.port, headers=self.auth("dee"))
        b = Sse(self.srv.port, headers=self.auth("dee"))
        for s in (a, b):
            self.assertEqual(s.next()["event"], "connection_established")
        c = Sse(self.srv.port, headers=self.auth("dee"))
        self.assertEqual(c.status, 429)
        self.assertIn("connection_limit", c.body())
        a.close()  # the client leaves: its place is given back without a write to find it out
        wait_for(lambda: metric(self.srv, "agentwire_connections") == 1, "the stream to be released")
        c = Sse(self.srv.port, headers=self.auth("dee"))
        self.assertEqual(c.status, 200)
        c.close()
        b.close()

    def test_an_idle_stream_gets_keepalive_comments(self):
        s = Sse(self.srv.port, headers=self.auth("eve"))
        s.next()
        self.post("eve", "x")
        s.until(lambda e: e["event"] == "agent_completed")
        s.sock.settimeout(10)
        while s.comments == 0:  # a comment every ws.sse_keepalive_ms (200) of silence
            chunk = s.sock.recv(65536)
            self.assertTrue(chunk, "the stream ended")
            s.buf += chunk
            while b"\n\n" in s.buf:
                block, _, s.buf = s.buf.partition(b"\n\n")
                if block.startswith(b":"):
                    s.comments += 1
        s.close()


class SlowReaderTest(ServerCase):
    """A long replay in budgeted steps, and a client that stops reading."""

    # Small bounds and per-delta chunks: a message makes hundreds of events, far past the budget.
    ARGS = ("--set", "ws.max_queue_messages=64", "--set", "ws.max_queue_bytes=65536",
            "--set", "ws.send_timeout_ms=500", "--set", "agents.chunk_window_ms=0",
            "--set", "store.retention_events=100000", "--set", "ws.max_message_bytes=1048576")

    def produce(self, user, words):
        return self.post(user, " ".join(["word"] * words))["run_id"]

    def test_a_long_replay_arrives_whole_in_order(self):
        watcher = Sse(self.srv.port, headers=self.auth("fay"))
        watcher.next()
        run = self.produce("fay", 3000)  # about 900 events
        done = watcher.until(lambda e: e["event"] == "agent_completed" and e["data"]["run_id"] == run)
        watcher.close()
        s = Sse(self.srv.port, headers={**self.auth("fay"), "Last-Event-ID": "0"})
        s.next()
        ids = []
        while True:
            ev = s.next()
            if ev["event"] == "resume_complete":
                break
            ids.append(int(ev["id"]))
        self.assertEqual(ids, list(range(1, int(done["id"]) + 1)), "every event once, in order, from seq 1")
        s.close()

    def test_a_client_that_stops_reading_is_cut_off(self):
        self.srv.stop()
        # Large chunks: megabytes quickly, past what the kernel's socket buffers hold (about 4 MB).
        self.srv = harness.Server("--set", "ws.send_timeout_ms=500", "--set", "agents.chunk_max_bytes=65536",
                                  "--set", "ws.max_message_bytes=1048576", "--set", "agents.max_queued_per_user=100",
                                  "--set", "ws.max_messages_per_second=1000").start()
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", self.srv.port))
        token = wsclient.dev_token(self.srv.port, "gus")
        sock.sendall(f"GET /api/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\n".encode())
        for _ in range(12):
            self.produce("gus", 100000)  # 500 KB answers, never read: the stream's writes stop completing
        wait_for(lambda: "made no progress" in self.srv.logs(), "the stalled stream to be cut off")
        wait_for(lambda: metric(self.srv, "agentwire_connections") == 0, "the stream to leave delivery")
        sock.close()


if __name__ == "__main__":
    unittest.main()
