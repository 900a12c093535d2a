"""The WebSocket gateway against the real binary, driven by Debian's python3-websockets:
authentication, every error code and the connection's fate, per-user delivery, resume."""
import asyncio
import json
import os
import random
import re
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402
import wsclient  # noqa: E402
from wsclient import Client  # noqa: E402

import websockets  # noqa: E402


class GatewayTest(unittest.IsolatedAsyncioTestCase):
    @classmethod
    def setUpClass(cls):
        cls.srv = harness.Server("--set", "ws.max_messages_per_second=1000",
                                 "--set", "ws.max_connections_per_user=200",
                                 "--set", "agents.max_queue=100000").start()

    @classmethod
    def tearDownClass(cls):
        cls.srv.stop()

    def token(self, user):
        return wsclient.dev_token(self.srv.port, user)

    async def connect(self, user, **kw):
        return await Client.connect(self.srv.port, self.token(user), **kw)

    async def run_message(self, c, content, id_="m1", thread_id=None):
        data = {"content": content}
        if thread_id:
            data["thread_id"] = thread_id
        ack = await c.request("user_message", data, id_=id_, want="ack")
        self.assertEqual(ack["type"], "ack", ack)
        run_id = ack["data"]["run_id"]
        await c.recv_until(lambda f: f.get("run_id") == run_id and f["type"] in ("agent_completed", "agent_error"))
        return ack["data"]

    # --- authentication -------------------------------------------------------------------

    async def assert_refused(self, headers=None, subprotocols=None, reason_prefix=""):
        with self.assertRaises(websockets.ConnectionClosed) as cm:
            async with websockets.connect(f"ws://127.0.0.1:{self.srv.port}/ws", extra_headers=headers or {},
                                          subprotocols=subprotocols) as ws:
                await asyncio.wait_for(ws.recv(), 5)
        self.assertEqual(cm.exception.code, 1008)
        self.assertTrue(cm.exception.reason.startswith(reason_prefix), cm.exception.reason)

    async def test_missing_forged_expired_and_alg_none_tokens_are_refused_with_1008(self):
        secret = wsclient.dev_secret(self.srv)
        now = int(time.time())
        await self.assert_refused(reason_prefix="missing_token")
        forged = wsclient.make_jwt("not-the-secret", {"sub": "eve", "exp": now + 60})
        await self.assert_refused({"Authorization": f"Bearer {forged}"}, reason_prefix="invalid_token")
        expired = wsclient.make_jwt(secret, {"sub": "eve", "exp": now - 5})
        await self.assert_refused({"Authorization": f"Bearer {expired}"}, reason_prefix="token_expired")
        none = wsclient.make_jwt(secret, {"sub": "eve"}, alg="none")
        await self.assert_refused({"Authorization": f"Bearer {none}"}, reason_prefix="invalid_token")
        # A valid token signed by us by hand (not from /auth/dev-token) is accepted.
        good = wsclient.make_jwt(secret, {"sub": "eve", "exp": now + 60})
        c = await Client.connect(self.srv.port, good)
        self.assertEqual(c.established["user_id"], "eve")
        await c.close()
        # No state was created for the refused ones: eve's stream is untouched.
        status, body = self.srv.get("/api/threads", headers={"Authorization": f"Bearer {good}"})
        self.assertEqual((status, body["threads"]), (200, []))

    async def test_subprotocol_token_is_answered_with_jwt_auth(self):
        token = self.token("sub1")
        async with websockets.connect(f"ws://127.0.0.1:{self.srv.port}/ws",
                                      subprotocols=["jwt-auth", f"jwt.{token}"]) as ws:
            self.assertEqual(ws.subprotocol, "jwt-auth")
            first = json.loads(await ws.recv())
            self.assertEqual(first["data"]["user_id"], "sub1")

    # --- errors: each code, and the connection survives -----------------------------------

    async def assert_alive(self, c):
        pong = await c.request("ping", id_="alive", want="pong")
        self.assertEqual(pong["type"], "pong")

    async def test_every_error_code_keeps_the_connection_open(self):
        c = await self.connect("errors")
        other = await self.connect("errors_other")
        foreign = (await self.run_message(other, "mine"))["thread_id"]

        await c.ws.send("{not json")
        f = await c.recv_until(lambda f: f["type"] == "error")
        self.assertEqual(f["data"]["code"], "invalid_json")
        await self.assert_alive(c)

        await c.ws.send(json.dumps({"id": "x1", "data": {}}))
        f = await c.recv_until(lambda f: f["type"] == "error")
        self.assertEqual(f["data"]["code"], "missing_field")
        await self.assert_alive(c)

        f = await c.request("user_message", {}, id_="x2")
        self.assertEqual((f["type"], f["data"]["code"], f["data"]["ref"]), ("error", "missing_field", "x2"))

        f = await c.request("teleport", {}, id_="x3")
        self.assertEqual(f["data"]["code"], "unknown_type")

        f = await c.request("user_message", {"thread_id": "thr_doesnotexist", "content": "hi"}, id_="x4")
        self.assertEqual(f["data"]["code"], "thread_not_found")

        f = await c.request("user_message", {"thread_id": foreign, "content": "hi"}, id_="x5")
        self.assertEqual(f["data"]["code"], "forbidden")
        f = await c.request("get_thread_history", {"thread_id": foreign}, id_="x6")
        self.assertEqual(f["data"]["code"], "forbidden")

        await c.ws.send(b"\x00\x01binary")
        f = await c.recv_until(lambda f: f["type"] == "error")
        self.assertEqual(f["data"]["code"], "invalid_json")
        await self.assert_alive(c)
        self.assertFalse([e for e in c.events()], "no stream event reached the wrong user")
        await c.close()
        await other.close()

    async def test_aliases_of_the_python_service_are_accepted(self):
        c = await self.connect("aliases")
        await c.ws.send(json.dumps({"type": "chat_message", "id": "a1", "payload": {"content": "via alias"}}))
        ack = await c.recv_until(lambda f: f.get("id") == "a1")
        self.assertEqual(ack["type"], "ack")
        await c.close()

    # --- delivery ------------------------------------------------------------------------

    async def test_all_five_events_in_order_and_history(self):
        c = await self.connect("order")
        ack = await self.run_message(c, "one two three")
        types = [f["type"] for f in c.events()]
        core = [t for t in types if t != "agent_response_chunk"]
        self.assertEqual(core, ["agent_started", "agent_thinking", "tool_executing", "tool_completed",
                                "agent_completed"])
        self.assertIn("agent_response_chunk", types)
        seqs = [f["seq"] for f in c.events()]
        self.assertEqual(seqs, list(range(seqs[0], seqs[0] + len(seqs))))
        for f in c.events():
            self.assertEqual(f["thread_id"], ack["thread_id"])
            self.assertEqual(f["run_id"], ack["run_id"])
            self.assertIn("ts", f)
        chunks = "".join(f["data"]["delta"] for f in c.events() if f["type"] == "agent_response_chunk")
        done = c.events()[-1]["data"]
        self.assertEqual(chunks, done["content"])
        hist = await c.request("get_thread_history", {"thread_id": ack["thread_id"]}, id_="h", want="thread_history")
        self.assertEqual([m["role"] for m in hist["data"]["messages"]], ["user", "agent"])
        self.assertEqual(hist["data"]["messages"][1]["content"], done["content"])
        await c.close()

    async def test_thread_connection_consistency_user_without_connection(self):
        # The seed's test: deliver to a thread whose user has no connection: no error, stored;
        # then connect and resume: received once.
        token = self.token("offline")
        status, t, _ = self.srv.request("POST", "/api/threads", {"title": "later"},
                                        headers={"Authorization": f"Bearer {token}"})
        self.assertEqual(status, 201)
        status, ack, _ = self.srv.request("POST", f"/api/threads/{t['thread_id']}/messages", {"content": "while away"},
                                          headers={"Authorization": f"Bearer {token}"})
        self.assertEqual(status, 202, ack)
        # Wait for the run to finish server-side (it is stored either way).
        deadline = time.time() + 10
        while time.time() < deadline:
            _, hist = self.srv.get(f"/api/threads/{t['thread_id']}/messages",
                                   headers={"Authorization": f"Bearer {token}"})
            if len(hist["messages"]) == 2:
                break
            await asyncio.sleep(0.02)
        # The code logs "MessageDeliveryError: cannot deliver ..." (DeliveryTest checks the wording).
        self.assertNotIn("cannot deliver", self.srv.logs().lower())
        c = await Client.connect(self.srv.port, token)
        r = await c.request("resume", {"last_seq": 0, "epoch": c.established["epoch"]}, id_="res",
                            want="resume_complete")
        self.assertEqual(r["type"], "resume_complete", r)
        events = c.events()
        self.assertEqual([e["seq"] for e in events], list(range(1, r["data"]["to_seq"] + 1)))
        self.assertEqual(events[-1]["type"], "agent_completed")
        self.assertEqual(len([e for e in events if e["type"] == "agent_started"]), 1)
        await c.close()

    async def test_every_connection_of_a_user_receives_every_event_in_order(self):
        conns = [await self.connect("multi") for _ in range(3)]
        for c in conns[1:]:
            await c.send("ping")  # go live at once instead of waiting out the resume window
        ack = await self.run_message(conns[0], "to all tabs")
        for c in conns[1:]:
            await c.recv_until(lambda f: f.get("run_id") == ack["run_id"] and f["type"] == "agent_completed")
        seqs = [[e["seq"] for e in c.events()] for c in conns]
        self.assertEqual(seqs[0], seqs[1])
        self.assertEqual(seqs[0], seqs[2])
        self.assertEqual(seqs[0], sorted(seqs[0]))
        for c in conns:
            await c.close()

    async def test_isolation_200_users_concurrent_runs_zero_cross_talk(self):
        users = [f"iso{i}" for i in range(200)]
        tokens = {u: self.token(u) for u in users}
        clients = await asyncio.gather(*(Client.connect(self.srv.port, tokens[u]) for u in users))

        async def one(user, c):
            ack = await self.run_message(c, f"secret of {user}", id_=user)
            return user, ack, c

        results = await asyncio.gather(*(one(u, c) for u, c in zip(users, clients)))
        for user, ack, c in results:
            for e in c.events():
                self.assertEqual(e["thread_id"], ack["thread_id"], user)
                if e["type"] == "agent_started":
                    self.assertEqual(e["data"]["input"], f"secret of {user}")
                if e["type"] == "agent_completed":
                    self.assertIn(f"secret of {user}", e["data"]["content"])
                    for other in ("secret of iso",):
                        self.assertEqual(e["data"]["content"].count(other), 1)
        await asyncio.gather(*(c.close() for c in clients))

    async def test_reconnect_mid_run_50_times_union_equals_stream(self):
        user = "flaky"
        token = self.token(user)
        rng = random.Random(7)
        c = await Client.connect(self.srv.port, token)
        epoch = c.established["epoch"]
        seen = []  # seqs in the order received, across every connection
        last = c.established["last_seq"]
        # Long answers (~150 chunks a run) keep a run in flight across several cuts.
        content = " ".join(f"w{i}" for i in range(600))
        await c.send("ping")
        runs = 0

        def take(f):
            nonlocal last
            if "seq" in f:
                self.assertEqual(f["seq"], last + 1, "gap or duplicate across a reconnect")
                last = f["seq"]
                seen.append(f["seq"])

        for i in range(50):
            if i % 5 == 0:
                await c.send("user_message", {"content": content}, id_=f"run{i}")
                runs += 1
            # Read a random number of frames, then cut the socket without a close handshake.
            for _ in range(rng.randint(1, 60)):
                try:
                    take(await c.recv(timeout=0.5))
                except asyncio.TimeoutError:
                    break
            c.ws.transport.abort()
            c = await Client.connect(self.srv.port, token)
            self.assertEqual(c.established["epoch"], epoch)
            r = await c.request("resume", {"last_seq": last, "epoch": epoch}, id_=f"res{i}", want="resume_complete")
            self.assertEqual(r["type"], "resume_complete", r)
            for f in c.frames:
                take(f)
            c.frames.clear()
        # Drain to the end of the last run.
        while True:
            try:
                take(await c.recv(timeout=2))
            except asyncio.TimeoutError:
                break
        await c.close()
        # The union of what was received is exactly the stored stream.
        fresh = await Client.connect(self.srv.port, token)
        r = await fresh.request("resume", {"last_seq": 0, "epoch": epoch}, id_="all", want="resume_complete")
        stored = [e["seq"] for e in fresh.events()]
        self.assertEqual(stored, list(range(1, r["data"]["to_seq"] + 1)))
        self.assertEqual(seen, stored)
        runs_seen = [e for e in fresh.events() if e["type"] == "agent_started"]
        self.assertEqual(len(runs_seen), runs)
        self.assertEqual(len([e for e in fresh.events() if e["type"] == "agent_completed"]), runs)
        await fresh.close()

    async def test_resume_with_stale_epoch_requires_resync(self):
        c = await self.connect("resync")
        f = await c.request("resume", {"last_seq": 0, "epoch": "ep_bogus"}, id_="r1")
        self.assertEqual(f["type"], "resync_required")
        await self.assert_alive(c)
        await c.close()

    async def test_resume_in_the_url(self):
        c = await self.connect("urlresume")
        await c.send("ping")
        await self.run_message(c, "first")
        last = c.events()[-1]["seq"]
        epoch = c.established["epoch"]
        await c.close()
        c2 = await Client.connect(self.srv.port, self.token("urlresume"), path=f"/ws?last_seq=2&epoch={epoch}")
        r = await c2.recv_until(lambda f: f["type"] == "resume_complete")
        self.assertEqual([e["seq"] for e in c2.events()], list(range(3, last + 1)))
        self.assertEqual(r["data"]["to_seq"], last)
        await c2.close()

    async def test_threads_and_stop(self):
        c = await self.connect("threads")
        t = await c.request("create_thread", {"title": "Plans"}, id_="t1", want="thread_created")
        self.assertEqual(t["data"]["title"], "Plans")
        ls = await c.request("list_threads", {}, id_="t2", want="threads")
        self.assertIn(t["data"]["thread_id"], [x["thread_id"] for x in ls["data"]["threads"]])
        f = await c.request("stop_agent", {"run_id": "run_nope"}, id_="t3")
        self.assertEqual(f["data"]["code"], "run_not_found")
        await c.close()

    async def test_http_api_errors(self):
        status, body = self.srv.get("/api/threads")
        self.assertEqual((status, body["error"]["code"]), (401, "missing_token"))
        status, body = self.srv.get("/api/threads", headers={"Authorization": "Bearer junk"})
        self.assertEqual((status, body["error"]["code"]), (401, "invalid_token"))
        a = {"Authorization": f"Bearer {self.token('api_a')}"}
        b = {"Authorization": f"Bearer {self.token('api_b')}"}
        status, t, _ = self.srv.request("POST", "/api/threads", {"title": "a's"}, headers=a)
        self.assertEqual(status, 201)
        status, body = self.srv.get(f"/api/threads/{t['thread_id']}/messages", headers=b)
        self.assertEqual((status, body["error"]["code"]), (403, "forbidden"))
        status, body = self.srv.get("/api/threads/thr_nope/messages", headers=a)
        self.assertEqual((status, body["error"]["code"]), (404, "thread_not_found"))
        status, body, _ = self.srv.request("POST", f"/api/threads/{t['thread_id']}/messages", {}, headers=a)
        self.assertEqual((status, body["error"]["code"]), (400, "missing_field"))
        status, body = self.srv.get("/auth/dev-token?user=__agentwire_system")
        self.assertEqual(status, 400, "the reserved user cannot get a token")


