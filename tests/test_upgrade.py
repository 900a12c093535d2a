"""Upgrades keep every byte: each store fixture in tests/fixtures (a database written by a release, with
the manifest of its rows; tests/fixtures/make_store_fixture.py) is opened by this binary. Every row of the
manifest must still be there after the migrations run, the users' streams must go on from where they
were (same epoch, same seqs, the run that was executing when the server was killed ended as
interrupted, the run waiting for an approval still waiting), and chat must work on it."""
import asyncio
import glob
import json
import os
import re
import shutil
import sqlite3
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402
import wsclient  # noqa: E402
from wsclient import Client  # noqa: E402

FIXTURES = sorted(glob.glob(os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "store-*.db")))
TERMINAL = ("agent_completed", "agent_error", "agent_stopped")


def load(path):
    with open(path) as f:
        return json.load(f)


def rows(db, table):
    con = sqlite3.connect(db)
    try:
        cols = [r[1] for r in con.execute(f"PRAGMA table_info({table})")]
        return cols, [list(r) for r in con.execute(f"SELECT * FROM {table}")]
    finally:
        con.close()


def keyed(columns, rows_, by):
    """Rows as {key: {column: value}} for the columns of the manifest (a later schema may add columns)."""
    return {tuple(r[columns.index(k)] for k in by): dict(zip(columns, r)) for r in rows_}


