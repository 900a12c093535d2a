"""The server on PostgreSQL (store.backend=postgres) through the real binary: chat, resume, a
restart that keeps everything, and runs interrupted by SIGKILL ended on the next start. Each test
gets a database of its own on the server scripts/test-services started (AW_TEST_PG_URL)."""
import asyncio
import json
import os
import socket
import subprocess
import sys
import time
import unittest
import uuid

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402
import wsclient  # noqa: E402
from wsclient import Client  # noqa: E402

PG = os.environ.get("AW_TEST_PG_URL")
HERE = os.path.dirname(os.path.abspath(__file__))
HANG_AGENT = f"agents.process_command=/usr/bin/python3 {HERE}/agents/hang_after_thinking.py"
TERMINAL = ("agent_completed", "agent_error", "agent_stopped")


def psql(url, sql):
    subprocess.run(["psql", "-q", "-v", "ON_ERROR_STOP=1", url, "-c", sql], check=True, capture_output=True)


class Database:
    """A fresh database, dropped afterwards."""

    def __init__(self):
        self.name = "aw_it_" + uuid.uuid4().hex[:12]
        psql(PG, f"CREATE DATABASE {self.name}")
        self.url = PG.rsplit("/", 1)[0] + "/" + self.name

    def drop(self):
        psql(PG, f"DROP DATABASE IF EXISTS {self.name} WITH (FORCE)")


@unittest.skipUnless(PG or os.environ.get("AW_REQUIRE_SERVICES") == "1", "no PostgreSQL (run through scripts/run-tests)")
def pg_server(url, *args, data_dir=None):
    """A server (not started) on the PostgreSQL database at `url`."""
    return harness.Server("--set", "store.backend=postgres", "--set", "store.url=" + url, "--set", "node.id=node-a",
                          *args, data_dir=data_dir)


class PostgresServerTest(unittest.IsolatedAsyncioTestCase):
    def setUp(self):
        self.assertTrue(PG, "AW_TEST_PG_URL is not set: scripts/test-services did not start PostgreSQL")
        self.db = Database()

    def tearDown(self):
        self.db.drop()

    def server(self, *args, data_dir=None):
        return pg_server(self.db.url, *args, data_dir=data_dir)

    async def test_chat_resume_and_restart_on_postgres(self):
        srv = self.server().start()
        try:
            status, health = srv.get("/health")
            self.assertEqual(status, 200, health)
            store = next(c for c in health["components"] if c["name"] == "store")
            self.assertEqual(store["details"]["backend"], "postgres")
            token = wsclient.dev_token(srv.port, "pat")
            c = await Client.connect(srv.port, token)
            await c.send("ping")
            ack = await c.request("user_message", {"content": "hello postgres"}, id_="m", want="ack")
            self.assertEqual(ack["type"], "ack", ack)
            await c.recv_until(lambda f: f["type"] == "agent_completed")
            epoch, last = c.established["epoch"], c.events()[-1]["seq"]
            seqs = [e["seq"] for e in c.events()]
            self.assertEqual(seqs, list(range(1, last + 1)))
            await c.send("ack_events", {"seq": last})
            await c.close()
        finally:
            srv.stop()
        srv2 = self.server(data_dir=srv.dir).start()
        try:
            c2 = await Client.connect(srv2.port, token)
            self.assertEqual((c2.established["epoch"], c2.established["last_seq"]), (epoch, last))
            r = await c2.request("resume", {"last_seq": 0, "epoch": epoch}, id_="r", want="resume_complete")
            self.assertEqual(r["data"]["to_seq"], last)
            hist = await c2.request("get_thread_history", {"thread_id": ack["data"]["thread_id"]}, id_="h",
                                    want="thread_history")
            self.assertEqual([m["role"] for m in hist["data"]["messages"]], ["user", "agent"])
            await c2.close()
        finally:
            srv2.stop()

    def test_a_database_migrated_by_a_newer_agentwire_is_refused_with_a_clear_error(self):
        srv = self.server().start()
        srv.stop()
        psql(self.db.url, "INSERT INTO agentwire_schema VALUES (99, 0)")
        again = self.server(data_dir=srv.dir).start(wait_ready=False)
        self.assertNotEqual(again.wait_exit(), 0)
        self.assertIn("schema version 99, written by a newer agentwire", again.logs())

    async def test_sigkill_mid_run_ends_the_nodes_runs_with_interrupted(self):
        srv = self.server("--set", HANG_AGENT).start()
        token = wsclient.dev_token(srv.port, "kit")
        c = await Client.connect(srv.port, token)
        await c.send("ping")
        ack = await c.request("user_message", {"content": "x", "agent": "process"}, id_="m", want="ack")
        await c.recv_until(lambda f: f["type"] == "agent_thinking")
        epoch, last = c.established["epoch"], c.events()[-1]["seq"]
        srv.kill()
        await c.ws.close()
        srv2 = self.server("--set", HANG_AGENT, data_dir=srv.dir).start()
        try:
            c2 = await Client.connect(srv2.port, token)
            await c2.request("resume", {"last_seq": last, "epoch": epoch}, id_="r", want="resume_complete")
            end = [e for e in c2.events() if e["type"] in TERMINAL]
            self.assertEqual([(e["run_id"], e["data"]["code"]) for e in end], [(ack["data"]["run_id"], "interrupted")])
            await c2.close()
        finally:
            srv2.stop()