class LimitsTest(unittest.IsolatedAsyncioTestCase):
    """Limits each produce their own code; the process survives them all."""

    async def asyncSetUp(self):
        self.srv = harness.Server("--set", "ws.max_messages_per_second=5",
                                  "--set", "ws.max_message_bytes=4096",
                                  "--set", "ws.max_connections_per_user=2",
                                  "--set", "ws.idle_timeout_ms=600").start()

    async def asyncTearDown(self):
        self.srv.stop()

    async def test_rate_limit_is_an_error_frame_not_a_close(self):
        c = await Client.connect(self.srv.port, wsclient.dev_token(self.srv.port, "rl"))
        for i in range(12):
            await c.send("ping", id_=f"p{i}")
        replies = [await c.recv_until(lambda f: f.get("id") == f"p{i}") for i in range(12)]
        codes = [r["type"] if r["type"] == "pong" else r["data"]["code"] for r in replies]
        self.assertEqual(codes.count("pong"), 5, codes)
        self.assertEqual(codes.count("rate_limited"), 7, codes)
        await asyncio.sleep(1.1)
        pong = await c.request("ping", id_="after", want="pong")
        self.assertEqual(pong["type"], "pong")
        await c.close()

    async def test_too_large_closes_1009(self):
        c = await Client.connect(self.srv.port, wsclient.dev_token(self.srv.port, "big"))
        await c.send("user_message", {"content": "x" * 5000})
        with self.assertRaises(websockets.ConnectionClosed) as cm:
            await c.recv(timeout=5)
        self.assertEqual(cm.exception.code, 1009)
        c2 = await Client.connect(self.srv.port, wsclient.dev_token(self.srv.port, "big"))
        await c2.close()

    async def test_connections_per_user_limit_closes_4002(self):
        token = wsclient.dev_token(self.srv.port, "many")
        a = await Client.connect(self.srv.port, token)
        b = await Client.connect(self.srv.port, token)
        with self.assertRaises(websockets.ConnectionClosed) as cm:
            await Client.connect(self.srv.port, token)
        self.assertEqual(cm.exception.code, 4002)
        await a.close()
        await b.close()

    async def test_dead_peer_is_detected_and_removed(self):
        token = wsclient.dev_token(self.srv.port, "dead")
        raw = wsclient.RawWs(self.srv.port, token)  # never answers the server's pings
        t0 = time.time()
        _, eof = raw.read_all(timeout=5)
        self.assertTrue(eof, "the server kept a peer that never answers pings")
        self.assertLess(time.time() - t0, 3)
        raw.close()
        # Its slot is free again: two new connections fit under the limit of two.
        a = await Client.connect(self.srv.port, token)
        b = await Client.connect(self.srv.port, token)
        await a.close()
        await b.close()


