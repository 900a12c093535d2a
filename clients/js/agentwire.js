// agentwire client for browsers and Node 20+. One ES module, no dependencies, no build step.
//
// It does the protocol's hard part (docs/protocol.md) so that an application does not have to:
// it resumes the user's stream from the last seq it saw (stored, with the stream's epoch), drops
// anything at or below it (an event is never handed over twice or out of order), acknowledges
// what it handed over (ack_events, batched), reconnects with exponential backoff and jitter, and
// tells the application when its position is gone (resync). Requests are matched to replies by id.
//
//   import { AgentwireClient } from "./agentwire.js";
//   const client = new AgentwireClient({ url: "http://127.0.0.1:8080", token });
//   await client.connect();
//   const run = await client.send("hello");
//   run.on("chunk", (delta) => process.stdout.write(delta));
//   const { status, content } = await run.done;

/** The states a client goes through; `closed` is final (close() or a refusal that retrying cannot fix). */
export const STATES = ["idle", "connecting", "live", "reconnecting", "closed"];

/** Close codes after which reconnecting cannot help: a refused token, the user's connection limit. */
const FATAL_CLOSE_CODES = new Set([1008, 4002]);

const TERMINAL = { agent_completed: "completed", agent_error: "error", agent_stopped: "stopped" };

/** An error answered by the server (`code` as in docs/protocol.md) or by the client itself:
 * `timeout` (no reply in time), `disconnected` (the connection closed before the reply; for a
 * `user_message` the message may or may not have been stored), `closed` (the client was closed). */
export class AgentwireError extends Error {
  constructor(code, message, frame) {
    super(message || code);
    this.name = "AgentwireError";
    this.code = code;
    this.frame = frame;
  }
}

/** Calls a listener; its exception is rethrown outside the client (reported, never breaking delivery). */
function safeCall(fn, ...args) {
  try { fn(...args); } catch (e) { queueMicrotask(() => { throw e; }); }
}

class Emitter {
  constructor() { this.listeners = new Map(); }

  /** Calls fn for each event named `type` ("*" for all). Returns a function that removes it. */
  on(type, fn) {
    if (!this.listeners.has(type)) this.listeners.set(type, new Set());
    this.listeners.get(type).add(fn);
    return () => this.off(type, fn);
  }

  off(type, fn) { this.listeners.get(type)?.delete(fn); }

  emit(type, ...args) {
    for (const key of [type, "*"]) {
      for (const fn of [...(this.listeners.get(key) || [])]) safeCall(fn, ...(key === "*" ? [type, ...args] : args));
    }
  }
}

/** One agent run, fed by the user's stream. `on(kind, fn)` also calls fn at once for what already
 * happened, so a listener added after `await client.send()` misses nothing. Kinds: `event` (every
 * event of the run), `started`, `thinking`, `chunk` (fn gets the delta), `tool` (tool_executing and
 * tool_completed), `approval` (tool_approval_requested and _resolved), `done` (fn gets the result). */
export class Run {
  constructor(runId, threadId) {
    this.runId = runId;
    this.threadId = threadId;
    this.messageId = undefined;  // the user message that started it, when sent from this client
    this.events = [];
    this.text = "";               // the answer streamed so far
    this.status = "running";      // then completed, error or stopped
    this.result = undefined;
    this.emitter = new Emitter();
    this.done = new Promise((resolve) => { this.resolveDone = resolve; });
  }

  on(kind, fn) {
    for (const ev of this.events) this.dispatch(ev, kind, fn);
    if (kind === "done" && this.result) safeCall(fn, this.result);
    return this.emitter.on(kind, fn);
  }

  apply(ev) {
    this.events.push(ev);
    const d = ev.data || {};
    if (ev.type === "agent_response_chunk") this.text += d.delta || "";
    const status = this.result ? undefined : TERMINAL[ev.type];  // settled already: done once
    let result;
    if (status) {
      this.status = status;
      if (status === "completed" && typeof d.content === "string") this.text = d.content;
      result = { status, content: this.text, event: ev };
      if (status === "error") result.error = { code: d.code, message: d.message };
      if (status === "stopped") result.reason = d.reason;
    }
    for (const kind of ["event", "started", "thinking", "chunk", "tool", "approval"]) {
      for (const fn of [...(this.emitter.listeners.get(kind) || [])]) this.dispatch(ev, kind, fn);
    }
    if (result) this.settle(result);
  }

