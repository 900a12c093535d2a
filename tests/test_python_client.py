"""The Python client (clients/python/agentwire_client) and its terminal chat, against the real server.
Outages happen as they really do: a TCP proxy in front of the server (a load balancer) drops every
connection or points at a restarted server; the server is SIGKILLed. Every wait is on a condition."""
import asyncio
import os
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "clients", "python"))
import harness  # noqa: E402
from harness import metric  # noqa: E402
import wsclient  # noqa: E402
from agentwire_client import AgentwireClient, AgentwireError, FileStorage  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..")
GATED = ("--set", f"agents.process_command=/usr/bin/python3 {ROOT}/clients/js/test/gated_agent.py",
         "--set", "agents.default=process")


async def wait_for(cond, what, timeout=20):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not cond():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what() if callable(what) else what}")
        await asyncio.sleep(0.005)  # polls the condition


class Proxy:
    """Forwards TCP to `target_port`; drop() cuts every connection; the target can change (a load
    balancer in front of a restarted server)."""

    def __init__(self, target_port):
        self.target_port = target_port
        self.writers = set()
        self.accepted = 0

    async def start(self):
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"
        return self

    async def _serve(self, reader, writer):
        self.accepted += 1
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return
        self.writers.update((writer, up_writer))

        async def pipe(r, w):
            try:
                while data := await r.read(65536):
                    w.write(data)
                    await w.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                w.close()
                self.writers.discard(w)

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    def drop(self):
        for w in list(self.writers):
            w.transport.abort()
        self.writers.clear()

    async def stop(self):
        self.drop()
        self.server.close()
        await self.server.wait_closed()