class PostgresOutageTest(unittest.IsolatedAsyncioTestCase):
    """A private PostgreSQL that crashes (immediate stop) under chat and comes back."""

    async def test_a_postgres_crash_under_load_refuses_with_unavailable_and_loses_no_acked_message(self):
        pg = harness.Postgres().start()
        srv = None
        clients = []
        try:
            srv = pg_server(pg.url, "--set", "ws.max_messages_per_second=10000").start()
            users = [f"olga{n}" for n in range(8)]
            clients = [await Client.connect(srv.port, wsclient.dev_token(srv.port, u)) for u in users]
            acked = {u: [] for u in users}
            refused = []
            stop = asyncio.Event()

            async def load(n):
                # Each user chats without pause in one thread, answers or not.
                c, u, i = clients[n], users[n], 0
                while not stop.is_set():
                    i += 1
                    data = {"content": f"m{i}"}
                    if acked[u]:
                        data["thread_id"] = acked[u][0]["thread_id"]
                    r = await c.request("user_message", data, id_=f"m{i}", want="ack", timeout=60)
                    if r["type"] == "ack":
                        acked[u].append(r["data"])
                    else:
                        refused.append(r["data"]["code"])
                        await asyncio.sleep(0.01)  # a client's retry pause; the refusals are the subject

            def total():
                return sum(len(a) for a in acked.values())

            tasks = [asyncio.create_task(load(n)) for n in range(len(users))]
            await harness.wait_for_async(lambda: total() >= 40, what="load before the crash")
            pg.crash()  # immediate stop, in the middle of commits
            await harness.wait_for_async(lambda: srv.get("/health/ready")[0] == 503,
                                         what="not ready while PostgreSQL is down")
            await harness.wait_for_async(lambda: len(refused) >= 8, what="messages refused while it is down")
            pg.start()
            await harness.wait_for_async(lambda: srv.get("/health/ready")[0] == 200, timeout=60,
                                         what="ready again once PostgreSQL is back")
            before = total()
            await harness.wait_for_async(lambda: total() >= before + 40, what="load after the recovery")
            stop.set()
            await asyncio.gather(*tasks)
            self.assertEqual(set(refused), {"unavailable"}, "every refusal is retryable")
            # Nothing acked was lost: every acked message is stored and its run ended.
            for n, u in enumerate(users):
                c = clients[n]
                for a in acked[u]:
                    def ends(f, a=a):
                        return f.get("run_id") == a["run_id"] and f["type"] in TERMINAL
                    if not any(ends(f) for f in c.frames):
                        await c.recv_until(ends, timeout=30)
                # A pooled connection broken by the crash may fail its first read after the recovery with
                # `unavailable`, which a client retries (protocol.md); any other answer fails the test.
                deadline = time.time() + 20
                attempt = 0
                while True:
                    attempt += 1
                    hist = await c.request("get_thread_history",
                                           {"thread_id": acked[u][0]["thread_id"], "limit": 1000},
                                           id_=f"h{attempt}", want="thread_history")
                    if (hist["type"] == "thread_history" or hist["data"].get("code") != "unavailable"
                            or time.time() > deadline):
                        break
                    await asyncio.sleep(0.05)  # polling a condition: the pool reconnecting
                self.assertEqual(hist["type"], "thread_history", hist)
                stored = {m["message_id"] for m in hist["data"]["messages"] if m["role"] == "user"}
                self.assertEqual({a["message_id"] for a in acked[u]} - stored, set(), f"acked and lost ({u})")
                seqs = [e["seq"] for e in c.events()]
                self.assertEqual(seqs, list(range(seqs[0], seqs[0] + len(seqs))), f"a gap in {u}'s stream")
        finally:
            for c in clients:
                await c.close()
            if srv:
                srv.stop()
            pg.stop()


