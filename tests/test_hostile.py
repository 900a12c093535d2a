"""Hostile input through the real binary: each case gets a documented answer, the connection or
the process survives, and it costs the server nothing lasting. One test per row of the hostile
input table in docs/operations.md."""
import asyncio
import http.client
import json
import os
import socket
import sqlite3
import subprocess
import sys
import time
import unittest
import urllib.request

import websockets

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402
import wsclient  # noqa: E402
from harness import metric, wait_for, wait_for_async  # noqa: E402
from wsclient import Client  # noqa: E402

TERMINAL = ("agent_completed", "agent_error", "agent_stopped")



def raw_http(port, data, timeout=5):
    """Sends raw bytes, reads until the server closes or goes quiet; returns what came back."""
    s = socket.create_connection(("127.0.0.1", port))
    s.settimeout(timeout)
    s.sendall(data)
    out = b""
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            out += chunk
    except socket.timeout:
        pass
    s.close()
    return out


def closed_by_server(sock, timeout=10):
    """True when the server closes `sock` within `timeout` (EOF or reset)."""
    sock.settimeout(timeout)
    try:
        while True:
            if not sock.recv(4096):
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except socket.timeout:
        return False


class ListenerTest(unittest.TestCase):
    def test_out_of_file_descriptors_backs_off_instead_of_spinning_and_recovers(self):
        import resource
        srv = harness.Server().start()
        try:
            soft, hard = resource.prlimit(srv.pid(), resource.RLIMIT_NOFILE)
            # Leave the process a handful of descriptors, then take them all with idle connections.
            resource.prlimit(srv.pid(), resource.RLIMIT_NOFILE, (64, hard))
            hogs = []
            try:
                for _ in range(80):
                    hogs.append(socket.create_connection(("127.0.0.1", srv.port)))
                wait_for(lambda: "accept failed" in srv.logs(), what="the accept error")
                # Two seconds out of descriptors. A loop that retries at once burns a core (it did:
                # 125 % CPU, a million log lines); with backoff it is a few attempts.
                cpu_before = cpu_seconds(srv.pid())
                deadline = time.time() + 2
                wait_for(lambda: time.time() >= deadline, what="two seconds", interval=0.1)
                self.assertLess(cpu_seconds(srv.pid()) - cpu_before, 0.5, "accept retried without backing off")
                self.assertLessEqual(srv.logs().count("accept failed"), 2, "one line per 10 s, not one per attempt")
            finally:
                for h in hogs:
                    h.close()
                resource.prlimit(srv.pid(), resource.RLIMIT_NOFILE, (soft, hard))
            wait_for(lambda: _ready(srv), what="serving again once descriptors are free")
            self.assertGreater(metric(srv, "agentwire_http_refused_total", reason="accept_error"), 0)
        finally:
            srv.stop()

    def test_connection_caps_and_the_request_deadline(self):
        srv = harness.Server("--set", "server.max_http_connections_per_ip=8",
                             "--set", "server.request_timeout_ms=500").start()
        try:
            # Eight connections that start a request and never finish it (slowloris).
            slow = []
            for _ in range(8):
                s = socket.create_connection(("127.0.0.1", srv.port))
                s.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # never ends the headers
                slow.append(s)
            extra = socket.create_connection(("127.0.0.1", srv.port))
            self.assertTrue(closed_by_server(extra), "the ninth connection from one address is closed at once")
            extra.close()
            # Each is closed at the request deadline, whatever the machine's speed.
            for s in slow:
                self.assertTrue(closed_by_server(s, timeout=10), "a half-sent request was kept past the deadline")
                s.close()
            wait_for(lambda: _ready(srv), what="serving again")
            self.assertGreaterEqual(metric(srv, "agentwire_http_refused_total", reason="over_connection_cap"), 1)
            # Counted as request timeouts when the server had read part of the request before the deadline
            # (a connection that sent nothing in time is an idle close, not counted): at least one was.
            self.assertGreaterEqual(metric(srv, "agentwire_http_refused_total", reason="request_timeout"), 1)
        finally:
            srv.stop()

    def test_request_smuggling_is_refused_and_405_says_allow(self):
        srv = harness.Server().start()
        try:
            hidden = b"GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
            body = b"0\r\n\r\n" + hidden
            for te in (b"xchunked", b"chunked"):
                req = (b"POST /api/threads HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: " + te +
                       b"\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
                out = raw_http(srv.port, req)
                self.assertTrue(out.startswith(b"HTTP/1.1 400"), out[:200])
                self.assertEqual(out.count(b"HTTP/1.1"), 1, "the hidden request was answered")
            out = raw_http(srv.port, b"POST /api/threads HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: gzip\r\n\r\n")
            self.assertTrue(out.startswith(b"HTTP/1.1 400"), out[:200])
            status, body, headers = srv.request("DELETE", "/health/live")
            self.assertEqual(status, 405)
            self.assertEqual(headers.get("Allow"), "GET, HEAD")
        finally:
            srv.stop()


def cpu_seconds(pid):
    """User + system CPU time of a process so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _ready(srv):
    try:
        return srv.get("/health/ready")[0] == 200
    except OSError:
        return False


class GatewayHostileTest(unittest.IsolatedAsyncioTestCase):
    async def asyncSetUp(self):
        self.srv = harness.Server("--set", "limits.max_threads_per_user=5", "--set", "limits.max_title_chars=20").start()

    async def asyncTearDown(self):
        self.srv.stop()

    def auth(self, user):
        return {"Authorization": f"Bearer {wsclient.dev_token(self.srv.port, user)}"}

    async def test_titles_are_cut_on_code_points_and_thread_lists_stay_valid_utf8(self):
        token = wsclient.dev_token(self.srv.port, "utf")
        c = await Client.connect(self.srv.port, token)
        await c.send("ping")
        # 30 two-byte characters: the old cut at 60 bytes fell in the middle of the 31st... or the
        # 30th, depending on the prefix. Every prefix length is tried.
        for prefix in range(4):
            ack = await c.request("user_message", {"content": "a" * prefix + "\u00e9" * 80}, id_=f"u{prefix}",
                                  want="ack")
            if ack["type"] == "error":
                self.assertEqual(ack["data"]["code"], "thread_limit")
                break
            await c.recv_until(lambda f: f["type"] in TERMINAL and f.get("run_id") == ack["data"]["run_id"])
        # python-websockets decodes text frames strictly: invalid UTF-8 would close this with 1007.
        threads = await c.request("list_threads", {}, id_="lt", want="threads")
        self.assertEqual(threads["type"], "threads")
        for t in threads["data"]["threads"]:
            self.assertLessEqual(len(t["title"]), 60)
        t0 = time.time()
        status, body = self.srv.get("/api/threads", headers=self.auth("utf"))
        self.assertEqual(status, 200, body)
        self.assertLess(time.time() - t0, 5)
        await c.close()

    async def test_parallel_upgrades_cannot_pass_the_per_user_connection_limit(self):
        token = wsclient.dev_token(self.srv.port, "racer")

        async def one():
            try:
                return await Client.connect(self.srv.port, token)
            except websockets.ConnectionClosed as e:
                return e.code
            except websockets.InvalidStatusCode as e:
                return e.status_code

        results = await asyncio.gather(*(one() for _ in range(40)))
        opened = [r for r in results if isinstance(r, Client)]
        refused = [r for r in results if not isinstance(r, Client)]
        # Some refused ones are refused right after the handshake (4002), which the client may see
        # only on its first read.
        still_open = 0
        for c in opened:
            try:
                await c.request("ping", id_="p", want="pong", timeout=5)
                still_open += 1
            except websockets.ConnectionClosed as e:
                self.assertEqual(e.code, 4002)
        self.assertEqual(still_open, 16, (still_open, refused))
        for c in opened:
            await c.close()
        # The slots come back: once all are closed, 16 fit again.
        await wait_for_async(lambda: metric(self.srv, "agentwire_websocket_connections") == 0, what="all closed")
        again = [await Client.connect(self.srv.port, token) for _ in range(16)]
        for c in again:
            await c.close()

    async def test_a_large_message_reaches_a_client_that_reads_without_a_4001(self):
        token = wsclient.dev_token(self.srv.port, "big")
        c = await Client.connect(self.srv.port, token)
        await c.send("ping")
        content = " ".join(["word"] * 12000)  # 60 KB: 3,750 deltas of 16 bytes from the echo agent
        self.assertLess(len(content), 65536)
        ack = await c.request("user_message", {"content": content}, id_="big", want="ack", timeout=30)
        self.assertEqual(ack["type"], "ack", ack)
        done = await c.recv_until(lambda f: f["type"] in TERMINAL and f.get("run_id") == ack["data"]["run_id"],
                                  timeout=120)
        self.assertEqual(done["type"], "agent_completed")
        deltas = [f["data"]["delta"] for f in c.events() if f["type"] == "agent_response_chunk"]
        self.assertEqual("".join(deltas), done["data"]["content"])
        # Rolled up (agents.chunk_window_ms=30, chunk_max_bytes=4096): one chunk per 4 KB or per 30 ms of
        # the run at most, whatever the machine's speed, instead of one per delta.
        bound = len(done["data"]["content"]) // 4096 + 1 + int(done["data"]["execution_time_ms"] / 30) + 1
        self.assertLessEqual(len(deltas), bound, (len(deltas), done["data"]["execution_time_ms"]))
        seqs = [e["seq"] for e in c.events()]
        self.assertEqual(seqs, list(range(seqs[0], seqs[0] + len(seqs))))
        await c.close()
        self.assertEqual(metric(self.srv, "agentwire_connections_closed_total", code="4001"), 0)

    async def test_http_api_has_the_websocket_limits(self):
        a = self.auth("limits")
        status, body, _ = self.srv.request("POST", "/api/threads", {"title": "x" * 100000}, headers=a)
        self.assertEqual(status, 413, body)
        status, body, _ = self.srv.request("POST", "/api/threads", {"title": "x" * 21}, headers=a)
        self.assertEqual((status, body["error"]["code"]), (400, "invalid_field"))
        made = []
        for i in range(6):
            status, body, _ = self.srv.request("POST", "/api/threads", {"title": f"t{i}"}, headers=a)
            made.append((status, body))
        self.assertEqual([s for s, _ in made[:5]], [201] * 5)
        self.assertEqual((made[5][0], made[5][1]["error"]["code"]), (409, "thread_limit"))
        # Paginated lists.
        status, page1 = self.srv.get("/api/threads?limit=2", headers=a)
        self.assertEqual((status, len(page1["threads"])), (200, 2))
        status, page2 = self.srv.get(f"/api/threads?limit=2&before={page1['next_before']}", headers=a)
        status, page3 = self.srv.get(f"/api/threads?limit=2&before={page2['next_before']}", headers=a)
        ids = [t["thread_id"] for p in (page1, page2, page3) for t in p["threads"]]
        self.assertEqual(len(ids), 5)
        self.assertEqual(len(set(ids)), 5)
        self.assertNotIn("next_before", page3)
        # A query number that is not one is refused, never read as 0 (a different, valid request).
        thread = page1["threads"][0]["thread_id"]
        for path in ("/api/threads?limit=x", "/api/threads?limit=", "/api/threads?limit=2x",
                     f"/api/threads/{thread}/messages?limit=ten", f"/api/threads/{thread}/messages?before=yesterday"):
            status, body = self.srv.get(path, headers=a)
            self.assertEqual((status, body["error"]["code"]), (400, "invalid_field"), path)
            self.assertIn("must be an integer", body["error"]["message"])
        # The per-user rate: a burst past ws.max_messages_per_second (50) is refused with 429.
        codes = [self.srv.get("/api/threads?limit=1", headers=a)[0] for _ in range(120)]
        self.assertIn(429, codes)
        self.assertEqual(codes[0], 200)

    async def test_wrongly_typed_fields_are_named_and_nothing_is_created(self):
        c = await Client.connect(self.srv.port, wsclient.dev_token(self.srv.port, "typed"))
        await c.send("ping")
        for data, field in (({"content": "x", "thread_id": ["t"]}, "data.thread_id"),
                            ({"content": "x", "thread_id": 7}, "data.thread_id"),
                            ({"content": "x", "agent": 7}, "data.agent"),
                            ({"content": 5}, "data.content"),
                            ({"content": "nul\u0000inside"}, "data.content")):
            f = await c.request("user_message", data, id_="t", want="ack")
            self.assertEqual((f["type"], f["data"]["code"]), ("error", "invalid_field"), f)
            self.assertIn(field, f["data"]["message"])
        f = await c.request("get_thread_history", {"thread_id": "x", "limit": "10"}, id_="h", want="thread_history")
        self.assertEqual(f["data"]["code"], "invalid_field")
        threads = await c.request("list_threads", {}, id_="l", want="threads")
        self.assertEqual(threads["data"]["threads"], [], "no thread was created")
        # A frame that is JSON but not a valid frame: the error carries its id.
        await c.ws.send(json.dumps({"id": "noref", "data": {}}))
        f = await c.recv_until(lambda f: f["type"] == "error")
        self.assertEqual((f["data"]["code"], f["data"]["ref"]), ("missing_field", "noref"))
        await c.ws.send(json.dumps({"id": "badtype", "type": 3}))
        f = await c.recv_until(lambda f: f["type"] == "error")
        self.assertEqual((f["data"]["code"], f["data"]["ref"]), ("invalid_field", "badtype"))
        await c.close()


class AuthHostileTest(unittest.IsolatedAsyncioTestCase):
    async def asyncSetUp(self):
        self.srv = harness.Server().start()

    async def asyncTearDown(self):
        self.srv.stop()

    async def test_time_claims_of_the_wrong_type_are_refused(self):
        secret = wsclient.dev_secret(self.srv)
        for exp in ("1000", True, 1000.5):
            token = wsclient.make_jwt(secret, {"sub": "al", "exp": exp})
            with self.assertRaises(websockets.ConnectionClosed) as cm:
                c = await Client.connect(self.srv.port, token)
                await c.recv(timeout=5)
            self.assertEqual(cm.exception.code, 1008)
            status, body = self.srv.get("/api/threads", headers={"Authorization": f"Bearer {token}"})
            self.assertEqual(status, 401, (exp, body))
        token = wsclient.make_jwt(secret, {"sub": "al", "nbf": time.time() + 3600})
        status, body = self.srv.get("/api/threads", headers={"Authorization": f"Bearer {token}"})
        self.assertEqual((status, body["error"]["code"]), (401, "invalid_token"))

    async def test_dev_mode_answers_loopback_names_only(self):
        c = http.client.HTTPConnection("127.0.0.1", self.srv.port, timeout=10)
        c.request("GET", "/auth/dev-token?user=eve", headers={"Host": "attacker.example:8080"})
        r = c.getresponse()
        body = json.loads(r.read())
        self.assertEqual((r.status, body["error"]["code"]), (403, "forbidden_host"))
        c.close()
        status, _ = self.srv.get("/auth/dev-token?user=eve", headers={"Host": f"localhost:{self.srv.port}"})
        self.assertEqual(status, 200)
        token = wsclient.dev_token(self.srv.port, "eve")
        with self.assertRaises(websockets.ConnectionClosed) as cm:
            c = await Client.connect(self.srv.port, token, origin="http://attacker.example")
            await c.recv(timeout=5)
        self.assertEqual(cm.exception.code, 1008)
        ok = await Client.connect(self.srv.port, token, origin=f"http://localhost:{self.srv.port}")
        await ok.close()

    async def test_secret_shorter_than_32_bytes_is_refused_outside_dev_mode(self):
        r = harness.run_cli("check-config", "--set", "auth.dev_mode=off", "--set", "auth.secret=x")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("auth.secret", r.stderr)
        self.assertIn("too short", r.stderr)


class OperatorEndpointsTest(unittest.IsolatedAsyncioTestCase):
    async def test_selfcheck_under_concurrency_passes_and_leaves_nothing_behind(self):
        srv = harness.Server().start()
        try:
            async def one():
                return await asyncio.to_thread(srv.get, "/health/selfcheck")
            t0 = time.monotonic()
            results = await asyncio.gather(*(one() for _ in range(20)))
            elapsed = time.monotonic() - t0
            self.assertEqual([s for s, _ in results], [200] * 20, results)
            ran = [b for _, b in results if not b["reused"]]
            # At most one real check per second, however the 20 calls fell in time.
            self.assertLessEqual(len(ran), 1 + int(elapsed) + 1, (len(ran), elapsed))
            # Later calls run a fresh check once the last one is a second old.
            await asyncio.sleep(1.1)
            status, body = srv.get("/health/selfcheck")
            self.assertEqual((status, body["reused"]), (200, False))
        finally:
            srv.stop()
        db = sqlite3.connect(os.path.join(srv.dir, "agentwire.db"))
        try:
            self.assertEqual(db.execute("SELECT count(*) FROM threads").fetchone()[0], 0)
            self.assertEqual(db.execute("SELECT count(*) FROM messages").fetchone()[0], 0)
            self.assertEqual(db.execute("SELECT count(*) FROM runs").fetchone()[0], 0)
        finally:
            db.close()

    async def test_agui_stream_leaves_no_state_behind(self):
        srv = harness.Server().start()
        try:
            token = wsclient.dev_token(srv.port, "agui")
            req = urllib.request.Request(f"http://127.0.0.1:{srv.port}/agui", method="POST",
                                         data=json.dumps({"messages": [{"role": "user", "content": "hi"}]}).encode(),
                                         headers={"Authorization": f"Bearer {token}",
                                                  "Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=30) as r:
                text = r.read().decode()
            self.assertIn("RUN_FINISHED", text)
            await wait_for_async(lambda: metric(srv, "agentwire_connections") == 0
                                 and metric(srv, "agentwire_users_connected") == 0, what="AG-UI state released")
        finally:
            srv.stop()

    async def test_stalled_consumers_are_counted_as_4001_and_odd_close_codes_as_other(self):
        srv = harness.Server("--set", "ws.send_timeout_ms=500", "--set", "ws.max_messages_per_second=1000").start()
        try:
            token = wsclient.dev_token(srv.port, "stall")
            raw = wsclient.RawWs(srv.port, token, rcvbuf=4096)
            raw.send_text('{"type":"ping"}')
            auth = {"Authorization": f"Bearer {token}"}
            status, thread, _ = srv.request("POST", "/api/threads", {}, headers=auth)
            # Enough output to fill the kernel's socket buffers, however large they grow here.
            for _ in range(60):
                status, ack, _ = srv.request("POST", f"/api/threads/{thread['thread_id']}/messages",
                                             {"content": " ".join(["w"] * 20000)}, headers=auth)
                if "fell behind" in srv.logs():
                    break
                self.assertIn(status, (202, 429), ack)
                if status == 202:
                    await wait_for_async(lambda: metric(srv, "agentwire_agent_runs_active") == 0, what="run done")
            wait_for(lambda: "fell behind" in srv.logs(), what="the stalled consumer cut off")
            _, eof = raw.read_all(timeout=30)
            self.assertTrue(eof)
            raw.close()
            await wait_for_async(lambda: metric(srv, "agentwire_connections_closed_total", code="4001") == 1,
                                 what="the cut-off counted as 4001")
            self.assertEqual(metric(srv, "agentwire_connections_closed_total", code="0"), 0)
            c = await Client.connect(srv.port, wsclient.dev_token(srv.port, "odd"))
            await c.ws.close(code=3999)
            await wait_for_async(lambda: metric(srv, "agentwire_connections_closed_total", code="other") == 1,
                                 what="a code outside the protocol counted as other")
            self.assertEqual(metric(srv, "agentwire_connections_closed_total", code="3999"), 0)
        finally:
            srv.stop()


if __name__ == "__main__":
    harness.main()