  /** Ends the run: with its terminal event, or without it (the client stopped following it, or the
   * server says how it ended). Once. */
  settle(result) {
    if (this.result) return;
    this.status = result.status;
    this.result = { runId: this.runId, threadId: this.threadId, ...result };
    this.emitter.emit("done", this.result);
    this.resolveDone(this.result);
  }

  dispatch(ev, kind, fn) {
    const d = ev.data || {};
    const call = (...args) => safeCall(fn, ...args);
    switch (kind) {
      case "event": return call(ev);
      case "started": return ev.type === "agent_started" && call(d, ev);
      case "thinking": return ev.type === "agent_thinking" && call(d, ev);
      case "chunk": return ev.type === "agent_response_chunk" && call(d.delta || "", ev);
      case "tool": return (ev.type === "tool_executing" || ev.type === "tool_completed") && call(d, ev);
      case "approval":
        return (ev.type === "tool_approval_requested" || ev.type === "tool_approval_resolved") && call(d, ev);
    }
  }
}

function memoryStorage() {
  const m = new Map();
  return { getItem: (k) => (m.has(k) ? m.get(k) : null), setItem: (k, v) => m.set(k, String(v)), removeItem: (k) => m.delete(k) };
}

function userFromToken(token) {
  try {
    const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const json = typeof atob === "function" ? atob(part) : Buffer.from(part, "base64").toString("utf8");
    return JSON.parse(json).sub;
  } catch { return undefined; }
}

/** The client. Events (client.on): `state` (one of STATES), `live` (resumed, events flow live),
 * `event` (every stream event, once, in seq order), each stream event's own type
 * (`agent_completed`, ...), `resync` ({epoch, last_seq, reason}: the stored position is gone;
 * reload what you show, e.g. history()), `closed` ({code, reason}: final), `frame` (every frame). */
export class AgentwireClient extends Emitter {
  /**
   * @param {object} o
   * @param {string} [o.url] the server, `http(s)://host:port` or `ws(s)://host:port`; in a browser the page's origin
   * @param {string} [o.token] an HS256 JWT whose `sub` is the user
   * @param {() => Promise<string>|string} [o.getToken] called for a fresh token before each connect
   * @param {any} [o.WebSocket] a WebSocket constructor (globalThis.WebSocket by default; in Node 20, e.g. the `ws` package)
   * @param {{getItem: Function, setItem: Function}} [o.storage] where the position is kept (localStorage in browsers)
   * @param {string} [o.storageKey] default `agentwire:<user>`
   * @param {number} [o.backoffInitialMs] first reconnect delay (250), doubling up to backoffMaxMs (10000), with jitter
   * @param {number} [o.backoffMaxMs]
   * @param {number} [o.ackDelayMs] acknowledgements are batched over this long (150)
   * @param {number} [o.requestTimeoutMs] default timeout of a request (30000)
   * @param {number} [o.keepRuns] ended runs kept for run() lookups (500)
   */
  constructor(o = {}) {
    super();
    const origin = typeof location !== "undefined" ? location.origin : undefined;
    const base = (o.url || origin || "").replace(/\/+$/, "");
    if (!base) throw new Error("agentwire: url is required outside a browser");
    this.wsUrl = `${base.replace(/^http(s?):/, "ws$1:")}/ws`;
    this.token = o.token;
    this.getToken = o.getToken;
    this.WebSocketImpl = o.WebSocket || globalThis.WebSocket;
    if (!this.WebSocketImpl) throw new Error("agentwire: no WebSocket: pass one (e.g. the ws package) as options.WebSocket");
    this.storage = o.storage || (typeof localStorage !== "undefined" ? localStorage : memoryStorage());
    this.storageKey = o.storageKey;
    this.backoffInitialMs = o.backoffInitialMs ?? 250;
    this.backoffMaxMs = o.backoffMaxMs ?? 10000;
    this.ackDelayMs = o.ackDelayMs ?? 150;
    this.requestTimeoutMs = o.requestTimeoutMs ?? 30000;
    this.keepRuns = o.keepRuns ?? 500;

    this.state = "idle";
    this.ws = null;
    this.epoch = null;
    this.lastSeq = 0;
    this.ackedSeq = 0;
    this.userId = undefined;
    this.connectionId = undefined;
    this.attempts = 0;          // connects since the last time the stream went live
    this.connects = 0;          // sockets opened in all
    this.authRefusals = 0;      // 1008 closes since the stream was last live
    this.reconnectTimer = null;
    this.opening = false;       // between open() and the socket (getToken may take a while)
    this.ackTimer = null;
    this.pending = new Map();   // request id -> {resolve, reject, timer}
    this.nextId = 1;
    this.runs = new Map();      // run_id -> Run
    this.liveWaiters = [];
  }

