"""Faults on the data plane, caused as they really happen, through the real binary:
SIGKILL in the middle of runs, a disk that fills up (tmpfs) and writes that fail (RLIMIT_FSIZE).
Nothing acked may be lost, every acked run ends with a terminal event, and the server recovers
by itself."""
import asyncio
import os
import sqlite3
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402
import wsclient  # noqa: E402
from harness import metric_samples, wait_for_async  # noqa: E402
from wsclient import Client  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
# Emits agent_thinking, then waits for stdin to close: a run that is in flight until the server dies.
HANG_AGENT = f"agents.process_command=/usr/bin/python3 {HERE}/agents/hang_after_thinking.py"
TERMINAL = ("agent_completed", "agent_error", "agent_stopped")


def runs_in_db(path):
    db = sqlite3.connect(path)
    try:
        return dict(db.execute("SELECT id, status FROM runs").fetchall())
    finally:
        db.close()


def metric(srv, name, **labels):
    _, text = srv.get("/metrics")
    return metric_samples(text, name).get(frozenset(labels.items()), 0.0)


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
        before = runs_in_db(db)
        self.assertEqual(before[running["data"]["run_id"]], "running")
        self.assertEqual(before[queued["data"]["run_id"]], "queued")

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
        after = runs_in_db(db)
        self.assertEqual(after[running["data"]["run_id"]], "interrupted")
        self.assertEqual(after[queued["data"]["run_id"]], "interrupted")
        # A third start finds nothing left to interrupt: each run ends once.
        srv3 = harness.Server(data_dir=srv.dir).start()
        srv3.stop()
        self.assertEqual(srv3.logs().count("runs were still queued or running"), 1, "only srv2 found any")


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

    async def test_write_errors_refuse_with_unavailable_turn_not_ready_and_recover_by_themselves(self):
        srv = harness.Server().start()
        try:
            token = wsclient.dev_token(srv.port, "io")
            c = await Client.connect(srv.port, token)
            await c.send("ping")
            ok = await c.request("user_message", {"content": "before"}, id_="b", want="ack")
            thread_id = ok["data"]["thread_id"]
            await c.recv_until(lambda f: f["type"] == "agent_completed")
            # Every write of the process fails from here (EFBIG), as a failing disk would.
            subprocess.run(["prlimit", "--pid", str(srv.pid()), "--fsize=1:"], check=True)
            acked, refused = await self.chat_until_refused(c, thread_id, 50)
            self.assertTrue(refused, "a message was refused")
            self.assertEqual(refused[0]["code"], "unavailable", refused)

            def not_ready():
                status, body = srv.get("/health/ready")
                return status == 503 and any(n["name"] == "store" and "writes fail" in n.get("reason", "")
                                             for n in body["not_ready"])
            await wait_for_async(not_ready, what="not ready, naming the store")
            status, _ = srv.get("/health/live")
            self.assertEqual(status, 200, "the process is alive")
            f = await c.request("ping", id_="alive", want="pong")
            self.assertEqual(f["type"], "pong", "the connection survives")

            subprocess.run(["prlimit", "--pid", str(srv.pid()), "--fsize=unlimited:"], check=True)
            await wait_for_async(lambda: srv.get("/health/ready")[0] == 200, what="ready again by itself")
            after = await c.request("user_message", {"content": "after", "thread_id": thread_id}, id_="a",
                                    want="ack")
            self.assertEqual(after["type"], "ack", after)
            acked.append(after["data"]["run_id"])
            await c.recv_until(lambda f: f["type"] in TERMINAL and f.get("run_id") == after["data"]["run_id"])
            await c.close()
            await self.check_no_acked_run_lost(srv, token, acked + [ok["data"]["run_id"]])
        finally:
            srv.stop()
        self.assertIn("SQLite writes fail", srv.logs())
        self.assertIn("writes succeed again", srv.logs())

    @unittest.skipUnless(os.geteuid() == 0, "mounting a small tmpfs needs root (CI runs as root)")
    async def test_full_disk_refuses_keeps_what_was_acked_and_recovers_when_space_returns(self):
        srv = harness.Server()
        fs = os.path.join(srv.dir, "fs")
        os.makedirs(fs)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", fs], check=True)
        try:
            srv.args = [a if not a.startswith("store.path=") else "store.path=" + os.path.join(fs, "agentwire.db")
                        for a in srv.args]
            srv.start()
            token = wsclient.dev_token(srv.port, "full")
            c = await Client.connect(srv.port, token)
            await c.send("ping")
            ok = await c.request("user_message", {"content": "before"}, id_="b", want="ack")
            thread_id = ok["data"]["thread_id"]
            await c.recv_until(lambda f: f["type"] == "agent_completed")
            # Fill the disk the way a neighbour would.
            filler = os.path.join(fs, "filler")
            subprocess.run(["dd", "if=/dev/zero", f"of={filler}", "bs=64k"], capture_output=True)
            acked, refused = await self.chat_until_refused(c, thread_id, 400)
            self.assertTrue(refused, "a message was refused")
            self.assertEqual(refused[0]["code"], "unavailable", refused)
            await wait_for_async(lambda: srv.get("/health/ready")[0] == 503, what="not ready")
            os.unlink(filler)  # space returns
            await wait_for_async(lambda: srv.get("/health/ready")[0] == 200, what="ready again by itself")
            after = await c.request("user_message", {"content": "after", "thread_id": thread_id}, id_="a",
                                    want="ack")
            self.assertEqual(after["type"], "ack", after)
            acked.append(after["data"]["run_id"])
            await c.recv_until(lambda f: f["type"] in TERMINAL and f.get("run_id") == after["data"]["run_id"])
            await c.close()
            await self.check_no_acked_run_lost(srv, token, acked + [ok["data"]["run_id"]])
            srv.stop()
            # And after a restart, too: acked means durable.
            srv2 = harness.Server(data_dir=srv.dir)
            srv2.args = list(srv.args)
            srv2.start()
            try:
                await self.check_no_acked_run_lost(srv2, token, acked + [ok["data"]["run_id"]])
            finally:
                srv2.stop()
        finally:
            srv.stop()
            subprocess.run(["umount", "-l", fs])
        self.assertIn("database or disk is full", srv.logs())


if __name__ == "__main__":
    harness.main()
