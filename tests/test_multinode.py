"""Several agentwire nodes on one PostgreSQL and one Redis (each test starts its own Redis and
database; PostgreSQL is the one scripts/test-services started). A user's connections on different
nodes get every event of their stream in order, whichever node ran the run; Redis outages (SIGKILL,
SIGSTOP) lose nothing."""
import asyncio
import os
import signal
import sys
import unittest

import websockets

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402
import wsclient  # noqa: E402
from harness import Redis, wait_for, wait_for_async  # noqa: E402
from test_postgres import HANG_AGENT, PG, Database  # noqa: E402
from test_postgres import psql as harness_psql  # noqa: E402
from wsclient import Client  # noqa: E402

SECRET = "multinode-test-secret-0123456789abcdef"
CHATTER_AGENT = f"agents.process_command=/usr/bin/python3 {os.path.dirname(__file__)}/agents/chatter.py"
TERMINAL = ("agent_completed", "agent_error", "agent_stopped")


def bus_state(srv):
    """'live' (Redis answers), or the component's health state."""
    _, body = srv.get("/health")
    bus = next(c for c in body["components"] if c["name"] == "bus")
    return "live" if bus["state"] == "healthy" and bus["details"]["live"] else bus["state"]


def ready(srv):
    try:
        return srv.port is not None and srv.get("/health/ready")[0] == 200
    except OSError:
        return False


async def wait_event(conn, run_id, types, timeout=30):
    """The run's first event of one of `types` on this connection (it may have arrived already)."""
    return await conn.first(lambda f: f.get("run_id") == run_id and f["type"] in types, timeout)


async def run_end(conn, run_id, timeout=30):
    """Waits for the run's terminal event on this connection (it may have arrived already)."""
    await wait_event(conn, run_id, TERMINAL, timeout)