  // ---- connection ------------------------------------------------------------------------

  /** Opens the connection; resolves once the stream is live (resumed). Rejects if it is refused for good. */
  connect() {
    if (this.state === "closed") return Promise.reject(new AgentwireError("closed", "the client was closed"));
    const live = this.waitLive();
    if (!this.ws && !this.reconnectTimer && !this.opening) this.open();
    return live;
  }

  /** Closes for good: no reconnect, pending requests fail with `closed`. */
  close() {
    this.flushAck();
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = null;
    const ws = this.ws;
    this.ws = null;
    if (ws) ws.close(1000, "client closed");
    this.finish(new AgentwireError("closed", "the client was closed"));
  }

  /** The end for good (close() or a refusal): runs settle, waiters and requests fail with `err`. */
  finish(err) {
    this.setState("closed");
    this.settleRuns("closed");
    for (const w of this.liveWaiters.splice(0)) w.reject(err);
    this.failPending("closed", err.message);
  }

  /** Reconnects at once instead of at the end of the backoff (e.g. when the browser is online again). */
  reconnectNow() {
    if (this.state !== "reconnecting" || this.ws || this.opening) return;
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = null;
    this.open();
  }

  /** Resolves when the stream is live (at once if it is). */
  waitLive() {
    if (this.state === "live") return Promise.resolve();
    if (this.state === "closed") return Promise.reject(new AgentwireError("closed", "the client was closed"));
    return new Promise((resolve, reject) => this.liveWaiters.push({ resolve, reject }));
  }

  async open() {
    // One connection attempt at a time: connect() or reconnectNow() during getToken() must not start another.
    if (this.state === "closed" || this.opening) return;
    this.opening = true;
    this.setState(this.connects === 0 ? "connecting" : "reconnecting");
    this.connects += 1;
    let token = this.token;
    if (this.getToken) {
      try {
        token = this.token = await this.getToken();
      } catch {
        this.opening = false;
        return this.scheduleReconnect();
      }
    }
    this.opening = false;
    if (this.state === "closed") return;
    if (!token) return this.fatal(1008, "missing_token: no token given");
    this.userId ??= userFromToken(token);
    let ws;
    try {
      // Browsers cannot set headers on a WebSocket: the token travels as a subprotocol.
      ws = new this.WebSocketImpl(this.wsUrl, ["jwt-auth", `jwt.${token}`]);
    } catch (e) {
      return this.scheduleReconnect();
    }
    this.ws = ws;
    ws.onmessage = (e) => {
      if (this.ws !== ws) return;
      const text = typeof e.data === "string" ? e.data : new TextDecoder().decode(e.data);
      let frame;
      try { frame = JSON.parse(text); } catch { return; }
      this.onFrame(frame);
    };
    ws.onclose = (e) => this.onSocketClosed(ws, e.code, e.reason);
    // A connection that fails before it opens: some implementations (Node 20's) report the error and
    // never the close that should follow, so the error ends the attempt.
    ws.onerror = () => {
      if (ws.readyState === 0) this.onSocketClosed(ws, 1006, "connection failed");
    };
  }

