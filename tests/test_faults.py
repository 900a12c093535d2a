"""Faults on the data plane, caused as they really happen, through the real binary:
SIGKILL in the middle of runs, a disk that fills up (tmpfs) and writes that fail (RLIMIT_FSIZE).
Nothing acked may be lost, every acked run ends with a terminal event, and the server recovers
by itself."""
import asyncio
import json
import os
import re
import sqlite3
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402
import wsclient  # noqa: E402
from harness import metric, wait_for_async  # noqa: E402
from wsclient import Client  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
# Emits agent_thinking, then waits for stdin to close: a run that is in flight until the server dies.
HANG_AGENT = f"agents.process_command=/usr/bin/python3 {HERE}/agents/hang_after_thinking.py"
TERMINAL = ("agent_completed", "agent_error", "agent_stopped")


def runs_in_flight(path):
    """The runs the store has as in flight (no terminal event stored), from the SQLite file."""
    db = sqlite3.connect(path)
    try:
        return dict(db.execute("SELECT id, status FROM runs").fetchall())
    finally:
        db.close()



class InterruptedRunsTest(unittest.IsolatedAsyncioTestCase):
    async def test_sigkill_mid_run_then_restart_ends_every_unfinished_run_with_interrupted(self):
        srv = harness.Server("--set", HANG_AGENT, "--set", "agents.workers=1").start()
        token = wsclient.dev_token(srv.port, "kim")
        c = await Client.connect(srv.port, token)
        await c.send("ping")
        # One run executing (between agent_thinking and agent_completed), one queued behind it.
        running = await c.request("user_message", {"content": "first", "agent": "process"}, id_="m1", want="ack")
        await c.recv_until(lambda f: f["type"] == "agent_thinking" and f.get("run_id") == running["data"]["run_id"])
        queued = await c.request("user_message", {"content": "second", "agent": "process",
                                                  "thread_id": running["data"]["thread_id"]}, id_="m2", want="ack")
        self.assertEqual(queued["type"], "ack", queued)
        epoch, last_seq = c.established["epoch"], c.events()[-1]["seq"]
        srv.kill()  # SIGKILL: no drain, no agent_stopped
        await c.ws.close()
        db = os.path.join(srv.dir, "agentwire.db")
        before = runs_in_flight(db)
        self.assertEqual(set(before), {running["data"]["run_id"], queued["data"]["run_id"]})

        srv2 = harness.Server("--set", HANG_AGENT, data_dir=srv.dir).start()
        try:
            c2 = await Client.connect(srv2.port, token)
            r = await c2.request("resume", {"last_seq": last_seq, "epoch": epoch}, id_="res", want="resume_complete")
            self.assertEqual(r["type"], "resume_complete", r)
            ends = {e["run_id"]: e for e in c2.events() if e["type"] in TERMINAL}
            for run in (running, queued):
                end = ends[run["data"]["run_id"]]
                self.assertEqual((end["type"], end["data"]["code"]), ("agent_error", "interrupted"), end)
            seqs = [e["seq"] for e in c2.events()]
            self.assertEqual(seqs, list(range(last_seq + 1, last_seq + 1 + len(seqs))))
            self.assertEqual(metric(srv2, "agentwire_agent_runs_total", agent="process", outcome="interrupted"), 2)
            self.assertIn("2 runs were still queued or running", srv2.logs())
            await c2.close()
        finally:
            srv2.stop()
        self.assertEqual(runs_in_flight(db), {}, "each ended, in the same commit as its interrupted event")
        # A third start finds nothing left to interrupt: each run ends once.
        srv3 = harness.Server(data_dir=srv.dir).start()
        srv3.stop()
        self.assertEqual(srv3.logs().count("runs were still queued or running"), 1, "only srv2 found any")

    async def test_a_process_agent_holds_none_of_the_servers_descriptors(self):
        # Were the server's sockets inherited, an agent that outlives a SIGKILLed server would keep its
        # port and its users' connections open: clients would never see the crash.
        agent = f"agents.process_command=/usr/bin/python3 {HERE}/agents/report_fds.py"
        srv = harness.Server("--set", agent).start()
        try:
            c = await Client.connect(srv.port, wsclient.dev_token(srv.port, "lena"))
            ack = await c.request("user_message", {"content": "fds", "agent": "process"}, id_="m", want="ack")
            done = await c.recv_until(lambda f: f["type"] in TERMINAL and f.get("run_id") == ack["data"]["run_id"])
            self.assertEqual(done["type"], "agent_completed", done)
            self.assertEqual(json.loads(done["data"]["content"]), [], "descriptors beyond 0-2 the agent was given")
            await c.close()
        finally:
            srv.stop()

    async def test_a_process_agents_stderr_goes_to_the_log_with_its_run(self):
        # Its last words before it dies are what an operator needs: in the log, attributed, not lost.
        os.makedirs(harness.TMP_ROOT, exist_ok=True)
        script = os.path.join(tempfile.mkdtemp(prefix="aw-stderr-", dir=harness.TMP_ROOT), "dies.py")
        with open(script, "w") as f:
            f.write("import sys\nsys.stdin.readline()\nprint('thinking hard', file=sys.stderr, flush=True)\n"
                    "raise SystemExit('boom: the model key is missing')\n")
        srv = harness.Server("--set", f"agents.process_command=/usr/bin/python3 {script}").start()
        try:
            c = await Client.connect(srv.port, wsclient.dev_token(srv.port, "mo"))
            ack = await c.request("user_message", {"content": "hi", "agent": "process"}, id_="m", want="ack")
            run = ack["data"]["run_id"]
            done = await c.recv_until(lambda f: f["type"] in TERMINAL and f.get("run_id") == run)
            self.assertEqual((done["type"], done["data"]["code"]), ("agent_error", "agent_exited"), done)
            await c.close()
            # Logged before the run's end was sent; the log reaches its file through a pipe: waited for.
            for words in ("thinking hard", "boom: the model key is missing"):
                line = rf"\[agent\.process\] run '{run}' stderr: {words}"
                await wait_for_async(lambda: re.search(line, srv.logs()), timeout=10, what=line)
        finally:
            srv.stop()


