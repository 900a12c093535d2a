#!/usr/bin/env python3
"""Bytes of SQLite store per event: USERS users each send MESSAGES messages to the echo agent (about ten
events a run, the answers stored as messages); then the server stops, the WAL is checkpointed into the
database, and its size is divided by the events in it (nothing pruned: retention is set above the count).

  AW_BIN=build/agentwire /usr/bin/python3 bench/store_growth.py [USERS] [MESSAGES]
"""
import asyncio
import os
import sqlite3
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
import harness  # noqa: E402
import wsclient  # noqa: E402
from wsclient import Client  # noqa: E402


async def chat(port, user, messages):
    c = await Client.connect(port, wsclient.dev_token(port, user))
    thread = None
    for i in range(messages):
        data = {"content": f"message number {i} from {user}: a sentence of ordinary length for a chat"}
        if thread:
            data["thread_id"] = thread
        ack = await c.request("user_message", data, id_=f"m{i}", want="ack")
        thread = ack["data"]["thread_id"]
        await c.recv_until(lambda f: f.get("run_id") == ack["data"]["run_id"] and f["type"] == "agent_completed")
    await c.close()


async def main(users, messages):
    srv = harness.Server("--set", "store.retention_events=1000000000").start()
    await asyncio.gather(*(chat(srv.port, f"u{i}", messages) for i in range(users)))
    srv.stop()
    db = os.path.join(srv.dir, "agentwire.db")
    con = sqlite3.connect(db)
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    events = con.execute("SELECT count(*) FROM events WHERE user_id NOT LIKE '\\_\\_%' ESCAPE '\\'").fetchone()[0]
    msgs = con.execute("SELECT count(*) FROM messages").fetchone()[0]
    pages, page_size, free = (con.execute(f"PRAGMA {p}").fetchone()[0] for p in ("page_count", "page_size",
                                                                                  "freelist_count"))
    con.close()
    size = os.path.getsize(db)
    used = (pages - free) * page_size
    print(f"{users} users x {messages} messages: {events} events, {msgs} messages, file {size} bytes "
          f"({used} in use): {used / events:.0f} bytes per event, messages and threads included")


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 20, int(sys.argv[2]) if len(sys.argv) > 2 else 50))