class SlowConsumerTest(unittest.IsolatedAsyncioTestCase):
    async def test_client_that_never_reads_is_cut_off_while_others_keep_latency(self):
        srv = harness.Server("--set", "ws.max_queue_messages=64", "--set", "ws.max_queue_bytes=65536",
                             "--set", "ws.send_timeout_ms=1000",
                             "--set", "store.retention_events=100000",
                             "--set", "ws.max_messages_per_second=1000",
                             "--set", "ws.max_message_bytes=1048576",
                             # a flood of small frames: every delta its own chunk, no rollup
                             "--set", "agents.chunk_window_ms=0").start()
        try:
            token = wsclient.dev_token(srv.port, "slow")
            with open(f"/proc/{srv.proc.pid}/status") as f:
                rss_before_kb = int(next(l for l in f if l.startswith("VmRSS")).split()[1])
            raw = wsclient.RawWs(srv.port, token, rcvbuf=4096)
            raw.send_text('{"type":"ping"}')  # first frame: live from now on, then never reads again
            fast = await Client.connect(srv.port, wsclient.dev_token(srv.port, "fast"))
            await fast.send("ping")
            auth = {"Authorization": f"Bearer {token}"}
            status, t, _ = srv.request("POST", "/api/threads", {}, headers=auth)
            big = " ".join(["word"] * 20000)  # ~6,000 chunks per run
            for _ in range(3):
                status, _, _ = srv.request("POST", f"/api/threads/{t['thread_id']}/messages", {"content": big},
                                           headers=auth)
                self.assertEqual(status, 202)
            worst = 0.0
            deadline = time.time() + 20
            while time.time() < deadline and "fell behind" not in srv.logs():
                t0 = time.time()
                await fast.request("ping", id_=f"lat{t0}", want="pong")
                worst = max(worst, time.time() - t0)
                await asyncio.sleep(0.05)
            self.assertIn("fell behind", srv.logs())
            self.assertLess(worst, 1.0, "another client's latency suffered")
            data, eof = raw.read_all(timeout=5)
            self.assertTrue(eof, "the slow consumer was not disconnected")
            code = wsclient.RawWs.close_code(data)
            self.assertIn(code, (4001, None), code)  # None: cut at TCP level after the close timed out
            raw.close()
            # Memory stays bounded: the cut-off came with the backlog at the bound (64 frames /
            # 64 KiB, plus the one frame being added), as the server's own log line reports.
            m = re.search(r"fell behind \((\d+) frames, (\d+) bytes queued[:)]", srv.logs())
            self.assertLessEqual(int(m.group(1)), 64)
            self.assertLessEqual(int(m.group(2)), 65536 + 110 * 1024)
            if not os.environ.get("AW_SANITIZED"):  # ASan's quarantine alone holds ~256 MB
                with open(f"/proc/{srv.proc.pid}/status") as f:
                    rss_kb = int(next(l for l in f if l.startswith("VmRSS")).split()[1])
                self.assertLess(rss_kb - rss_before_kb, 64 * 1024)
            # Its events are in the stream: once the runs are over, a new connection resumes them
            # all through the same 64-frame bound (the replay is paced by the queue draining).
            deadline = time.time() + 60
            while time.time() < deadline:
                _, hist = srv.get(f"/api/threads/{t['thread_id']}/messages", headers=auth)
                if len(hist["messages"]) == 6:
                    break
                await asyncio.sleep(0.1)
            self.assertEqual(len(hist["messages"]), 6)
            # This server cuts a connection whose writes stall for 1 s (ws.send_timeout_ms): a Python
            # reader starved of CPU by the rest of the suite can trip it, as any client can. It then
            # does what a client does: reconnect and resume from the last seq it has.
            seqs = []
            for _ in range(20):
                c = await Client.connect(srv.port, token)
                try:
                    r = await c.request("resume", {"last_seq": seqs[-1] if seqs else 0,
                                                   "epoch": c.established["epoch"]},
                                        id_="r", want="resume_complete", timeout=60)
                    seqs += [e["seq"] for e in c.events()]
                    await c.close()
                    break
                except websockets.ConnectionClosed as closed:
                    # 4001, or None when the close itself could not be delivered in time
                    self.assertIn(closed.rcvd.code if closed.rcvd else None, (4001, None), closed)
                    seqs += [e["seq"] for e in c.events()]
                except TimeoutError:
                    # The same cut seen from a reader starved long enough that the close handshake is
                    # still under way when its wait ends: drop the connection, keep what arrived, resume.
                    c.ws.transport.abort()
                    seqs += [e["seq"] for e in c.events()]
            self.assertEqual(seqs, list(range(1, r["data"]["to_seq"] + 1)), "every event once, in order")
            await fast.close()
        finally:
            srv.stop()