async def read_to_close(sock, timeout=30):
    """Everything the server sends on a Connection: close socket, then closes it."""
    sock.settimeout(timeout)
    data = b""
    while chunk := await asyncio.to_thread(sock.recv, 65536):
        data += chunk
    sock.close()
    return data


class IoThreadTest(unittest.IsolatedAsyncioTestCase):
    """Store calls never run on an I/O thread: with one I/O thread and a hung database, every
    connection that does not need the database is still served."""

    async def test_a_hung_database_never_holds_the_io_thread(self):
        pg = harness.Postgres().start()
        srv = None
        clients = []
        try:
            srv = pg_server(pg.url, "--set", "server.threads=1").start()
            waiting = await Client.connect(srv.port, wsclient.dev_token(srv.port, "ann"))
            other = await Client.connect(srv.port, wsclient.dev_token(srv.port, "bob"))
            clients = [waiting, other]
            for c in clients:  # live (caught up from the stream) before the database hangs
                await c.request("ping", id_="live", want="pong")
            pg.pause()
            try:
                # Each of these waits on the database...
                await waiting.send("list_threads", {}, id_="slow-list")
                await waiting.send("user_message", {"content": "needs a new thread"}, id_="slow-create")
                # ...and the refusal of a later frame waits behind them: replies keep frame order.
                await waiting.ws.send('{"id": "slow-refused"}')
                # An HTTP API read, in the server's socket before the pings below are sent.
                token = wsclient.dev_token(srv.port, "cyd")
                http = socket.create_connection(("127.0.0.1", srv.port))
                http.sendall(f"GET /api/threads HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
                             "Connection: close\r\n\r\n".encode())
                # An AG-UI run: finding or creating its thread and attaching its stream wait too.
                agui = socket.create_connection(("127.0.0.1", srv.port))
                body = json.dumps({"messages": [{"id": "u1", "role": "user", "content": "agui while hung"}]})
                agui.sendall(f"POST /agui HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
                             f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
                             f"Connection: close\r\n\r\n{body}".encode())
                # ...and the one I/O thread serves everyone else meanwhile.
                for i in range(3):
                    pong = await other.request("ping", id_=f"p{i}", want="pong", timeout=5)
                    self.assertEqual(pong["type"], "pong")
                status, _ = srv.get("/health/live")
                self.assertEqual(status, 200)
            finally:
                pg.resume()
            # Once the database answers, the waiting connection gets its answers: the replies in
            # frame order, the ack (sent once the message is durable) whenever it is.
            await waiting.recv_until(lambda f: len([g for g in waiting.frames
                                                    if g.get("id", "").startswith("slow")]) == 3, timeout=30)
            answers = {f["id"]: f for f in waiting.frames if f.get("id", "").startswith("slow")}
            replies = [i for i in answers if i != "slow-create"]
            self.assertEqual(replies, ["slow-list", "slow-refused"])
            self.assertEqual(answers["slow-list"]["type"], "threads")
            self.assertEqual(answers["slow-create"]["type"], "ack", answers["slow-create"])
            self.assertEqual(answers["slow-refused"]["data"]["code"], "missing_field", answers["slow-refused"])
            answer = await read_to_close(http)
            self.assertTrue(answer.startswith(b"HTTP/1.1 200"), answer[:200])
            streamed = await read_to_close(agui)
            self.assertTrue(streamed.startswith(b"HTTP/1.1 200"), streamed[:200])
            self.assertIn(b'"RUN_FINISHED"', streamed)
        finally:
            for c in clients:
                await c.close()
            if srv:
                srv.stop()
            pg.stop()

if __name__ == "__main__":
    harness.main()
