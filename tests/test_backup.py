"""Online backup and restore of the SQLite store through the real binary: `agentwire backup` while 100
users chat, `agentwire restore` into a new data directory, a server on it. Every event a client had
received before the backup began (events are sent only once durable) is in the restored stream with the
same seq; every stream has a new epoch, so a client that resumes with its old position (ahead of the
restored stream) gets resync_required, never a silent gap or a seq reused for another event. Also: a
restore refused while a server runs on the store, a file that is not a store refused, and a database
written by a newer agentwire refused at start with a clear error."""
import asyncio
import os
import shutil
import sqlite3
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402
import wsclient  # noqa: E402
from wsclient import Client  # noqa: E402

USERS = 100


async def cli(*args):
    p = await asyncio.create_subprocess_exec(harness.BIN, *args, stdout=asyncio.subprocess.PIPE,
                                             stderr=asyncio.subprocess.PIPE)
    out, err = await p.communicate()
    return p.returncode, out.decode(), err.decode()


class BackupUnderLoadTest(unittest.IsolatedAsyncioTestCase):
    async def test_backup_while_100_users_chat_then_restore_elsewhere(self):
        os.makedirs(harness.TMP_ROOT, exist_ok=True)
        work = tempfile.mkdtemp(prefix="aw-backup-", dir=harness.TMP_ROOT)
        srv = harness.Server().start()
        self.addCleanup(srv.stop)
        db = os.path.join(srv.dir, "agentwire.db")
        clients = [await Client.connect(srv.port, wsclient.dev_token(srv.port, f"b{i}")) for i in range(USERS)]
        epochs = [c.established["epoch"] for c in clients]
        completed = [0] * USERS
        stop = asyncio.Event()

        async def chat(i, c):
            n = 0
            while not stop.is_set():
                ack = await c.request("user_message", {"content": f"message {n} of user {i}"}, id_=f"m{n}",
                                      want="ack", timeout=30)
                assert ack["type"] == "ack", ack
                run_id = ack["data"]["run_id"]
                await c.recv_until(lambda f: f.get("run_id") == run_id and f["type"] == "agent_completed", timeout=30)
                completed[i] += 1
                n += 1

        load = [asyncio.create_task(chat(i, c)) for i, c in enumerate(clients)]
        await harness.wait_for_async(lambda: min(completed) >= 1, timeout=60, what="every user chatting")
        # What each client had received when the backup began: all of it committed before.
        before = [{e["seq"]: (e["type"], e.get("run_id")) for e in c.events()} for c in clients]
        backup = os.path.join(work, "backup.db")
        code, out, err = await cli("backup", "--to", backup, "--set", f"store.path={db}")
        self.assertEqual(code, 0, out + err)
        self.assertIn("backed up", out)
        # The live server goes on past the backup: its clients end up ahead of what was copied.
        marks = list(completed)
        await harness.wait_for_async(lambda: all(completed[i] > marks[i] for i in range(USERS)), timeout=60,
                                     what="every user past the backup")
        stop.set()
        await asyncio.gather(*load)
        ahead = [c.events()[-1]["seq"] for c in clients]
        for c in clients:
            await c.close()
        srv.stop()
        self.assertFalse(os.path.exists(backup + ".partial"))

        restored_dir = os.path.join(work, "restored")
        restored_db = os.path.join(restored_dir, "agentwire.db")
        code, out, err = await cli("restore", "--from", backup, "--set", f"store.path={restored_db}")
        self.assertEqual(code, 0, out + err)
        self.assertIn("new epoch", out)
        srv2 = harness.Server(data_dir=restored_dir).start()
        self.addCleanup(srv2.stop)
        for i in range(USERS):
            c = await Client.connect(srv2.port, wsclient.dev_token(srv2.port, f"b{i}"))
            new_epoch = c.established["epoch"]
            self.assertNotEqual(new_epoch, epochs[i], "a restored stream has a new epoch")
            self.assertLess(c.established["last_seq"], ahead[i], "the live server had gone past the backup")
            stale = await c.request("resume", {"last_seq": ahead[i], "epoch": epochs[i]}, id_="stale")
            self.assertEqual(stale["type"], "resync_required", stale)
            c.frames.clear()
            r = await c.request("resume", {"last_seq": 0, "epoch": new_epoch}, id_="all", want="resume_complete",
                                timeout=30)
            self.assertEqual(r["type"], "resume_complete", r)
            restored = {e["seq"]: (e["type"], e.get("run_id")) for e in c.events()}
            missing = {seq: ev for seq, ev in before[i].items() if restored.get(seq) != ev}
            self.assertEqual(missing, {}, f"user b{i}: events received before the backup, not restored as they were")
            self.assertEqual(sorted(restored), list(range(1, c.established["last_seq"] + 1)), "no gap")
            if i < 3:  # the restored server chats on, from the restored head
                ack = await c.request("user_message", {"content": "after the restore"}, id_="after", want="ack")
                self.assertEqual(ack["type"], "ack", ack)
                done = await c.recv_until(lambda f: f.get("run_id") == ack["data"]["run_id"]
                                          and f["type"] == "agent_completed")
                self.assertGreater(done["seq"], c.established["last_seq"])
            await c.close()


class RestoreChecksTest(unittest.IsolatedAsyncioTestCase):
    async def test_a_running_server_or_a_file_that_is_not_a_store_is_refused(self):
        os.makedirs(harness.TMP_ROOT, exist_ok=True)
        work = tempfile.mkdtemp(prefix="aw-restore-", dir=harness.TMP_ROOT)
        srv = harness.Server().start()
        self.addCleanup(srv.stop)
        db = os.path.join(srv.dir, "agentwire.db")
        backup = os.path.join(work, "b.db")
        code, out, err = await cli("backup", "--to", backup, "--set", f"store.path={db}")
        self.assertEqual(code, 0, out + err)
        code, out, err = await cli("restore", "--from", backup, "--set", f"store.path={db}")
        self.assertEqual(code, 1)
        self.assertIn("in use by another agentwire process", err)
        self.assertIn("stop the server before restoring", err)
        srv.stop()

        junk = os.path.join(work, "junk.db")
        with open(junk, "wb") as f:
            f.write(b"this is not a database" * 100)
        code, out, err = await cli("restore", "--from", junk, "--set", f"store.path={db}")
        self.assertEqual(code, 1)
        self.assertIn("restore failed", err)
        other = os.path.join(work, "other.db")
        sqlite3.connect(other).execute("CREATE TABLE x (y)").connection.commit()
        code, out, err = await cli("restore", "--from", other, "--set", f"store.path={db}")
        self.assertEqual(code, 1)
        self.assertIn("schema version 0", err)
        code, out, err = await cli("backup", "--to", backup, "--set", "store.backend=postgres",
                                   "--set", "store.url=postgresql://x/y")
        self.assertEqual(code, 2)
        self.assertIn("pg_dump", err)

    def test_a_database_from_a_newer_agentwire_is_refused_at_start(self):
        srv = harness.Server().start()
        db = os.path.join(srv.dir, "agentwire.db")
        srv.stop()
        con = sqlite3.connect(db)
        con.execute("PRAGMA user_version=99")
        con.commit()
        con.close()
        again = harness.Server(data_dir=srv.dir).start(wait_ready=False)
        self.assertNotEqual(again.wait_exit(), 0)
        self.assertIn("schema version 99, written by a newer agentwire", again.logs())


if __name__ == "__main__":
    unittest.main()