class ClientTest(unittest.IsolatedAsyncioTestCase):
    async def asyncSetUp(self):
        self.servers, self.clients, self.gates = [], [], []

    async def asyncTearDown(self):
        for c in self.clients:
            await c.close()
        for gate in self.gates:
            open(gate, "w").close()  # an agent left waiting by a killed server exits
        for s in self.servers:
            if s.proc.poll() is None:
                s.stop()
            else:
                s.log.close()

    def server(self, *args, data_dir=None):
        s = harness.Server(*args, data_dir=data_dir).start()
        self.servers.append(s)
        return s

    def client(self, url, token=None, **kw):
        c = AgentwireClient(url, token=token, backoff_initial=0.05, backoff_max=0.5, **kw)
        c.seen = []
        c.on("event", c.seen.append)
        self.clients.append(c)
        return c

    def gate(self):
        path = os.path.join(tempfile.mkdtemp(dir=harness.TMP_ROOT), "open")
        self.gates.append(path)
        return path

    def assert_contiguous(self, events):
        seqs = [e["seq"] for e in events]
        self.assertEqual(seqs, list(range(seqs[0], seqs[0] + len(seqs))), "each event once, in order")

    async def test_golden_path_send_stream_done_threads_history_and_acks(self):
        srv = self.server()
        c = self.client(f"http://127.0.0.1:{srv.port}", wsclient.dev_token(srv.port, "alice"))
        states = []
        c.on("state", states.append)
        await c.connect()
        run = await c.send("hello world")
        chunks, tools = [], []
        run.on("chunk", lambda delta, ev: chunks.append(delta))
        run.on("tool", lambda d, ev: tools.append(f"{ev['type']}:{d['tool_name']}"))
        result = await run.done
        self.assertEqual((result["status"], result["content"]), ("completed", "Echo (2 words): hello world"))
        self.assertEqual("".join(chunks), result["content"])
        self.assertEqual(tools, ["tool_executing:word_count", "tool_completed:word_count"])
        self.assertEqual([e["type"] async for e in run.events()][0], "agent_started")
        self.assert_contiguous(c.seen)
        threads = (await c.threads())["threads"]
        self.assertTrue(any(t["thread_id"] == run.thread_id for t in threads))
        history = await c.history(run.thread_id)
        self.assertEqual([(m["role"], m["content"]) for m in history["messages"]],
                         [("user", "hello world"), ("agent", result["content"])])
        await wait_for(lambda: metric(srv, "agentwire_events_acked_total") == c.last_seq, "the server to count the ack")
        self.assertEqual(states, ["connecting", "live"])

    async def test_a_connection_dropped_mid_run_reconnects_and_the_run_arrives_whole_and_once(self):
        srv = self.server(*GATED)
        proxy = await Proxy(srv.port).start()
        self.addAsyncCleanup(proxy.stop)
        c = self.client(proxy.url, wsclient.dev_token(srv.port, "bob"))
        await c.connect()
        gate = self.gate()
        run = await c.send(f"gate:{gate}")
        await wait_for(lambda: run.text == "part one, ", "the first half")
        proxy.drop()
        await wait_for(lambda: c.state == "reconnecting", "the client to notice")
        await wait_for(lambda: c.state == "live" and proxy.accepted >= 2, "the client to be live again")
        open(gate, "w").close()
        result = await asyncio.wait_for(run.done, 20)
        self.assertEqual(result["content"], "part one, part two")
        self.assertEqual([e["type"] for e in run.events_seen].count("agent_started"), 1)
        self.assert_contiguous(c.seen)

    async def test_the_server_killed_mid_run_and_restarted_behind_the_same_address(self):
        first = self.server(*GATED)
        proxy = await Proxy(first.port).start()
        self.addAsyncCleanup(proxy.stop)
        token = wsclient.dev_token(first.port, "carol")
        c = self.client(proxy.url, token)
        await c.connect()
        gate = self.gate()
        run = await c.send(f"gate:{gate}")
        await wait_for(lambda: run.text == "part one, ", "the first half")
        first.proc.kill()
        first.proc.wait()
        # The orphaned agent keeps the server's stderr (the harness's log pipe) until it exits.
        open(gate, "w").close()
        await wait_for(lambda: c.state == "reconnecting", "the client to notice")
        second = self.server(*GATED, data_dir=first.dir)
        proxy.target_port = second.port
        status, body, _ = second.request("POST", f"/api/threads/{run.thread_id}/messages", {"content": "no gate"},
                                         {"Authorization": f"Bearer {token}"})
        self.assertEqual(status, 202, body)
        posted = body["run_id"]
        result = await asyncio.wait_for(run.done, 20)
        self.assertEqual((result["status"], result["error"]["code"]), ("error", "interrupted"))
        after = await asyncio.wait_for(c.run(posted).done, 20)
        self.assertEqual((after["status"], after["content"]), ("completed", "part one, part two"))
        self.assert_contiguous(c.seen)

    async def test_a_stored_position_resumes_right_after_it(self):
        srv = self.server()
        token = wsclient.dev_token(srv.port, "dana")
        path = os.path.join(tempfile.mkdtemp(dir=harness.TMP_ROOT), "positions.json")
        first = self.client(f"http://127.0.0.1:{srv.port}", token, storage=FileStorage(path))
        await first.connect()
        run = await first.send("one")
        await run.done
        position = first.last_seq
        await first.close()
        for content in ("two", "three"):
            status, _, _ = srv.request("POST", f"/api/threads/{run.thread_id}/messages", {"content": content},
                                       {"Authorization": f"Bearer {token}"})
            self.assertEqual(status, 202)
        second = self.client(f"http://127.0.0.1:{srv.port}", token, storage=FileStorage(path))
        completed = []
        second.on("agent_completed", lambda d, ev: completed.append(d["content"]))
        await second.connect()
        await wait_for(lambda: len(completed) == 2, "both runs")
        self.assertEqual(second.seen[0]["seq"], position + 1)
        self.assertEqual(completed, ["Echo (1 word): two", "Echo (1 word): three"])
        self.assert_contiguous(second.seen)

    async def test_an_overlapping_replay_hands_nothing_over_twice(self):
        srv = self.server()
        c = self.client(f"http://127.0.0.1:{srv.port}", wsclient.dev_token(srv.port, "erin"))
        await c.connect()
        await (await c.send("first")).done
        await (await c.send("second")).done
        handed = len(c.seen)
        frames = []
        c.on("frame", frames.append)
        self.assertTrue(await c._send({"type": "resume", "id": "again", "data": {"last_seq": 0, "epoch": c.epoch}}))
        await wait_for(lambda: any(f.get("id") == "again" for f in frames), "the replay")
        self.assertEqual(len([f for f in frames if f.get("seq") is not None]), handed, "the server sent it all again")
        self.assertEqual(len(c.seen), handed, "the client handed none of it over twice")

    async def test_a_new_epoch_behind_the_same_address_resyncs_then_goes_live(self):
        first = self.server()
        proxy = await Proxy(first.port).start()
        self.addAsyncCleanup(proxy.stop)
        current = {"srv": first}

        async def get_token():  # the new server has its own dev secret
            return wsclient.dev_token(current["srv"].port, "finn")

        c = self.client(proxy.url, get_token=get_token)
        resyncs = []
        c.on("resync", resyncs.append)
        await c.connect()
        await (await c.send("before")).done
        old = c.epoch
        # Off the event loop, so that the client answers the server's close while it shuts down.
        await asyncio.get_running_loop().run_in_executor(None, first.stop)
        second = self.server()  # a new database: the history was reset
        current["srv"] = second
        proxy.target_port = second.port
        await wait_for(lambda: len(resyncs) == 1 and c.state == "live", "the resync")
        self.assertNotEqual(resyncs[0]["epoch"], old)
        self.assertEqual((await (await c.send("after")).done)["status"], "completed")

    async def test_approvals_approve_and_deny(self):
        srv = self.server("--set", "agents.approval_required_tools=word_count")
        c = self.client(f"http://127.0.0.1:{srv.port}", wsclient.dev_token(srv.port, "gus"))
        await c.connect()
        listed = await c.agents()
        self.assertEqual(listed["default"], "echo")
        self.assertEqual(next(a for a in listed["agents"] if a["name"] == "echo")["tools"], ["word_count"])
        for decision in ("approve", "deny"):
            run = await c.send("count these words")
            requested = asyncio.get_running_loop().create_future()
            run.on("approval", lambda d, ev: ev["type"] == "tool_approval_requested" and not requested.done()
                   and requested.set_result(d))
            d = await asyncio.wait_for(requested, 20)
            self.assertIn(d["approval_id"], [a["approval_id"] for a in await c.approvals()])
            self.assertEqual((await c.approve(d["approval_id"], decision))["decision"], decision)
            self.assertEqual((await run.done)["status"], "completed")
            resolved = next(e for e in run.events_seen if e["type"] == "tool_approval_resolved")
            self.assertEqual(resolved["data"]["decision"], "approved" if decision == "approve" else "denied")
            with self.assertRaises(AgentwireError) as again:
                await c.approve(d["approval_id"], "approve")
            self.assertEqual(again.exception.code, "approval_resolved")

    async def test_close_codes_and_errors(self):
        srv = self.server("--set", "ws.max_connections_per_user=1")
        bad = self.client(f"http://127.0.0.1:{srv.port}", "not.a.token")
        with self.assertRaises(AgentwireError) as refused:
            await bad.connect()
        self.assertEqual((refused.exception.close_code, bad.state, bad.connects), (1008, "closed", 1))
        token = wsclient.dev_token(srv.port, "ivan")
        first = self.client(f"http://127.0.0.1:{srv.port}", token)
        await first.connect()
        second = self.client(f"http://127.0.0.1:{srv.port}", token)
        with self.assertRaises(AgentwireError) as limited:
            await second.connect()
        self.assertEqual((limited.exception.close_code, second.connects), (4002, 1))
        self.assertEqual(first.state, "live")
        with self.assertRaises(AgentwireError) as nf:
            await first.history("no-such-thread")
        self.assertEqual(nf.exception.code, "thread_not_found")
        with self.assertRaises(AgentwireError) as slow:
            await first.request("ack_events", {"seq": 0}, timeout=0.1)  # no reply by design
        self.assertEqual(slow.exception.code, "timeout")

    async def test_run_of_an_ended_run_settles_from_the_server_and_close_settles_the_rest(self):
        srv = self.server(*GATED)
        token = wsclient.dev_token(srv.port, "kit")
        first = self.client(f"http://127.0.0.1:{srv.port}", token)
        await first.connect()
        ended = await first.send("no gate")
        self.assertEqual((await ended.done)["status"], "completed")
        second = self.client(f"http://127.0.0.1:{srv.port}", token)  # starts at the head: never sees it
        await second.connect()
        looked = await asyncio.wait_for(second.run(ended.run_id).done, 20)
        self.assertEqual((looked["status"], looked["from_server"]), ("completed", True))
        running = await second.send(f"gate:{self.gate()}")
        await wait_for(lambda: running.text == "part one, ", "the run to stream")
        await second.close()
        result = await asyncio.wait_for(running.done, 20)
        self.assertEqual((result["status"], result["error"]["code"]), ("unknown", "closed"))

    async def test_stop(self):
        srv = self.server(*GATED)
        c = self.client(f"http://127.0.0.1:{srv.port}", wsclient.dev_token(srv.port, "hana"))
        await c.connect()
        run = await c.send(f"gate:{self.gate()}")
        await wait_for(lambda: run.text == "part one, ", "the run to stream")
        self.assertEqual((await c.stop(run.run_id))["status"], "stopping")
        result = await asyncio.wait_for(run.done, 20)
        self.assertEqual((result["status"], result["reason"]), ("stopped", "requested"))


    async def test_rename_and_delete_reach_another_client_and_a_busy_thread_is_kept(self):
        srv = self.server(*GATED)
        token = wsclient.dev_token(srv.port, "ines")
        c = self.client(f"http://127.0.0.1:{srv.port}", token)
        other = self.client(f"http://127.0.0.1:{srv.port}", token)
        changes = []
        other.on("thread_renamed", lambda d, ev: changes.append(("renamed", ev["thread_id"], d["title"])))
        other.on("thread_deleted", lambda d, ev: changes.append(("deleted", ev["thread_id"])))
        await c.connect()
        await other.connect()
        run = await c.send(f"gate:{self.gate()}")
        await wait_for(lambda: run.text == "part one, ", "the run to stream")
        self.assertEqual(await c.rename_thread(run.thread_id, "Renamed"), {"thread_id": run.thread_id, "title": "Renamed"})
        with self.assertRaises(AgentwireError) as refused:
            await c.delete_thread(run.thread_id)
        self.assertEqual(refused.exception.code, "thread_busy")
        await c.stop(run.run_id)
        await asyncio.wait_for(run.done, 20)
        self.assertEqual(await c.delete_thread(run.thread_id), {"thread_id": run.thread_id})
        await wait_for(lambda: len(changes) == 2, "both changes on the other client")
        self.assertEqual(changes, [("renamed", run.thread_id, "Renamed"), ("deleted", run.thread_id)])
        self.assertEqual((await c.threads())["threads"], [])


