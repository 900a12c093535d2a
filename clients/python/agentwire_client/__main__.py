"""A terminal chat on the client:

    python3 -m agentwire_client chat http://127.0.0.1:8080 --user alice     (dev mode)
    python3 -m agentwire_client chat https://chat.example.com --token "$JWT"

Type a message and Enter; answers stream as they arrive, tool calls are shown, an approval is
answered with y or n. Commands: /threads, /thread ID, /new, /rename TITLE,
/delete, /stop, /quit."""
import argparse
import asyncio
import json
import os
import sys
import urllib.request

from .client import AgentwireClient, AgentwireError, FileStorage


def dev_token(url, user):
    with urllib.request.urlopen(f"{url.rstrip('/')}/auth/dev-token?user={urllib.request.quote(user)}", timeout=10) as r:
        return json.load(r)["token"]


def out(text=""):
    sys.stdout.write(text)
    sys.stdout.flush()


class Chat:
    def __init__(self, client):
        self.client = client
        self.thread_id = None
        self.running = None         # the Run being streamed
        self.approval = None        # a pending tool_approval_requested's data
        self.lines = asyncio.Queue()

    def on_event(self, ev):
        t, d = ev["type"], ev.get("data") or {}
        mine = self.thread_id is None or ev.get("thread_id") == self.thread_id
        if not mine:
            return
        if t == "agent_started":
            out(f"[{d.get('agent_name', 'agent')}] ")
        elif t == "agent_response_chunk":
            out(d.get("delta", ""))
        elif t == "tool_executing":
            out(f"\n  > tool {d.get('tool_name')}({json.dumps(d.get('args'))})\n")
        elif t == "tool_completed":
            note = f" ({d['approval']})" if d.get("approval") else ""
            out(f"  < {d.get('tool_name')}: {json.dumps(d.get('result'))}{note}\n")
        elif t == "tool_approval_requested":
            self.approval = d
            out(f"\n  ? allow {d.get('tool_name')}({json.dumps(d.get('args'))})? [y/n] ")
        elif t == "tool_approval_resolved":
            if self.approval and self.approval.get("approval_id") == d.get("approval_id"):
                self.approval = None
            out(f"  = {d.get('decision')} by {d.get('by')}\n")
        elif t == "agent_completed":
            out("\n")
        elif t == "agent_error":
            out(f"\n  ! error {d.get('code')}: {d.get('message')}\n")
        elif t == "agent_stopped":
            out(f"\n  ! stopped ({d.get('reason')})\n")

    async def handle(self, line):
        line = line.strip()
        if not line:
            return True
        if self.approval is not None and line.lower() in ("y", "yes", "n", "no"):
            a, self.approval = self.approval, None
            decision = "approve" if line.lower().startswith("y") else "deny"
            try:
                await self.client.approve(a["approval_id"], decision)
            except AgentwireError as e:
                out(f"  ! {e.code}: {e.message}\n")
            return True
        if line in ("/quit", "/exit"):
            return False
        if line == "/threads":
            for t in (await self.client.threads())["threads"]:
                mark = "*" if t["thread_id"] == self.thread_id else " "
                out(f"{mark} {t['thread_id']}  {t['title']}\n")
            return True
        if line.startswith("/thread "):
            thread_id = line.split(None, 1)[1]
            for m in (await self.client.history(thread_id))["messages"]:
                out(f"{m['role']}: {m['content']}\n")
            self.thread_id = thread_id
            return True
        if line.startswith("/rename ") or line == "/delete":
            if self.thread_id is None:
                out("(no thread yet: send a message first)\n")
                return True
            try:
                if line == "/delete":
                    await self.client.delete_thread(self.thread_id)
                    self.thread_id = None
                    out("(deleted; a new thread starts with the next message)\n")
                else:
                    r = await self.client.rename_thread(self.thread_id, line.split(None, 1)[1])
                    out(f"(renamed: {r['title']})\n")
            except AgentwireError as e:
                out(f"  ! {e.code}: {e.message}\n")
            return True
        if line == "/new":
            self.thread_id = None
            out("(a new thread starts with the next message)\n")
            return True
        if line == "/stop":
            if self.running is not None and self.running.status == "running":
                r = await self.client.stop(self.running.run_id)
                out(f"  ! {r.get('status')}\n")
            else:
                out("(nothing is running)\n")
            return True
        try:
            run = await self.client.send(line, thread_id=self.thread_id)
        except AgentwireError as e:
            out(f"  ! not sent: {e.code}: {e.message}\n")
            return True
        self.thread_id = run.thread_id
        self.running = run
        return True

    async def read_stdin(self):
        # A stream on stdin (a terminal or a pipe), not a blocking read in a thread: /quit must not
        # wait for the next line.
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        try:
            await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        except ValueError:  # a regular file (chat < commands.txt): read it in a thread
            while True:
                line = await loop.run_in_executor(None, sys.stdin.readline)
                await self.lines.put(line)
                if not line:
                    return
        while True:
            line = (await reader.readline()).decode("utf-8", "replace")
            await self.lines.put(line)
            if not line:
                return


async def chat(args):
    token = args.token or (dev_token(args.url, args.user) if args.user else None)
    if not token:
        sys.exit("give --user NAME (dev mode) or --token JWT")
    state = os.path.join(os.path.expanduser("~"), ".local", "state", "agentwire", "positions.json")
    client = AgentwireClient(args.url, token=token, storage=FileStorage(args.state or state))
    c = Chat(client)
    client.on("event", c.on_event)
    client.on("state", lambda s: s != "live" and out(f"({s})\n"))
    client.on("resync", lambda d: out("(history changed while away: /thread ID to reload it)\n"))
    try:
        await client.connect()
    except AgentwireError as e:
        sys.exit(f"cannot connect: {e}")
    out(f"connected as {client.user_id}; /threads, /thread ID, /new, /rename TITLE, /delete, /stop, /quit\n")
    reader = asyncio.ensure_future(c.read_stdin())
    try:
        while True:
            line = await c.lines.get()
            if not line:  # end of input: let what was sent finish first
                if c.running is not None:
                    await c.running.done
                break
            try:
                if not await c.handle(line):
                    break
            except AgentwireError as e:  # a bad thread id, a timeout: said, and the chat goes on
                out(f"  ! {e.code}: {e.message}\n")
    finally:
        await client.close()
        reader.cancel()


def main():
    p = argparse.ArgumentParser(prog="python3 -m agentwire_client")
    sub = p.add_subparsers(dest="command", required=True)
    c = sub.add_parser("chat", help="chat in the terminal")
    c.add_argument("url", help="the server, e.g. http://127.0.0.1:8080")
    c.add_argument("--user", help="dev mode: get a token for this user from /auth/dev-token")
    c.add_argument("--token", help="an HS256 JWT whose sub is the user")
    c.add_argument("--state", help="where the stream position is kept (default ~/.local/state/agentwire)")
    args = p.parse_args()
    asyncio.run(chat(args))


if __name__ == "__main__":
    main()