class RestartTest(unittest.IsolatedAsyncioTestCase):
    async def test_sigkill_then_restart_keeps_streams_threads_and_messages(self):
        srv = harness.Server().start()
        token = wsclient.dev_token(srv.port, "durable")
        c = await Client.connect(srv.port, token)
        await c.send("ping")
        ack = await c.request("user_message", {"content": "remember me"}, id_="m", want="ack")
        await c.recv_until(lambda f: f["type"] == "agent_completed")
        epoch, last = c.established["epoch"], c.events()[-1]["seq"]
        await c.close()
        srv.kill()

        srv2 = harness.Server(data_dir=srv.dir).start()
        try:
            token2 = wsclient.dev_token(srv2.port, "durable")
            self.assertEqual(token2.count("."), 2)
            c2 = await Client.connect(srv2.port, token)  # the old token still verifies: same dev secret
            self.assertEqual(c2.established["epoch"], epoch)
            self.assertEqual(c2.established["last_seq"], last)
            r = await c2.request("resume", {"last_seq": 2, "epoch": epoch}, id_="r", want="resume_complete")
            self.assertEqual([e["seq"] for e in c2.events()], list(range(3, last + 1)))
            hist = await c2.request("get_thread_history", {"thread_id": ack["data"]["thread_id"]}, id_="h",
                                    want="thread_history")
            self.assertEqual([m["content"] for m in hist["data"]["messages"]][0], "remember me")
            self.assertEqual(len(hist["data"]["messages"]), 2)
            await c2.close()
        finally:
            srv2.stop()


class ShutdownTest(unittest.IsolatedAsyncioTestCase):
    async def test_sigterm_closes_clients_with_1012_and_exits_zero(self):
        import signal
        srv = harness.Server().start()
        c = await Client.connect(srv.port, wsclient.dev_token(srv.port, "bye"))
        await c.send("ping")
        srv.signal(signal.SIGTERM)
        with self.assertRaises(websockets.ConnectionClosed) as cm:
            while True:
                await c.recv(timeout=10)
        self.assertEqual(cm.exception.code, 1012)
        self.assertEqual(srv.wait_exit(), 0, srv.logs())


if __name__ == "__main__":
    harness.main()