@unittest.skipUnless(PG or os.environ.get("AW_REQUIRE_SERVICES") == "1", "no PostgreSQL (run through scripts/run-tests)")
class MultiNodeTest(unittest.IsolatedAsyncioTestCase):
    async def asyncSetUp(self):
        self.assertTrue(PG, "AW_TEST_PG_URL is not set: scripts/test-services did not start PostgreSQL")
        self.db = Database()
        self.redis = Redis().start()
        self.nodes = []

    async def start_nodes(self, head_check_ms, *extra, per_node=None):
        """Three nodes (or one per key of `per_node`, {name: its own arguments}). While Redis is
        live they check their users' heads every `head_check_ms` (an hour: notices alone must carry
        every event); while it is not, every 100 ms."""
        self.node_args = []
        for name, own in (per_node or {"a": (), "b": (), "c": ()}).items():
            self.node_args.append((
                "--set", "store.backend=postgres", "--set", "store.url=" + self.db.url,
                "--set", "bus.backend=redis", "--set", "bus.url=" + self.redis.url,
                "--set", f"bus.head_check_ms={head_check_ms}", "--set", "bus.head_check_down_ms=100",
                "--set", f"node.id=node-{name}", "--set", "auth.secret=" + SECRET,
                "--set", "ws.max_messages_per_second=10000", *extra, *own))
            self.nodes.append(harness.Server(*self.node_args[-1]).start(wait_ready=False))
        # Started together, as a deployment does: each becomes ready (migrations applied once, each
        # node's self-check in its own stream).
        for n in self.nodes:
            wait_for(lambda n=n: n.proc.poll() is not None or ready(n), what="node ready")
            self.assertIsNone(n.proc.poll(), "a node started together with the others failed:\n" + n.logs())
        for n in self.nodes:
            await wait_for_async(lambda n=n: bus_state(n) == "live", what="bus live")
        return self.nodes

    async def asyncTearDown(self):
        for n in self.nodes:
            n.stop()
        self.redis.stop()
        self.db.drop()

    def token(self, user):
        return wsclient.make_jwt(SECRET, {"sub": user})

    async def connect(self, node, user):
        c = await Client.connect(node.port, self.token(user))
        await c.request("ping", id_="live", want="pong")  # live from here on
        return c

    async def run_through(self, sender, content, thread_id=None):
        data = {"content": content, **({"thread_id": thread_id} if thread_id else {})}
        ack = await sender.request("user_message", data, id_=content, want="ack")
        self.assertEqual(ack["type"], "ack", ack)
        return ack["data"]

    async def test_connections_on_other_nodes_get_every_event_in_order(self):
        a, b, c = await self.start_nodes(head_check_ms=3600000)
        on_a, on_b, on_c = await self.connect(a, "xena"), await self.connect(b, "xena"), await self.connect(c, "xena")
        runs = []
        thread = None
        for i in range(5):
            ack = await self.run_through(on_c, f"m{i}", thread)
            thread = ack["thread_id"]
            runs.append(ack["run_id"])
        for conn in (on_a, on_b, on_c):
            for run in runs:
                await run_end(conn, run)
        streams = [[e["seq"] for e in conn.events()] for conn in (on_a, on_b, on_c)]
        self.assertEqual(streams[0], list(range(1, len(streams[0]) + 1)), "gapless, in order, no duplicate")
        self.assertEqual(streams[0], streams[1])
        self.assertEqual(streams[0], streams[2])
        # Each user on its own node sees only their own events.
        users = [await self.connect(self.nodes[i % 3], f"u{i}") for i in range(12)]
        acks = [await self.run_through(users[i], f"from u{i}") for i in range(12)]
        for i, conn in enumerate(users):
            await run_end(conn, acks[i]["run_id"])
            self.assertEqual({e["run_id"] for e in conn.events()}, {acks[i]["run_id"]})
        for conn in [on_a, on_b, on_c, *users]:
            await conn.close()

    async def outage(self, cause, cure):
        a, b, _ = await self.start_nodes(head_check_ms=3600000)
        reader = await self.connect(a, "yuri")
        writer = await self.connect(b, "yuri")
        first = await self.run_through(writer, "before")
        await run_end(reader, first["run_id"])
        cause()
        await wait_for_async(lambda: bus_state(a) == "degraded", what="bus degraded on the reader's node")
        during = [await self.run_through(writer, f"during{i}", first["thread_id"]) for i in range(5)]
        for run in during:
            # No notices now: the reader's node finds the commits by checking the store's heads.
            await run_end(reader, run["run_id"])
        cure()
        await wait_for_async(lambda: bus_state(a) == "live" and bus_state(b) == "live", what="bus back")
        after = await self.run_through(writer, "after", first["thread_id"])
        for conn in (reader, writer):
            await run_end(conn, after["run_id"])
        seqs = [e["seq"] for e in reader.events()]
        self.assertEqual(seqs, list(range(seqs[0], seqs[0] + len(seqs))), "gapless, no duplicate")
        self.assertEqual(seqs, [e["seq"] for e in writer.events()])
        await reader.close()
        await writer.close()

    async def test_a_commit_never_published_reaches_connections_by_the_head_check(self):
        # A node that committed and died before publishing: the commit is made here, in SQL, the
        # way the store makes it (head raised and event stored in one transaction), and nobody
        # publishes it.
        a, _, _ = await self.start_nodes(head_check_ms=200)
        reader = await self.connect(a, "zed")
        first = await self.run_through(reader, "before")
        await run_end(reader, first["run_id"])
        head = reader.events()[-1]["seq"]
        harness_psql(self.db.url, """
            WITH h AS (UPDATE user_streams SET head = head + 1 WHERE user_id = 'zed' RETURNING head)
            INSERT INTO events SELECT 'zed', head, 'agent_error', '%s', 'run_lost', 0,
                '{"code":"interrupted","message":"the node running it stopped"}' FROM h""" % first["thread_id"])
        lost = await reader.recv_until(lambda f: f.get("run_id") == "run_lost", timeout=10)
        self.assertEqual(lost["seq"], head + 1)
        self.assertEqual(lost["type"], "agent_error")
        await reader.close()

    async def test_a_thread_deleted_on_one_node_is_gone_on_the_others_that_serve_its_user(self):
        a, b, _ = await self.start_nodes(3600000)
        on_a = await self.connect(a, "del")
        on_b = await self.connect(b, "del")
        first = await self.run_through(on_b, "cached on b")  # node b now has the thread in its cache
        await run_end(on_b, first["run_id"])
        thread = first["thread_id"]
        renamed = await on_a.request("rename_thread", {"thread_id": thread, "title": "Renamed"}, id_="r",
                                     want="thread_renamed")
        self.assertEqual(renamed["type"], "thread_renamed", renamed)
        deleted = await on_a.request("delete_thread", {"thread_id": thread}, id_="d", want="thread_deleted")
        self.assertEqual(deleted["type"], "thread_deleted", deleted)
        # Node b hears of it through the stream (a head notice, then a read of the store).
        await on_b.first(lambda f: f["type"] == "thread_deleted" and f.get("thread_id") == thread)
        renamed_event = next(f for f in on_b.frames if f["type"] == "thread_renamed")
        self.assertEqual(renamed_event["data"]["title"], "Renamed")
        refused = await on_b.request("user_message", {"content": "too late", "thread_id": thread}, id_="late",
                                     want="ack")
        self.assertEqual((refused["type"], refused["data"]["code"]), ("error", "thread_not_found"), refused)
        await on_a.close()
        await on_b.close()

    async def test_stop_agent_reaches_the_run_on_the_node_that_executes_it(self):
        a, b, _ = await self.start_nodes(3600000, "--set", HANG_AGENT)
        on_a, on_b = await self.connect(a, "sto"), await self.connect(b, "sto")
        ack = (await on_a.request("user_message", {"content": "x", "agent": "process"}, id_="m", want="ack"))["data"]
        await wait_event(on_b, ack["run_id"], ("agent_thinking",))
        # Sent through b; the run executes on a.
        reply = await on_b.request("stop_agent", {"run_id": ack["run_id"]}, id_="s", want="stop_requested")
        self.assertEqual(reply["type"], "stop_requested", reply)
        for conn in (on_a, on_b):
            end = await wait_event(conn, ack["run_id"], TERMINAL)
            self.assertEqual(end["type"], "agent_stopped")
        # Another user cannot stop it, on any node; an ended run is not found.
        other = await self.connect(b, "intruder")
        err = await other.request("stop_agent", {"run_id": ack["run_id"]}, id_="s2")
        self.assertEqual((err["type"], err["data"]["code"]), ("error", "run_not_found"))
        for conn in (on_a, on_b, other):
            await conn.close()

    async def test_an_approval_answered_on_another_node_takes_the_run_up_where_it_waits(self):
        a, b = await self.start_nodes(3600000, "--set", "agents.approval_required_tools=word_count",
                                      per_node={"a": (), "b": ()})
        on_a, on_b = await self.connect(a, "apv"), await self.connect(b, "apv")
        ack = (await on_a.request("user_message", {"content": "two nodes"}, id_="m", want="ack"))["data"]
        req = await wait_event(on_b, ack["run_id"], ("tool_approval_requested",))
        # Answered through b; the run waits on a, which takes it up (told through the bus).
        ok = await on_b.request("approve_tool", {"approval_id": req["data"]["approval_id"], "decision": "approve"},
                                id_="a", want="approval_recorded")
        self.assertEqual(ok["type"], "approval_recorded", ok)
        for conn in (on_a, on_b):
            end = await wait_event(conn, ack["run_id"], TERMINAL)
            self.assertEqual((end["type"], end["data"]["content"]), ("agent_completed", "Echo (2 words): two nodes"))
        self.assertEqual([e["seq"] for e in on_a.events()], [e["seq"] for e in on_b.events()])
        again = await on_a.request("approve_tool", {"approval_id": req["data"]["approval_id"], "decision": "deny"},
                                   id_="a2")
        self.assertEqual(again["data"]["code"], "approval_resolved")
        for conn in (on_a, on_b):
            await conn.close()

    async def test_a_killed_nodes_pending_approval_expires_and_its_run_ends(self):
        a, b = await self.start_nodes(3600000, "--set", "agents.approval_required_tools=word_count",
                                      "--set", "node.lease_ms=2000", "--set", "node.lease_renew_ms=500",
                                      per_node={"a": (), "b": ()})
        watcher = await self.connect(b, "apk")
        sender = await self.connect(a, "apk")
        ack = (await sender.request("user_message", {"content": "x"}, id_="m", want="ack"))["data"]
        req = await wait_event(watcher, ack["run_id"], ("tool_approval_requested",))
        a.kill()
        end = await wait_event(watcher, ack["run_id"], TERMINAL)
        self.assertEqual((end["type"], end["data"]["code"]), ("agent_error", "interrupted"))
        resolved = await wait_event(watcher, ack["run_id"], ("tool_approval_resolved",))
        self.assertEqual((resolved["data"]["decision"], resolved["data"]["by"]), ("expired", "interrupted"))
        self.assertLess(resolved["seq"], end["seq"])
        late = await watcher.request("approve_tool", {"approval_id": req["data"]["approval_id"],
                                                      "decision": "approve"}, id_="a")
        self.assertEqual(late["data"]["code"], "approval_resolved")
        await watcher.close()

    async def test_a_killed_nodes_runs_end_interrupted_on_another_node(self):
        a, b, c = await self.start_nodes(3600000, "--set", HANG_AGENT, "--set", "node.lease_ms=2000",
                                         "--set", "node.lease_renew_ms=500")
        watcher = await self.connect(b, "kil")
        sender = await self.connect(a, "kil")
        acks = []
        for i in range(3):  # two run (agents.max_running_per_user), one waits in a's queue
            reply = await sender.request("user_message", {"content": f"x{i}", "agent": "process"}, id_=f"m{i}",
                                         want="ack")
            acks.append(reply["data"])
        for ack in acks[:2]:
            await wait_event(watcher, ack["run_id"], ("agent_thinking",))
        a.kill()
        # b or c notices a's lease expired and ends each of its runs, queued or running, once.
        for ack in acks:
            end = await wait_event(watcher, ack["run_id"], TERMINAL)
            self.assertEqual((end["type"], end["data"]["code"]), ("agent_error", "interrupted"))
        def takeovers():
            return sum(harness.metric_samples(n.get("/metrics")[1], "agentwire_node_takeovers_total")[frozenset()]
                       for n in (b, c))
        # Counted once the takeover finished (its events committed, the lease dropped): shortly after.
        await wait_for_async(lambda: takeovers() >= 1, what="the takeover counted")
        self.assertEqual(takeovers(), 1, "one node took over")
        # The client of the dead node reconnects to another node and resumes: nothing missing, nothing twice.
        resumed = await Client.connect(c.port, self.token("kil"))
        # What the sender read before its node died (it may have read none: it only waited for its acks).
        last = sender.events()[-1]["seq"] if sender.events() else 0
        await resumed.request("resume", {"last_seq": last, "epoch": sender.established["epoch"]}, id_="r",
                              want="resume_complete")
        seqs = [e["seq"] for e in sender.events()] + [e["seq"] for e in resumed.events()]
        self.assertEqual(seqs, list(range(1, len(seqs) + 1)))
        self.assertEqual(seqs, [e["seq"] for e in watcher.events()])
        ends = [e for e in resumed.events() + sender.events() if e["type"] in TERMINAL]
        self.assertEqual(sorted(e["run_id"] for e in ends), sorted(a["run_id"] for a in acks))
        await watcher.close()
        await resumed.close()

    async def test_a_paused_node_adds_nothing_to_a_run_after_another_node_ended_it(self):
        # SIGSTOP: the node's agent process keeps talking into the pipe meanwhile; when the node
        # resumes, it reads that backlog before it learns (at its next lease renewal) that its run
        # was ended as interrupted by another node. The run fence refuses those late events.
        a, b, c = await self.start_nodes(3600000, "--set", CHATTER_AGENT, "--set", "node.lease_ms=2000",
                                         "--set", "node.lease_renew_ms=500")
        watcher = await self.connect(b, "pia")
        sender = await self.connect(a, "pia")
        reply = await sender.request("user_message", {"content": "think", "agent": "process"}, id_="m", want="ack")
        run_id = reply["data"]["run_id"]
        await wait_event(watcher, run_id, ("agent_thinking",))
        a.signal(signal.SIGSTOP)
        try:
            end = await wait_event(watcher, run_id, TERMINAL)
            self.assertEqual((end["type"], end["data"]["code"]), ("agent_error", "interrupted"))
        finally:
            a.signal(signal.SIGCONT)
        await wait_for_async(lambda: "lease was taken over" in a.logs(), what="the resumed node learns it")
        # A run through the same node after that: its writer commits in order, so once this run
        # ends everything the paused run queued before it was abandoned has been committed or refused.
        after = await self.connect(a, "pia")
        # The pause may have cost the node a database session (PostgreSQL ends one left idle in a
        # transaction): a write is retried at once on a new one, but if two were lost the node says
        # `unavailable` until it writes again, and a client sends again, as this one does.
        for attempt in range(20):
            reply = await after.request("user_message", {"content": "after", "agent": "echo"}, id_=f"m{attempt}",
                                        want="ack")
            if reply["type"] == "ack" or reply["data"]["code"] != "unavailable":
                break
            await wait_for_async(lambda: ready(a), what="the resumed node ready again")
        self.assertEqual(reply["type"], "ack", reply)
        await run_end(watcher, reply["data"]["run_id"])
        # The stream as stored, read from another node: the paused run's terminal event is its last.
        reader = await Client.connect(c.port, self.token("pia"))
        await reader.request("resume", {"last_seq": 0, "epoch": watcher.established["epoch"]}, id_="r",
                             want="resume_complete")
        events = [e for e in reader.events() if e.get("run_id") == run_id]
        self.assertEqual([e["type"] for e in events if e["type"] in TERMINAL], ["agent_error"])
        self.assertIn(events[-1]["type"], TERMINAL, "nothing after the run's terminal event")
        seqs = [e["seq"] for e in reader.events()]
        self.assertEqual(seqs, list(range(1, len(seqs) + 1)), "no gap where events were refused")
        fenced = harness.metric_samples(a.get("/metrics")[1], "agentwire_events_fenced_total")[frozenset()]
        print(f"events refused by the run fence on the resumed node: {fenced:.0f}", file=sys.stderr)
        for conn in (watcher, sender, after, reader):
            await conn.close()

    async def test_a_rolling_restart_under_chat_loses_and_repeats_nothing(self):
        await self.start_nodes(1000)
        stop = asyncio.Event()
        acked = {}  # user -> run ids acked
        seen = {}  # user -> seqs received, over all of the user's connections, in order

        async def chatter(user, first):
            acked[user], seen[user] = [], []
            node = first
            conn, epoch = None, None
            n = 0
            while not stop.is_set():
                try:
                    if conn is None:
                        srv = self.nodes[node % 3]
                        conn = await Client.connect(srv.port, self.token(user))
                        epoch = epoch or conn.established["epoch"]
                        last = seen[user][-1] if seen[user] else 0
                        await conn.request("resume", {"last_seq": last, "epoch": epoch}, id_="r",
                                           want="resume_complete")
                    n += 1
                    r = await conn.request("user_message", {"content": f"{user} {n}"}, id_=f"m{n}", want="ack")
                    if r["type"] == "ack":
                        acked[user].append(r["data"]["run_id"])
                    await asyncio.sleep(0.02)  # pacing of the load, not a wait for a condition
                except (OSError, asyncio.TimeoutError, websockets.ConnectionClosed, AssertionError):
                    node += 1  # the node went away: another one
                    conn = None
                    await asyncio.sleep(0.05)  # reconnect pacing
                finally:
                    if conn is not None:
                        # Seqs received on this connection (those not yet counted).
                        seen[user].extend(e["seq"] for e in conn.events())
                        conn.frames = [f for f in conn.frames if "seq" not in f]

        users = [f"roll{i}" for i in range(6)]
        tasks = [asyncio.create_task(chatter(u, i)) for i, u in enumerate(users)]
        await wait_for_async(lambda: all(len(acked.get(u, [])) >= 3 for u in users), what="chat under way")
        for i in range(3):
            self.nodes[i].stop()  # SIGTERM: drains, then exits
            self.nodes[i] = harness.Server(*self.node_args[i], data_dir=self.nodes[i].dir).start()
            counts = {u: len(acked[u]) for u in users}
            await wait_for_async(lambda c=counts: all(len(acked[u]) >= c[u] + 2 for u in users),
                                 what="chat continues after the restart")
        stop.set()
        await asyncio.gather(*tasks)
        # Every acked message's run ended exactly once, and each user's stream is whole: read it
        # from the start on a fresh connection.
        for u in users:
            c = await Client.connect(self.nodes[0].port, self.token(u))
            await c.request("resume", {"last_seq": 0, "epoch": c.established["epoch"]}, id_="r", want="resume_complete")
            ends = {}
            for run in acked[u]:
                await run_end(c, run)
            for e in c.events():
                if e["type"] in TERMINAL:
                    ends[e["run_id"]] = ends.get(e["run_id"], 0) + 1
            self.assertEqual({r: ends.get(r) for r in acked[u]}, {r: 1 for r in acked[u]}, u)
            seqs = [e["seq"] for e in c.events()]
            self.assertEqual(seqs, list(range(1, len(seqs) + 1)), u)
            self.assertEqual(seen[u], list(range(1, len(seen[u]) + 1)),
                             f"{u}: over its reconnections, a seq was missed, received twice or out of order")
            await c.close()

    async def test_redis_hung_only_degrades_a_node_unless_the_bus_is_required(self):
        degraded, required = await self.start_nodes(
            1000, per_node={"d": ("--set", "bus.required=false"), "r": ("--set", "bus.required=true")})
        self.redis.pause()  # hung, not refused: only the PING through the subscription notices
        await wait_for_async(lambda: not ready(required), what="the node that requires the bus unready")
        status, body = required.get("/health/ready")
        self.assertEqual(status, 503)
        self.assertEqual([c["name"] for c in body["not_ready"]], ["bus"])
        self.assertIn("Redis", body["not_ready"][0]["reason"])
        await wait_for_async(lambda: bus_state(degraded) == "degraded", what="the other node's bus degraded")
        self.assertTrue(ready(degraded), "a bus that is not required only degrades the node")
        # Chat goes on through the node that does not require the bus, to a tab on the other one.
        a = await self.connect(degraded, "dora")
        self.redis.resume()
        await wait_for_async(lambda: ready(required), what="ready again once Redis answers")
        b = await self.connect(required, "dora")
        run = await self.run_through(a, "after")
        await run_end(b, run["run_id"])
        await a.close()
        await b.close()

    async def test_redis_killed_every_event_still_arrives(self):
        await self.outage(lambda: self.redis.kill(), lambda: self.redis.start())

    async def test_redis_hung_every_event_still_arrives(self):
        await self.outage(lambda: self.redis.pause(), lambda: self.redis.resume())


if __name__ == "__main__":
    harness.main()