class UpgradeTest(unittest.IsolatedAsyncioTestCase):
    def test_there_is_a_fixture_of_the_current_schema(self):
        self.assertTrue(FIXTURES, "no store fixture in tests/fixtures")
        versions = [load(f[:-3] + ".json")["user_version"] for f in FIXTURES]
        # The version this binary writes: what a new store gets.
        srv = harness.Server().start()
        srv.stop()
        con = sqlite3.connect(os.path.join(srv.dir, "agentwire.db"))
        try:
            current = con.execute("PRAGMA user_version").fetchone()[0]
        finally:
            con.close()
        self.assertGreaterEqual(current, 6)
        self.assertIn(current, versions, "a schema change needs a fixture written by it (make_store_fixture.py)")

    async def test_every_fixture_opens_with_every_row_and_chats(self):
        for fixture in FIXTURES:
            with self.subTest(fixture=os.path.basename(fixture)):
                await self.check(fixture)

    async def check(self, fixture):
        manifest = load(fixture[:-3] + ".json")
        os.makedirs(harness.TMP_ROOT, exist_ok=True)
        work = tempfile.mkdtemp(prefix="aw-upgrade-", dir=harness.TMP_ROOT)
        db = os.path.join(work, "agentwire.db")
        shutil.copyfile(fixture, db)
        srv = harness.Server("--set", "store.retention_events=30", "--set", "agents.approval_required_tools=word_count",
                             data_dir=work).start()
        self.addCleanup(srv.stop)
        tables = manifest["tables"]

        # Every row, as the release wrote it (read beside the running server: WAL readers see commits).
        def compare(table, by, changed_ok=()):
            m = tables[table]
            cols, now = rows(db, table)
            now_k = keyed(cols, now, by)
            for key, old in keyed(m["columns"], m["rows"], by).items():
                self.assertTrue(key in now_k, f"{table}: row {key} lost")
                for col, value in old.items():
                    if col not in changed_ok:
                        self.assertEqual(now_k[key][col], value, f"{table} {key}: {col} changed")
            return now_k

        for table, by in (("threads", ["id"]), ("messages", ["id"]), ("approvals", ["id"]),
                          ("token_usage", ["user_id", "day"])):
            compare(table, by)
        compare("events", ["user_id", "seq"])
        # Streams go on: the same epoch (clients keep their position), seqs only grow.
        streams = compare("streams", ["user_id"], changed_ok=("last_seq",))
        old_streams = keyed(tables["streams"]["columns"], tables["streams"]["rows"], ["user_id"])

        runs = {r[0]: r for r in tables["runs"]["rows"]}
        hung = next(r for r in runs.values() if r[3] == "process")
        parked = next(r for r in runs.values() if r[3] == "echo")
        alice = await Client.connect(srv.port, wsclient.dev_token(srv.port, "fx_alice"))
        bob = await Client.connect(srv.port, wsclient.dev_token(srv.port, "fx_bob"))
        for user, c in (("fx_alice", alice), ("fx_bob", bob)):
            old = old_streams[(user,)]
            self.assertEqual(c.established["epoch"], old["epoch"], f"{user}: the epoch is kept")
            self.assertGreaterEqual(c.established["last_seq"], old["last_seq"])
            r = await c.request("resume", {"last_seq": old["last_seq"], "epoch": old["epoch"]}, id_="r",
                                want="resume_complete")
            self.assertEqual(r["type"], "resume_complete", f"{user}: a client at its old position resumes: {r}")
        # The run killed mid-way ended as interrupted, in its user's stream, after the old head.
        ended = next(f for f in bob.events() if f.get("run_id") == hung[0])
        self.assertEqual((ended["type"], ended["data"]["code"]), ("agent_error", "interrupted"))
        self.assertGreater(ended["seq"], old_streams[("fx_bob",)]["last_seq"])
        # Events past retention stay past: a client from before them resyncs.
        if old_streams[("fx_alice",)]["first_seq"] > 1:
            stale = await alice.request("resume", {"last_seq": 0, "epoch": old_streams[("fx_alice",)]["epoch"]},
                                        id_="old")
            self.assertEqual(stale["type"], "resync_required", stale)
        # The threads and their history, through the API.
        listed = await alice.request("list_threads", {}, id_="l", want="threads")
        titles = {t["thread_id"]: t["title"] for t in listed["data"]["threads"]}
        for t in tables["threads"]["rows"]:
            tc = dict(zip(tables["threads"]["columns"], t))
            if tc["user_id"] == "fx_alice":
                self.assertEqual(titles.get(tc["id"]), tc["title"])
                h = await alice.request("get_thread_history", {"thread_id": tc["id"]}, id_="h" + tc["id"],
                                        want="thread_history")
                stored = [dict(zip(tables["messages"]["columns"], m)) for m in tables["messages"]["rows"]]
                self.assertEqual({m["message_id"]: m["content"] for m in h["data"]["messages"]},
                                 {m["id"]: m["content"] for m in stored if m["thread_id"] == tc["id"]})
        # The run that waited for its approval still waits, and goes on once approved.
        pending = await bob.request("list_approvals", {}, id_="a", want="approvals")
        waiting = [a for a in pending["data"]["approvals"] if a["run_id"] == parked[0]]
        self.assertEqual(len(waiting), 1, pending)
        await bob.request("approve_tool", {"approval_id": waiting[0]["approval_id"], "decision": "approve"}, id_="ok",
                          want="approval_recorded")
        # first(): the resumed run may end before the reply to approve_tool arrives (its frames are
        # then already received, while waiting for that reply).
        done = await bob.first(lambda f: f.get("run_id") == parked[0] and f["type"] in TERMINAL)
        self.assertEqual(done["type"], "agent_completed", done)
        # And chat goes on, after the old heads.
        ack = await alice.request("user_message", {"content": "after the upgrade"}, id_="m", want="ack")
        run_id = ack["data"]["run_id"]
        asked = await alice.first(lambda f: f.get("run_id") == run_id and f["type"] == "tool_approval_requested")
        await alice.send("approve_tool", {"approval_id": asked["data"]["approval_id"], "decision": "approve"}, "ok2")
        done = await alice.first(lambda f: f.get("run_id") == run_id and f["type"] in TERMINAL)
        self.assertEqual(done["type"], "agent_completed")
        self.assertGreater(done["seq"], streams[("fx_alice",)]["last_seq"])
        await alice.close()
        await bob.close()
        srv.stop()


if __name__ == "__main__":
    unittest.main()
