"""The agentwire client on asyncio and python3-websockets: the same semantics as the JS client
(clients/js/agentwire.js, docs/clients.md). It resumes the user's stream from the last seq it handed
over (stored with the stream's epoch), drops anything at or below it, acknowledges in batches,
reconnects with exponential backoff and jitter, and tells the application when its position is gone."""
import asyncio
import base64
import itertools
import json
import os
import random
import tempfile
import traceback
import urllib.parse

import websockets

FATAL_CLOSE_CODES = {1008, 4002}  # a refused token, the user's connection limit: retrying cannot help
TERMINAL = {"agent_completed": "completed", "agent_error": "error", "agent_stopped": "stopped"}


class AgentwireError(Exception):
    """A server error (`code` as in docs/protocol.md) or the client's own: `timeout`, `disconnected`
    (the connection closed before the reply; a sent message may or may not be stored), `closed`."""

    def __init__(self, code, message="", frame=None, close_code=None):
        super().__init__(f"{code}: {message}" if message else code)
        self.code = code
        self.message = message
        self.frame = frame
        self.close_code = close_code


class MemoryStorage:
    def __init__(self):
        self.data = {}

    def get(self, key):
        return self.data.get(key)

    def set(self, key, value):
        self.data[key] = value

    def delete(self, key):
        self.data.pop(key, None)


class FileStorage:
    """Positions in a JSON file, written atomically (the terminal chat keeps its place across runs)."""

    def __init__(self, path):
        self.path = path

    def _load(self):
        try:
            with open(self.path) as f:
                return json.load(f)
        except (OSError, ValueError):
            return {}

    def get(self, key):
        return self._load().get(key)

    def set(self, key, value):
        data = self._load()
        data[key] = value
        self._write(data)

    def delete(self, key):
        data = self._load()
        data.pop(key, None)
        self._write(data)

    def _write(self, data):
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(self.path)))
        with os.fdopen(fd, "w") as f:
            json.dump(data, f)
        os.replace(tmp, self.path)


_listener_tasks = set()


def _report(task):
    _listener_tasks.discard(task)
    if not task.cancelled() and task.exception() is not None:
        traceback.print_exception(task.exception())


def _call(fn, *args):
    try:
        result = fn(*args)
        if asyncio.iscoroutine(result):
            task = asyncio.ensure_future(result)  # kept until done, its failure reported
            _listener_tasks.add(task)
            task.add_done_callback(_report)
    except Exception:  # a listener's fault is not the client's
        traceback.print_exc()


class Run:
    """One agent run, fed by the user's stream. `on(kind, fn)` first gives fn what already happened.
    Kinds: event, started, thinking, chunk (fn gets the delta), tool, approval, done (fn gets the
    result). `await run.done` gives {status, content, error?, reason?, event}; `events()` iterates."""

    def __init__(self, run_id, thread_id=None):
        self.run_id = run_id
        self.thread_id = thread_id
        self.message_id = None
        self.events_seen = []
        self.text = ""
        self.status = "running"
        self.result = None
        self.done = asyncio.get_running_loop().create_future()
        self._listeners = {}
        self._queues = []

    def on(self, kind, fn):
        for ev in self.events_seen:
            self._dispatch(ev, kind, fn)
        if kind == "done" and self.result is not None:
            _call(fn, self.result)
        self._listeners.setdefault(kind, []).append(fn)
        return lambda: self._listeners.get(kind, []).remove(fn)

    async def events(self):
        """Every event of the run, from its first, until its terminal event."""
        q = asyncio.Queue()
        for ev in self.events_seen:
            q.put_nowait(ev)
        self._queues.append(q)
        try:
            while True:
                ev = await q.get()
                yield ev
                if ev["type"] in TERMINAL:
                    return
        finally:
            self._queues.remove(q)

    def apply(self, ev):
        self.events_seen.append(ev)
        d = ev.get("data") or {}
        if ev["type"] == "agent_response_chunk":
            self.text += d.get("delta", "")
        status = None if self.result is not None else TERMINAL.get(ev["type"])  # settled already: done once
        result = None
        if status:
            self.status = status
            if status == "completed" and isinstance(d.get("content"), str):
                self.text = d["content"]
            result = {"status": status, "content": self.text, "event": ev}
            if status == "error":
                result["error"] = {"code": d.get("code"), "message": d.get("message")}
            if status == "stopped":
                result["reason"] = d.get("reason")
        for kind in ("event", "started", "thinking", "chunk", "tool", "approval"):
            for fn in list(self._listeners.get(kind, [])):
                self._dispatch(ev, kind, fn)
        for q in self._queues:
            q.put_nowait(ev)
        if result is not None:
            self.settle(result)

    def settle(self, result):
        """Ends the run: with its terminal event, or without it (the client stopped following it, or the
        server says how it ended). Once."""
        if self.result is not None:
            return
        self.status = result["status"]
        self.result = {"run_id": self.run_id, "thread_id": self.thread_id, **result}
        for fn in list(self._listeners.get("done", [])):
            _call(fn, self.result)
        if not self.done.done():
            self.done.set_result(self.result)

    @staticmethod
    def _dispatch(ev, kind, fn):
        t, d = ev["type"], ev.get("data") or {}
        if kind == "event":
            _call(fn, ev)
        elif kind == "started" and t == "agent_started":
            _call(fn, d, ev)
        elif kind == "thinking" and t == "agent_thinking":
            _call(fn, d, ev)
        elif kind == "chunk" and t == "agent_response_chunk":
            _call(fn, d.get("delta", ""), ev)
        elif kind == "tool" and t in ("tool_executing", "tool_completed"):
            _call(fn, d, ev)
        elif kind == "approval" and t in ("tool_approval_requested", "tool_approval_resolved"):
            _call(fn, d, ev)


