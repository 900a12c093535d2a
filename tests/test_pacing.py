"""An agent paced by its reader, through the real binary: a client that stops reading while an agent
streams thousands of deltas (60 KB messages to the echo agent with the rollup off) makes the agent
wait once the kernel's socket buffers and the connection's queue are full, instead of the stream
running ahead of it; once the client reads, it gets every delta of every run in order and the runs
complete. No 4001."""
import json
import os
import socket
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402
import wsclient  # noqa: E402
from harness import metric, wait_for  # noqa: E402



class FrameReader:
    """Reads a raw WebSocket's text frames as they come (megabytes of them: parsed once each)."""

    def __init__(self, raw):
        self.sock = raw.sock
        self.buf = bytearray()
        self.pos = 0

    def next_text(self, timeout=60):
        while True:
            frame = self._parse()
            if frame is not None:
                op, payload = frame
                if op == 8:
                    raise AssertionError(f"closed by the server: {int.from_bytes(payload[:2], 'big')}")
                if op == 1:
                    return json.loads(payload)
                continue
            self.sock.settimeout(timeout)
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise AssertionError("the server closed the connection")
            del self.buf[:self.pos]
            self.pos = 0
            self.buf += chunk

    def _parse(self):
        b, i = self.buf, self.pos
        if len(b) - i < 2:
            return None
        op, n, j = b[i] & 0x0F, b[i + 1] & 0x7F, i + 2
        if n == 126:
            if len(b) - j < 2:
                return None
            n, j = int.from_bytes(b[j:j + 2], "big"), j + 2
        elif n == 127:
            if len(b) - j < 8:
                return None
            n, j = int.from_bytes(b[j:j + 8], "big"), j + 8
        if len(b) - j < n:
            return None
        self.pos = j + n
        return op, bytes(b[j:j + n])


class PacingTest(unittest.TestCase):
    def setUp(self):
        # Nothing cut short while the client does not read: no stall cut-off, no pacing limit.
        self.srv = harness.Server("--set", "agents.chunk_window_ms=0", "--set", "ws.max_queue_messages=64",
                                  "--set", "ws.send_timeout_ms=600000", "--set", "agents.pace_max_ms=600000",
                                  "--set", "ws.idle_timeout_ms=600000").start()

    def tearDown(self):
        self.srv.stop()

    def test_an_agent_waits_for_a_client_that_is_behind(self):
        token = wsclient.dev_token(self.srv.port, "slow_reader")
        auth = {"Authorization": f"Bearer {token}"}
        raw = wsclient.RawWs(self.srv.port, token, rcvbuf=4096)
        reader = FrameReader(raw)
        # Live before the runs start: a ping, and its pong read.
        raw.send_text(json.dumps({"type": "ping", "id": "p"}))
        while reader.next_text()["type"] != "pong":
            pass
        status, thread, _ = self.srv.request("POST", "/api/threads", {}, headers=auth)
        self.assertEqual(status, 201, thread)
        content = " ".join(["word"] * 12000)  # 60 KB: 3,750 deltas of 16 bytes, one event each
        runs = []
        # Enough output to fill the kernel's socket buffers, however large they grow here: runs follow
        # each other on the thread until one waits for the reader.
        for _ in range(40):
            status, ack, _ = self.srv.request("POST", f"/api/threads/{thread['thread_id']}/messages",
                                              {"content": content}, headers=auth)
            self.assertEqual(status, 202, ack)
            runs.append(ack["run_id"])

            def state():
                # "waiting": a run is running and waits for the reader, seen in one look. A wait can
                # also end by itself while the kernel grows the connection's send buffer (TCP
                # autotuning): then that run completes and the next one is posted, until the buffers
                # are at their largest and a run waits for good.
                _, listed, _ = self.srv.request("GET", f"/api/threads/{thread['thread_id']}/runs", headers=auth)
                statuses = [r["status"] for r in listed["runs"]]
                if statuses.count("running") == 1 and metric(self.srv, "agentwire_agent_runs_paced") == 1:
                    return "waiting"
                return "completed" if all(st == "completed" for st in statuses) else None
            wait_for(lambda: state() is not None, timeout=60, what="the runs completed or one waits for the reader")
            if state() == "waiting":
                break
        else:
            self.fail("no run ever waited for the reader")

        # The client reads now: every run's deltas, in order, and the runs complete.
        seqs, texts, done = [], {}, {}
        while len(done) < len(runs):
            e = reader.next_text()
            if "seq" in e:
                seqs.append(e["seq"])
            if e.get("run_id") in runs:
                if e["type"] == "agent_response_chunk":
                    texts[e["run_id"]] = texts.get(e["run_id"], "") + e["data"]["delta"]
                if e["type"] in ("agent_completed", "agent_error", "agent_stopped"):
                    done[e["run_id"]] = e
        raw.close()
        for run in runs:
            self.assertEqual(done[run]["type"], "agent_completed")
            self.assertEqual(texts[run], done[run]["data"]["content"])
        self.assertEqual(seqs, list(range(seqs[0], seqs[0] + len(seqs))), "no gap, no repeat")
        self.assertEqual(metric(self.srv, "agentwire_connections_closed_total", code="4001"), 0)
        # Counted when a wait ends: every wait has (the runs completed).
        self.assertGreater(metric(self.srv, "agentwire_agent_paced_seconds_total"), 0)
        self.assertEqual(metric(self.srv, "agentwire_agent_runs_paced"), 0)


if __name__ == "__main__":
    unittest.main()