class TerminalChatTest(unittest.IsolatedAsyncioTestCase):
    async def chat(self, srv, user):
        env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "clients", "python"))
        state = os.path.join(tempfile.mkdtemp(dir=harness.TMP_ROOT), "positions.json")
        return await asyncio.create_subprocess_exec(
            "/usr/bin/python3", "-m", "agentwire_client", "chat", f"http://127.0.0.1:{srv.port}", "--user", user,
            "--state", state, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, env=env)

    async def read_until(self, proc, text, seen):
        while text not in seen[0]:
            chunk = await asyncio.wait_for(proc.stdout.read(4096), 20)
            if not chunk:
                raise AssertionError(f"the chat ended before {text!r}:\n{seen[0]}")
            seen[0] += chunk.decode()

    async def test_a_message_streams_its_answer_and_an_approval_is_answered_with_y(self):
        srv = harness.Server("--set", "agents.approval_required_tools=word_count").start()
        self.addCleanup(srv.stop)
        proc = await self.chat(srv, "kai")
        seen = [""]
        try:
            await self.read_until(proc, "connected as kai", seen)
            proc.stdin.write(b"count my words\n")
            await proc.stdin.drain()
            await self.read_until(proc, "? allow word_count", seen)
            proc.stdin.write(b"y\n")
            await proc.stdin.drain()
            await self.read_until(proc, "Echo (3 words): count my words", seen)
            self.assertIn("= approved", seen[0])
            proc.stdin.write(b"/threads\n")
            await proc.stdin.drain()
            await self.read_until(proc, "count my words\n", seen)
            proc.stdin.write(b"/rename Word counting\n/threads\n")
            await proc.stdin.drain()
            await self.read_until(proc, "(renamed: Word counting)", seen)
            await self.read_until(proc, "  Word counting\n", seen)
            proc.stdin.write(b"/delete\n")
            await proc.stdin.drain()
            await self.read_until(proc, "(deleted;", seen)
            proc.stdin.write(b"/quit\n")
            await proc.stdin.drain()
            self.assertEqual(await asyncio.wait_for(proc.wait(), 20), 0)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()


if __name__ == "__main__":
    unittest.main(verbosity=2)