def user_from_token(token):
    try:
        part = token.split(".")[1]
        return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))["sub"]
    except (IndexError, ValueError, KeyError):
        return None


class AgentwireClient:
    """Events (client.on): state (idle, connecting, live, reconnecting, closed), live, event (every
    stream event once, in seq order), each stream event's type (fn gets data, event), resync
    ({epoch, last_seq, reason}), closed ({code, reason}: final), frame (every frame), error."""

    def __init__(self, url, token=None, get_token=None, storage=None, storage_key=None,
                 backoff_initial=0.25, backoff_max=10.0, ack_delay=0.15, request_timeout=30.0, keep_runs=500):
        base = url.rstrip("/")
        parsed = urllib.parse.urlsplit(base)
        scheme = {"http": "ws", "https": "wss"}.get(parsed.scheme, parsed.scheme)
        self.ws_url = urllib.parse.urlunsplit((scheme, parsed.netloc, parsed.path + "/ws", "", ""))
        self.token = token
        self.get_token = get_token
        self.storage = storage if storage is not None else MemoryStorage()
        self.storage_key = storage_key
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.ack_delay = ack_delay
        self.request_timeout = request_timeout
        self.keep_runs = keep_runs

        self.state = "idle"
        self.ws = None
        self.epoch = None
        self.last_seq = 0
        self.acked_seq = 0
        self.user_id = user_from_token(token) if token else None
        self.connection_id = None
        self.attempts = 0
        self.connects = 0
        self.auth_refusals = 0
        self.runs = {}
        self._listeners = {}
        self._pending = {}
        self._ids = itertools.count(1)
        self._live = None
        self._task = None
        self._ack_task = None
        self._closed_error = None
        self._resume_sent = False

    # ---- events ------------------------------------------------------------------------

    def on(self, type_, fn):
        self._listeners.setdefault(type_, []).append(fn)
        return lambda: self._listeners.get(type_, []).remove(fn)

    def _emit(self, type_, *args):
        for fn in list(self._listeners.get(type_, [])):
            _call(fn, *args)

    def _set_state(self, s):
        if self.state != s:
            self.state = s
            self._emit("state", s)

    # ---- connection --------------------------------------------------------------------

    async def connect(self):
        """Starts the connection loop; returns once the stream is live. Raises AgentwireError when
        the server refuses for good (close_code 1008 or 4002)."""
        if self.state == "closed":
            raise AgentwireError("closed", "the client was closed")
        if self._task is None:
            self._live = asyncio.get_running_loop().create_future()
            self._task = asyncio.ensure_future(self._loop())
        await self.wait_live()

    async def wait_live(self):
        if self.state == "live":
            return
        if self.state == "closed":
            raise self._closed_error or AgentwireError("closed", "the client was closed")
        if self._live is None or self._live.done():
            self._live = asyncio.get_running_loop().create_future()
        await asyncio.shield(self._live)

    async def close(self):
        """Closes for good: no reconnect, pending requests fail with `closed`."""
        await self.flush_ack()
        self._save_position()
        self._finish(AgentwireError("closed", "the client was closed"), "the client was closed")
        if self.ws is not None:
            await self.ws.close()
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass
        if self._ack_task is not None:
            self._ack_task.cancel()

    async def _loop(self):
        while self.state != "closed":
            self._set_state("connecting" if self.connects == 0 else "reconnecting")
            self.connects += 1
            code, reason = 1006, "connection failed"
            try:
                token = self.token
                if self.get_token is not None:
                    token = self.token = await self.get_token()
                if self.user_id is None and token:
                    self.user_id = user_from_token(token)
                async with websockets.connect(self.ws_url, subprotocols=["jwt-auth", f"jwt.{token}"],
                                              max_size=None, open_timeout=10) as ws:
                    self.ws = ws
                    try:
                        async for text in ws:
                            try:
                                frame = json.loads(text)
                            except ValueError:
                                continue
                            await self._on_frame(frame)
                    except websockets.ConnectionClosed:
                        pass
                    code, reason = ws.close_code or 1006, ws.close_reason or ""
            except asyncio.CancelledError:
                raise
            except Exception as e:  # refused, reset, a failing get_token: all reconnect
                reason = str(e)
            finally:
                self.ws = None
                self._resume_sent = False
                if self._ack_task is not None:
                    self._ack_task.cancel()  # an ack must never be a new connection's first frame
            self._fail_pending("disconnected", f"the connection closed ({code} {reason}) before the reply")
            if self.state == "closed":
                return
            if code == 1008:
                self.auth_refusals += 1
            if code in FATAL_CLOSE_CODES and not (code == 1008 and self.get_token and self.auth_refusals < 2):
                return self._fatal(code, reason)
            self._set_state("reconnecting")
            self.attempts += 1
            step = min(self.backoff_max, self.backoff_initial * 2 ** min(self.attempts - 1, 16))
            await asyncio.sleep(step / 2 + random.random() * step / 2)  # the backoff itself, with jitter

    def _finish(self, err, pending_message):
        """The end for good (close() or a refusal): runs settle, the wait for live and requests fail."""
        self._set_state("closed")
        self._settle_runs("closed")
        if self._live is not None and not self._live.done():
            self._live.set_exception(err)
            self._live.exception()  # retrieved: nobody may be waiting
        self._fail_pending("closed", pending_message)

    def _fatal(self, code, reason):
        self._closed_error = AgentwireError((reason or "").split(":")[0] or "closed",
                                            f"closed for good: {code} {reason}", close_code=code)
        self._finish(self._closed_error, str(self._closed_error))
        self._emit("closed", {"code": code, "reason": reason})

    # ---- the stream position -----------------------------------------------------------

    def _key(self):
        return self.storage_key or f"agentwire:{self.user_id or 'anonymous'}"

    def _save_position(self):
        # Saved with each acknowledgement, on resync and on close, not on every event (a file write each);
        # a position that could not be saved only means some events come again after a restart.
        if self.epoch is None:
            return
        try:
            self.storage.set(self._key(), {"epoch": self.epoch, "last_seq": self.last_seq})
        except Exception as e:  # a full disk must not cost the event in hand
            self._emit("error", AgentwireError("storage", str(e)))

    def reset_position(self):
        self.epoch, self.last_seq = None, 0
        self.storage.delete(self._key())

    # ---- frames ------------------------------------------------------------------------

    async def _on_frame(self, f):
        self._emit("frame", f)
        if f.get("seq") is not None:
            return self._on_stream_event(f)
        t = f.get("type")
        if t == "connection_established":
            return await self._on_established(f.get("data") or {})
        if t == "resume_complete":
            return self._go_live()
        if t == "resync_required":
            return self._on_resync(f.get("data") or {})
        if t == "error" and f.get("id") == "resume":
            # The stream could not be read (e.g. unavailable): never live on this connection; start again.
            self._emit("error", AgentwireError(f["data"].get("code"), f["data"].get("message"), f))
            await self.ws.close(4000, "resume failed")
            return
        fut = self._pending.pop(str(f.get("id")), None) if f.get("id") is not None else None
        if fut is None:
            if t == "error":
                self._emit("error", AgentwireError(f["data"].get("code"), f["data"].get("message"), f))
            return
        if fut.done():
            return
        if t == "error":
            fut.set_exception(AgentwireError(f["data"].get("code"), f["data"].get("message"), f))
        else:
            fut.set_result(f.get("data") or {})

    async def _on_established(self, data):
        self.user_id = data.get("user_id", self.user_id)
        self.connection_id = data.get("connection_id")
        if self.epoch is None:
            saved = self.storage.get(self._key()) or {}
            if saved.get("epoch"):
                self.epoch, self.last_seq = saved["epoch"], saved.get("last_seq", 0)
            else:  # a stream never seen: start at its head
                self.epoch, self.last_seq = data.get("epoch"), data.get("last_seq", 0)
                self._save_position()
        self.acked_seq = min(self.acked_seq, self.last_seq)
        # The connection is held until its first frame: resume is that frame.
        self._resume_sent = await self._send({"type": "resume", "id": "resume",
                                              "data": {"last_seq": self.last_seq, "epoch": self.epoch}})

    def _go_live(self):
        self.attempts = 0
        self.auth_refusals = 0
        self._set_state("live")
        self._emit("live")
        if self._live is not None and not self._live.done():
            self._live.set_result(None)

    def _on_resync(self, data):
        self.epoch, self.last_seq, self.acked_seq = data.get("epoch"), data.get("last_seq", 0), 0
        self._save_position()
        self._emit("resync", data)
        if self.state != "live":
            self._go_live()
        for run in list(self.runs.values()):  # runs whose end was in the events skipped
            if run.status == "running":
                self._spawn(self._check_run(run))

    def _spawn(self, coro):
        task = asyncio.ensure_future(coro)
        _listener_tasks.add(task)
        task.add_done_callback(_report)

    async def _check_run(self, run):
        """Settles a run from the server's record if it has ended (its end was not seen in the stream)."""
        try:
            r = await self.request("get_run", {"run_id": run.run_id})
        except AgentwireError as e:
            if e.code == "run_not_found":
                run.settle({"status": "unknown", "content": run.text, "error": {"code": e.code, "message": e.message}})
            return
        if run.thread_id is None:
            run.thread_id = r.get("thread_id")
        if run.status == "running" and r.get("status") in ("completed", "error", "stopped", "interrupted"):
            run.settle({"status": "error" if r["status"] == "interrupted" else r["status"], "content": run.text,
                        "error": r.get("error"), "from_server": True})

    def _settle_runs(self, why):
        for run in self.runs.values():
            if run.status == "running":
                run.settle({"status": "unknown", "content": run.text,
                            "error": {"code": why, "message": "the client stopped following the run"}})

    def _on_stream_event(self, ev):
        if ev["seq"] <= self.last_seq:
            return  # seen already: a replay overlapping what was handed over
        self.last_seq = ev["seq"]
        if ev.get("run_id"):
            self._run_for(ev["run_id"], ev.get("thread_id")).apply(ev)
        self._emit("event", ev)
        self._emit(ev["type"], ev.get("data") or {}, ev)
        if self._ack_task is None or self._ack_task.done():
            self._ack_task = asyncio.ensure_future(self._ack_later())

    async def _ack_later(self):
        await asyncio.sleep(self.ack_delay)  # the batching window of acknowledgements
        await self.flush_ack()

    async def flush_ack(self):
        """Sends the cumulative acknowledgement now (it is otherwise batched)."""
        self._save_position()
        if (self._resume_sent and self.last_seq > self.acked_seq
                and await self._send({"type": "ack_events", "data": {"seq": self.last_seq}})):
            self.acked_seq = self.last_seq

    async def _send(self, frame):
        ws = self.ws
        if ws is None:
            return False
        try:
            await ws.send(json.dumps(frame))
            return True
        except websockets.ConnectionClosed:
            return False

    # ---- requests ----------------------------------------------------------------------

    async def request(self, type_, data=None, timeout=None):
        """Sends {type, id, data} once the stream is live; returns the reply's data. Raises
        AgentwireError: the server's code, or timeout, disconnected, closed."""
        timeout = self.request_timeout if timeout is None else timeout
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        try:
            await asyncio.wait_for(self.wait_live(), timeout)
        except asyncio.TimeoutError:
            raise AgentwireError("timeout", f"not connected within {timeout} s") from None
        id_ = f"p{next(self._ids)}"
        fut = loop.create_future()
        self._pending[id_] = fut
        if not await self._send({"type": type_, "id": id_, "data": data or {}}):
            self._pending.pop(id_, None)
            raise AgentwireError("disconnected", "the connection closed before the request was sent")
        try:
            return await asyncio.wait_for(fut, max(0.0, deadline - loop.time()))
        except asyncio.TimeoutError:
            raise AgentwireError("timeout", f"no reply to {type_} within {timeout} s") from None
        finally:
            self._pending.pop(id_, None)

    def _fail_pending(self, code, message):
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(AgentwireError(code, message))
        self._pending.clear()

    def _run_for(self, run_id, thread_id=None):
        run = self.runs.get(run_id)
        if run is None:
            run = self.runs[run_id] = Run(run_id, thread_id)
            if len(self.runs) > self.keep_runs:
                for rid in [r for r, v in self.runs.items() if v.status != "running"][: len(self.runs) - self.keep_runs]:
                    del self.runs[rid]
        elif run.thread_id is None:
            run.thread_id = thread_id
        return run

    def run(self, run_id):
        """The Run of a run id, fed from the stream whatever sent its message. A run this client has not
        seen is looked up, so that one that already ended settles at once."""
        known = run_id in self.runs
        run = self._run_for(run_id)
        if not known and self.state != "closed":
            self._spawn(self._check_run(run))
        return run

    async def send(self, content, thread_id=None, agent=None, on_busy=None, timeout=None):
        """Sends a message; returns its Run once the message is stored (ack)."""
        data = {"content": content}
        if thread_id:
            data["thread_id"] = thread_id
        if agent:
            data["agent"] = agent
        if on_busy:
            data["on_busy"] = on_busy
        ack = await self.request("user_message", data, timeout)
        run = self._run_for(ack["run_id"], ack["thread_id"])
        run.message_id = ack["message_id"]
        return run

    async def stop(self, run_id):
        return await self.request("stop_agent", {"run_id": run_id})

    async def approve(self, approval_id, decision="approve", reason=None):
        data = {"approval_id": approval_id, "decision": decision}
        if reason:
            data["reason"] = reason
        return await self.request("approve_tool", data)

    async def approvals(self):
        return (await self.request("list_approvals"))["approvals"]

    async def agents(self):
        """The agents this user may pick: {"agents": [{name, kind, description, tools, ...}], "default": name}."""
        return await self.request("list_agents")

    async def threads(self, limit=None, before=None):
        data = {}
        if limit:
            data["limit"] = limit
        if before is not None:
            data["before"] = before
        return await self.request("list_threads", data)

    async def history(self, thread_id, limit=None, before=None):
        data = {"thread_id": thread_id}
        if limit:
            data["limit"] = limit
        if before is not None:
            data["before"] = before
        return await self.request("get_thread_history", data)

    async def list_runs(self, thread_id):
        return (await self.request("list_runs", {"thread_id": thread_id}))["runs"]

    async def create_thread(self, title=None, agent=None, on_busy=None):
        data = {k: v for k, v in (("title", title), ("agent", agent), ("on_busy", on_busy)) if v}
        return await self.request("create_thread", data)

    async def rename_thread(self, thread_id, title):
        """{thread_id, title}; every connection of the user gets a thread_renamed event."""
        return await self.request("rename_thread", {"thread_id": thread_id, "title": title})

    async def delete_thread(self, thread_id):
        """{thread_id}; refused (thread_busy) while a run of it is in progress. Every connection of
        the user gets a thread_deleted event; the thread's events stay in the stream."""
        return await self.request("delete_thread", {"thread_id": thread_id})