  onSocketClosed(ws, code, reason) {
    if (this.ws !== ws) return;
    this.ws = null;
    clearTimeout(this.ackTimer);
    this.ackTimer = null;
    this.failPending("disconnected", `the connection closed (${code}${reason ? ` ${reason}` : ""}) before the reply`);
    if (this.state === "closed") return;
    // A refused token is final, unless getToken may give a fresh one: then twice in a row is.
    if (code === 1008) this.authRefusals += 1;
    if (FATAL_CLOSE_CODES.has(code) && !(code === 1008 && this.getToken && this.authRefusals < 2)) {
      return this.fatal(code, reason);
    }
    this.scheduleReconnect();
  }

  fatal(code, reason) {
    const err = new AgentwireError(String(reason || code).split(":")[0] || "closed", `closed for good: ${code} ${reason || ""}`.trim());
    err.closeCode = code;
    this.finish(err);  // runs settle, then "closed" is said; the rejections reach their handlers after both
    this.emit("closed", { code, reason });
  }

  scheduleReconnect() {
    if (this.state === "closed" || this.reconnectTimer) return;
    this.setState("reconnecting");
    this.attempts += 1;
    // Exponential backoff with jitter (0.5-1x): a restarted server is not met by every client at once.
    const step = Math.min(this.backoffMaxMs, this.backoffInitialMs * 2 ** Math.min(this.attempts - 1, 16));
    const delay = step / 2 + (Math.random() * step) / 2;
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = null;
      this.open();
    }, delay);
  }

  setState(s) {
    if (this.state === s) return;
    this.state = s;
    this.emit("state", s);
  }

  // ---- the stream position --------------------------------------------------------------

  key() { return this.storageKey || `agentwire:${this.userId || "anonymous"}`; }

  loadPosition() {
    try { return JSON.parse(this.storage.getItem(this.key()) || "null") || {}; } catch { return {}; }
  }

  savePosition() {
    try { this.storage.setItem(this.key(), JSON.stringify({ epoch: this.epoch, lastSeq: this.lastSeq })); } catch { /* full */ }
  }

  /** Forgets the stored position: the next connect starts at the stream's head. */
  resetPosition() {
    this.epoch = null;
    this.lastSeq = 0;
    try { this.storage.removeItem?.(this.key()); } catch { /* ignore */ }
  }

  // ---- frames ----------------------------------------------------------------------------

  onFrame(f) {
    this.emit("frame", f);
    if (f.seq !== undefined && f.seq !== null) return this.onStreamEvent(f);
    switch (f.type) {
      case "connection_established": return this.onEstablished(f.data || {});
      case "resume_complete": return this.goLive();
      case "resync_required": return this.onResync(f.data || {});
    }
    const err = f.type === "error" ? new AgentwireError(f.data?.code, f.data?.message, f) : null;
    if (err && f.id === "resume") {
      // The stream could not be read (e.g. `unavailable`): never live on this connection; start again.
      this.emit("error", err);
      this.ws?.close(4000, "resume failed");
      return;
    }
    const p = f.id !== undefined && this.pending.get(String(f.id));
    if (!p) {
      if (err) this.emit("error", err);
      return;
    }
    this.pending.delete(String(f.id));
    clearTimeout(p.timer);
    if (err) p.reject(err);
    else p.resolve(f.data || {}, f);
  }

  onEstablished(data) {
    this.userId = data.user_id;
    this.connectionId = data.connection_id;
    if (this.epoch === null) {
      const saved = this.loadPosition();
      if (saved.epoch) {
        this.epoch = saved.epoch;
        this.lastSeq = saved.lastSeq || 0;
      } else {
        // A stream this client has never seen: start at its head (history is for what came before).
        this.epoch = data.epoch;
        this.lastSeq = data.last_seq || 0;
        this.savePosition();
      }
    }
    this.ackedSeq = Math.min(this.ackedSeq, this.lastSeq);
    // The connection is held until its first frame: resume is that frame, so nothing is missed or doubled.
    this.sendFrame({ type: "resume", id: "resume", data: { last_seq: this.lastSeq, epoch: this.epoch } });
  }

  goLive() {
    this.attempts = 0;
    this.authRefusals = 0;
    this.setState("live");
    this.emit("live");
    for (const w of this.liveWaiters.splice(0)) w.resolve();
  }

  onResync(data) {
    this.epoch = data.epoch;
    this.lastSeq = data.last_seq || 0;
    this.ackedSeq = 0;
    this.savePosition();
    this.emit("resync", data);
    if (this.state !== "live") this.goLive();
    // Runs whose end was in the events skipped: ask how they ended.
    for (const run of this.runs.values()) if (run.status === "running") this.checkRun(run);
  }

  /** Settles a run from the server's record if it has ended (its end was not seen in the stream). */
  async checkRun(run) {
    try {
      const r = await this.request("get_run", { run_id: run.runId });
      run.threadId ??= r.thread_id;
      if (run.status === "running" && ["completed", "error", "stopped", "interrupted"].includes(r.status)) {
        run.settle({ status: r.status === "interrupted" ? "error" : r.status, content: run.text,
          error: r.error, fromServer: true });
      }
    } catch (e) {
      if (e.code === "run_not_found") run.settle({ status: "unknown", content: run.text, error: { code: e.code, message: e.message } });
    }
  }

  /** Settles every run still followed when the client stops following them (close, refusal). */
  settleRuns(why) {
    for (const run of this.runs.values()) {
      if (run.status === "running") run.settle({ status: "unknown", content: run.text, error: { code: why, message: "the client stopped following the run" } });
    }
  }

  onStreamEvent(ev) {
    if (ev.seq <= this.lastSeq) return;  // seen already: a replay overlapping what was handed over
    this.lastSeq = ev.seq;
    this.savePosition();
    if (ev.run_id) this.runFor(ev.run_id, ev.thread_id).apply(ev);
    this.emit("event", ev);
    this.emit(ev.type, ev.data || {}, ev);
    this.scheduleAck();
  }

  scheduleAck() {
    if (this.ackTimer || this.ackDelayMs < 0) return;
    this.ackTimer = setTimeout(() => {
      this.ackTimer = null;
      this.flushAck();
    }, this.ackDelayMs);
  }

  /** Sends the cumulative acknowledgement now (it is otherwise batched). */
  flushAck() {
    clearTimeout(this.ackTimer);
    this.ackTimer = null;
    if (this.lastSeq > this.ackedSeq && this.sendFrame({ type: "ack_events", data: { seq: this.lastSeq } })) {
      this.ackedSeq = this.lastSeq;
    }
  }

  sendFrame(frame) {
    const ws = this.ws;
    if (!ws || ws.readyState !== 1) return false;
    ws.send(JSON.stringify(frame));
    return true;
  }

  // ---- requests --------------------------------------------------------------------------

  /** Sends `{type, id, data}` once the stream is live and resolves with the reply's `data`.
   * Rejects with an AgentwireError: the server's error code, or `timeout`, `disconnected`, `closed`. */
  async request(type, data = {}, { timeoutMs = this.requestTimeoutMs } = {}) {
    const deadline = Date.now() + timeoutMs;
    await withTimeout(this.waitLive(), timeoutMs, () => new AgentwireError("timeout", `not connected within ${timeoutMs} ms`));
    const id = `c${this.nextId++}`;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new AgentwireError("timeout", `no reply to ${type} within ${timeoutMs} ms`));
      }, Math.max(0, deadline - Date.now()));
      this.pending.set(id, { resolve, reject, timer });
      if (!this.sendFrame({ type, id, data })) {
        this.pending.delete(id);
        clearTimeout(timer);
        reject(new AgentwireError("disconnected", "the connection closed before the request was sent"));
      }
    });
  }

  failPending(code, message) {
    for (const p of this.pending.values()) {
      clearTimeout(p.timer);
      p.reject(new AgentwireError(code, message));
    }
    this.pending.clear();
  }

  runFor(runId, threadId) {
    let run = this.runs.get(runId);
    if (!run) {
      run = new Run(runId, threadId);
      this.runs.set(runId, run);
      this.pruneRuns();
    } else if (!run.threadId && threadId) {
      run.threadId = threadId;
    }
    return run;
  }

  pruneRuns() {
    if (this.runs.size <= this.keepRuns) return;
    for (const [id, r] of this.runs) {
      if (this.runs.size <= this.keepRuns) break;
      if (r.status !== "running") this.runs.delete(id);
    }
  }

  /** The Run of a run id, fed from the stream whatever sent its message (another device, HTTP). A run
   * this client has not seen is looked up, so that one that already ended settles at once. */
  run(runId) {
    const known = this.runs.has(runId);
    const run = this.runFor(runId);
    if (!known && this.state !== "closed") this.checkRun(run);
    return run;
  }

  /** Sends a message. Resolves with its Run once the message is stored (`ack`).
   * @param {string} content
   * @param {{threadId?: string, agent?: string, onBusy?: "enqueue"|"reject"|"interrupt", timeoutMs?: number}} [o] */
  async send(content, o = {}) {
    const data = { content };
    if (o.threadId) data.thread_id = o.threadId;
    if (o.agent) data.agent = o.agent;
    if (o.onBusy) data.on_busy = o.onBusy;
    const ack = await this.request("user_message", data, o);
    const run = this.runFor(ack.run_id, ack.thread_id);
    run.messageId = ack.message_id;
    return run;
  }

  /** Asks for a run to stop; resolves with {run_id, status}. */
  stop(runId) { return this.request("stop_agent", { run_id: runId }); }

  /** Answers a tool approval: decision "approve" or "deny". */
  approve(approvalId, decision = "approve", reason) {
    const data = { approval_id: approvalId, decision };
    if (reason) data.reason = reason;
    return this.request("approve_tool", data);
  }

  /** The user's pending approvals. */
  async approvals() { return (await this.request("list_approvals")).approvals; }
  /** The agents this user may pick: `{agents: [{name, kind, description, provider?, model?, tools}], default}`. */
  async agents() { return this.request("list_agents"); }

  /** A page of the user's threads, newest first: {threads, next_before?}. */
  threads({ limit, before } = {}) {
    const data = {};
    if (limit) data.limit = limit;
    if (before !== undefined) data.before = before;
    return this.request("list_threads", data);
  }

  /** A thread's messages, oldest first, and its runs in progress: {thread_id, messages, runs_in_progress}. */
  history(threadId, { limit, before } = {}) {
    const data = { thread_id: threadId };
    if (limit) data.limit = limit;
    if (before !== undefined) data.before = before;
    return this.request("get_thread_history", data);
  }

  /** A thread's runs, oldest first. */
  async listRuns(threadId) { return (await this.request("list_runs", { thread_id: threadId })).runs; }

  /** Creates a thread: {thread_id, title, created_at, ...}. */
  createThread({ title, agent, onBusy } = {}) {
    const data = {};
    if (title) data.title = title;
    if (agent) data.agent = agent;
    if (onBusy) data.on_busy = onBusy;
    return this.request("create_thread", data);
  }

  /** Renames a thread: {thread_id, title}. Every connection of the user gets a `thread_renamed` event. */
  renameThread(threadId, title) { return this.request("rename_thread", { thread_id: threadId, title }); }

  /** Deletes a thread with its messages and runs: {thread_id}. Refused (`thread_busy`) while a run of it is in
   * progress. Every connection of the user gets a `thread_deleted` event; the thread's events stay in the stream. */
  deleteThread(threadId) { return this.request("delete_thread", { thread_id: threadId }); }
}

function withTimeout(promise, ms, makeError) {
  let timer;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise((_, reject) => { timer = setTimeout(() => reject(makeError()), ms); }),
  ]);
}