class StoreFaultTest(unittest.IsolatedAsyncioTestCase):
    async def chat_until_refused(self, c, thread_id, n):
        """Sends messages until the server refuses one; returns (acked run ids, refusals)."""
        acked, refused = [], []
        for i in range(n):
            f = await c.request("user_message", {"content": f"m{i}", "thread_id": thread_id}, id_=f"f{i}",
                                want="ack", timeout=30)
            if f["type"] == "ack":
                acked.append(f["data"]["run_id"])
            else:
                refused.append(f["data"])
                break
        return acked, refused

    async def check_no_acked_run_lost(self, srv, token, acked):
        """Every acked run has its terminal event in the stream, and the stream has no gap."""
        c = await Client.connect(srv.port, token)
        r = await c.request("resume", {"last_seq": 0, "epoch": c.established["epoch"]}, id_="all",
                            want="resume_complete", timeout=30)
        self.assertEqual(r["type"], "resume_complete", r)
        seqs = [e["seq"] for e in c.events()]
        self.assertEqual(seqs, list(range(1, len(seqs) + 1)), "gapless")
        ended = {e["run_id"] for e in c.events() if e["type"] in TERMINAL}
        self.assertEqual(set(acked) - ended, set(), "every acked run ended in the stream")
        await c.close()

    async def one_run(self, c, content, thread_id=None, id_="m"):
        """Sends a message, checks its ack and waits for its run's end; returns the ack's data."""
        data = {"content": content, **({"thread_id": thread_id} if thread_id else {})}
        ack = await c.request("user_message", data, id_=id_, want="ack")
        self.assertEqual(ack["type"], "ack", ack)
        await c.recv_until(lambda f: f["type"] in TERMINAL and f.get("run_id") == ack["data"]["run_id"])
        return ack["data"]

    async def fault_and_recovery(self, srv, user, cause, cure):
        """Chat, cause the fault, chat until refused, check the server is alive but not ready,
        cure it, check it recovers by itself and that nothing acked was lost. Returns (token, acked)."""
        token = wsclient.dev_token(srv.port, user)
        c = await Client.connect(srv.port, token)
        await c.send("ping")
        before = await self.one_run(c, "before", id_="b")
        thread_id = before["thread_id"]
        cause()
        acked, refused = await self.chat_until_refused(c, thread_id, 400)
        self.assertTrue(refused, "a message was refused")
        self.assertEqual(refused[0]["code"], "unavailable", refused)

        def not_ready():
            status, body = srv.get("/health/ready")
            return status == 503 and any(n["name"] == "store" and "writes fail" in n.get("reason", "")
                                         for n in body["not_ready"])
        await wait_for_async(not_ready, what="not ready, naming the store")
        self.assertEqual(srv.get("/health/live")[0], 200, "the process is alive")
        pong = await c.request("ping", id_="alive", want="pong")
        self.assertEqual(pong["type"], "pong", "the connection survives")
        cure()
        await wait_for_async(lambda: srv.get("/health/ready")[0] == 200, what="ready again by itself")
        after = await self.one_run(c, "after", thread_id, id_="a")
        await c.close()
        acked += [before["run_id"], after["run_id"]]
        await self.check_no_acked_run_lost(srv, token, acked)
        return token, acked

    async def test_write_errors_refuse_with_unavailable_turn_not_ready_and_recover_by_themselves(self):
        srv = harness.Server().start()
        # Every write of the process fails (EFBIG), as on a failing disk; then the limit is lifted.
        limit = lambda size: subprocess.run(["prlimit", "--pid", str(srv.pid()), f"--fsize={size}:"], check=True)
        try:
            await self.fault_and_recovery(srv, "io", lambda: limit("1"), lambda: limit("unlimited"))
        finally:
            srv.stop()
        self.assertIn("SQLite writes fail", srv.logs())
        self.assertIn("writes succeed again", srv.logs())

    @unittest.skipUnless(os.geteuid() == 0, "mounting a small tmpfs needs root (CI runs as root)")
    async def test_full_disk_refuses_keeps_what_was_acked_and_recovers_when_space_returns(self):
        srv = harness.Server()
        fs = os.path.join(srv.dir, "fs")
        os.makedirs(fs)
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", fs], capture_output=True, text=True)
        if mounted.returncode != 0:
            # A container without CAP_SYS_ADMIN: the RLIMIT_FSIZE test covers the same code path.
            self.skipTest(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
        filler = os.path.join(fs, "filler")
        try:
            srv.args = [a if not a.startswith("store.path=") else "store.path=" + os.path.join(fs, "agentwire.db")
                        for a in srv.args]
            srv.start()
            # Fill the disk the way a neighbour would; then space returns.
            fill = lambda: subprocess.run(["dd", "if=/dev/zero", f"of={filler}", "bs=64k"], capture_output=True)
            token, acked = await self.fault_and_recovery(srv, "full", fill, lambda: os.unlink(filler))
            srv.stop()
            # And after a restart, too: acked means durable.
            srv2 = harness.Server(data_dir=srv.dir)
            srv2.args = list(srv.args)
            srv2.start()
            try:
                await self.check_no_acked_run_lost(srv2, token, acked)
            finally:
                srv2.stop()
        finally:
            srv.stop()
            subprocess.run(["umount", "-l", fs])
        self.assertIn("database or disk is full", srv.logs())


if __name__ == "__main__":
    harness.main()
