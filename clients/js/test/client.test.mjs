// Tests of the JS client against the real server (tests/e2e/harness.mjs starts the binary), over
// real WebSockets: Node's own (where it has one) and the npm `ws` package. Outages happen as they
// really do: a TCP proxy that drops every connection, SIGTERM and SIGKILL of the server. Every wait
// is on a condition.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import { createRequire } from "node:module";
import { writeFileSync, mkdtempSync, readFileSync } from "node:fs";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { Server, TMP, freePort } from "../../../tests/e2e/harness.mjs";
import { AgentwireClient, AgentwireError } from "../agentwire.js";

const here = dirname(fileURLToPath(import.meta.url));
const WsPackage = createRequire(join(here, "..", "..", "..", "tests", "e2e", "package.json"))("ws");
const IMPLEMENTATIONS = [["Node's WebSocket", globalThis.WebSocket], ["the ws package", WsPackage]].filter(([, w]) => w);
const GATED = ["--set", `agents.process_command=/usr/bin/python3 ${join(here, "gated_agent.py")}`,
  "--set", "agents.default=process"];

async function waitFor(cond, what, timeoutMs = 20000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${typeof what === "function" ? what() : what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

async function devToken(server, user) {
  const r = await fetch(`${server.url}/auth/dev-token?user=${encodeURIComponent(user)}`);
  assert.equal(r.status, 200);
  return (await r.json()).token;
}

async function started(t, server) {
  t.after(() => server.stop("SIGKILL"));
  return server.start();
}

// Forwards TCP to the server; drop() cuts every connection at once, as a network failure does.
class Proxy {
  constructor(targetPort) {
    this.targetPort = targetPort;
    this.sockets = new Set();
    this.accepted = 0;
    this.server = net.createServer((client) => {
      this.accepted += 1;
      const upstream = net.connect(this.targetPort, "127.0.0.1");
      for (const [a, b] of [[client, upstream], [upstream, client]]) {
        this.sockets.add(a);
        a.on("error", () => b.destroy());
        a.on("close", () => { this.sockets.delete(a); b.destroy(); });
        a.pipe(b);
      }
    });
  }

  async start() {
    await new Promise((r) => this.server.listen(0, "127.0.0.1", r));
    this.url = `http://127.0.0.1:${this.server.address().port}`;
    return this;
  }

  drop() { for (const s of this.sockets) s.destroy(); }

  async stop() {
    this.drop();
    await new Promise((r) => this.server.close(r));
  }
}

function client(t, url, token, extra = {}) {
  const c = new AgentwireClient({ url, token, backoffInitialMs: 50, backoffMaxMs: 500, ...extra });
  const seen = [];
  c.on("event", (ev) => seen.push(ev));
  c.seen = seen;
  t.after(() => c.close());
  return c;
}

// Every stream event once, in order, without gaps.
function assertContiguous(events) {
  for (let i = 1; i < events.length; i++) assert.equal(events[i].seq, events[i - 1].seq + 1, "seqs are contiguous");
}

// A gate for gated_agent.py, opened when the test ends whatever happened: an agent left waiting after
// its server was killed exits then.
function gateFile(t) {
  const path = join(mkdtempSync(join(TMP, "aw-gate-")), "open");
  t.after(() => writeFileSync(path, ""));
  return path;
}

// Every test runs over each WebSocket implementation the client may be given.
for (const [implName, WebSocketImpl] of IMPLEMENTATIONS) {
describe(`over ${implName}`, () => {
  const mk = (t, url, token, extra = {}) => client(t, url, token, { WebSocket: WebSocketImpl, ...extra });

  test("golden path: send, stream, done, threads, history, acks", { timeout: 60000 }, async (t) => {
    const server = await started(t, new Server());
    const c = mk(t, server.url, await devToken(server, "alice"), {});
    const states = [];
    c.on("state", (s) => states.push(s));
    await c.connect();
    const run = await c.send("hello world");
    const chunks = [];
    const tools = [];
    run.on("chunk", (delta) => chunks.push(delta));
    run.on("tool", (d, ev) => tools.push(`${ev.type}:${d.tool_name}`));
    const result = await run.done;
    assert.equal(result.status, "completed");
    assert.equal(result.content, "Echo (2 words): hello world");
    assert.equal(chunks.join(""), result.content, "the chunks are the answer");
    assert.deepEqual(tools, ["tool_executing:word_count", "tool_completed:word_count"]);
    assert.deepEqual(run.events.map((e) => e.type).filter((x) => x !== "agent_response_chunk"),
      ["agent_started", "agent_thinking", "tool_executing", "tool_completed", "agent_completed"]);
    assertContiguous(c.seen);
    const { threads } = await c.threads();
    assert.ok(threads.some((th) => th.thread_id === run.threadId && th.title === "hello world"));
    const history = await c.history(run.threadId);
    assert.deepEqual(history.messages.map((m) => [m.role, m.content]),
      [["user", "hello world"], ["agent", result.content]]);
    // The batched acknowledgement reaches the server (a fresh server: this user's events are all there are).
    await waitFor(async () => (await server.metric("agentwire_events_acked_total")) === c.lastSeq, "the server to count the ack");
    assert.deepEqual(states, ["connecting", "live"]);
  });

  test("a connection dropped mid-run: the client reconnects, resumes, and the run arrives whole and once", { timeout: 60000 }, async (t) => {
    const server = await started(t, new Server(GATED));
    const proxy = await new Proxy(server.port).start();
    t.after(() => proxy.stop());
    const c = mk(t, proxy.url, await devToken(server, "bob"));
    await c.connect();
    const gate = gateFile(t);
    const run = await c.send(`gate:${gate}`);
    const chunks = [];
    run.on("chunk", (d) => chunks.push(d));
    await waitFor(() => chunks.length === 1, "the first half of the answer");
    proxy.drop();
    await waitFor(() => c.state === "reconnecting", "the client to notice");
    await waitFor(() => c.state === "live" && proxy.accepted >= 2, "the client to be live again");
    writeFileSync(gate, "");
    const result = await run.done;
    assert.equal(result.status, "completed");
    assert.equal(result.content, "part one, part two");
    assert.equal(chunks.join(""), result.content);
    assert.equal(run.events.filter((e) => e.type === "agent_started").length, 1);
    assertContiguous(c.seen);
  });

  test("a request sent while the connection is down waits for it, then gets its reply", { timeout: 60000 }, async (t) => {
    const server = await started(t, new Server());
    const proxy = await new Proxy(server.port).start();
    t.after(() => proxy.stop());
    const c = mk(t, proxy.url, await devToken(server, "bea"));
    await c.connect();
    proxy.drop();
    await waitFor(() => c.state === "reconnecting", "the client to notice");
    const run = await c.send("sent while reconnecting");
    assert.equal((await run.done).status, "completed");
  });

  for (const signal of ["SIGTERM", "SIGKILL"]) {
    test(`the server restarted (${signal}) mid-run: the run ends as documented, nothing is lost or doubled`, { timeout: 60000 }, async (t) => {
      const port = await freePort();
      const first = await started(t, new Server(GATED, { port }));
      const c = mk(t, first.url, await devToken(first, "carol"));
      await c.connect();
      const gate = gateFile(t);
      const run = await c.send(`gate:${gate}`);
      await waitFor(() => run.text === "part one, ", "the first half of the answer");
      assert.equal(await first.stop(signal), signal === "SIGTERM" ? 0 : null);
      await waitFor(() => c.state === "reconnecting", "the client to notice");
      const second = await started(t, new Server(GATED, { dir: first.dir, port }));
      // A message posted over HTTP while the client may still be reconnecting reaches it either way.
      const token = await devToken(second, "carol");
      const posted = await fetch(`${second.url}/api/threads/${run.threadId}/messages`, {
        method: "POST", headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
        body: JSON.stringify({ content: "no gate" }),
      });
      assert.equal(posted.status, 202);
      const { run_id: postedRun } = await posted.json();
      await waitFor(() => run.result, `the run to end (client ${c.state}, ${c.connects} connects, socket ${c.ws?.readyState}, seen ${c.seen.map((e) => `${e.seq}:${e.type}`).join(" ")})`);
      const result = await run.done;
      if (signal === "SIGTERM") {
        assert.equal(result.status, "stopped");
        assert.equal(result.reason, "shutdown");
      } else {
        assert.equal(result.status, "error");
        assert.equal(result.error.code, "interrupted");
      }
      await waitFor(() => c.run(postedRun).result, `the posted run to end (client ${c.state})`);
      const after = await c.run(postedRun).done;
      assert.equal(after.status, "completed");
      assert.equal(after.content, "part one, part two");
      assertContiguous(c.seen);
      assert.equal(new Set(c.seen.map((e) => e.seq)).size, c.seen.length);
    });
  }

  test("a client started with a stored position gets exactly what came after it", { timeout: 60000 }, async (t) => {
    const server = await started(t, new Server());
    const token = await devToken(server, "dana");
    const storage = new Map();
    const shared = { getItem: (k) => storage.get(k) ?? null, setItem: (k, v) => storage.set(k, v), removeItem: (k) => storage.delete(k) };
    const first = mk(t, server.url, token, { storage: shared });
    await first.connect();
    const run = await first.send("one");
    await run.done;
    const position = first.lastSeq;
    first.close();
    // Two runs while no client is connected.
    for (const content of ["two", "three"]) {
      const r = await fetch(`${server.url}/api/threads/${run.threadId}/messages`, {
        method: "POST", headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
        body: JSON.stringify({ content }),
      });
      assert.equal(r.status, 202);
    }
    const second = mk(t, server.url, token, { storage: shared });
    const completed = [];
    second.on("agent_completed", (d) => completed.push(d.content));
    await second.connect();
    await waitFor(() => completed.length === 2, "both runs from the stream");
    assert.equal(second.seen[0].seq, position + 1, "resumed right after the stored position");
    assert.deepEqual(completed, ["Echo (1 word): two", "Echo (1 word): three"]);
    assertContiguous(second.seen);
  });

  test("a replay that overlaps what the client has seen hands nothing over twice", { timeout: 60000 }, async (t) => {
    const server = await started(t, new Server());
    const c = mk(t, server.url, await devToken(server, "erin"));
    await c.connect();
    await (await c.send("first")).done;
    await (await c.send("second")).done;
    const handed = c.seen.length;
    let replayed = 0;
    let complete = false;
    c.on("frame", (f) => {
      if (f.seq !== undefined) replayed += 1;
      if (f.type === "resume_complete" && f.id === "again") complete = true;
    });
    // The server replays the whole stream again on this live connection.
    assert.ok(c.sendFrame({ type: "resume", id: "again", data: { last_seq: 0, epoch: c.epoch } }));
    await waitFor(() => complete, "the replay");
    assert.equal(replayed, handed, "the server did send everything again");
    assert.equal(c.seen.length, handed, "and the client handed none of it over twice");
  });

  test("a stream the client's position is not in (a new epoch): resync, then live", { timeout: 60000 }, async (t) => {
    const port = await freePort();
    let current = await started(t, new Server([], { port }));
    const first = current;
    // The new server has its own dev secret: the client asks for a token before each connect.
    const c = mk(t, first.url, undefined, { getToken: () => devToken(current, "finn") });
    await c.connect();
    await (await c.send("before")).done;
    const oldEpoch = c.epoch;
    const resyncs = [];
    c.on("resync", (d) => resyncs.push(d));
    await first.stop("SIGTERM");
    // A server with a new database (its history reset) on the same address.
    const second = await started(t, new Server([], { port }));
    current = second;
    await waitFor(() => resyncs.length === 1 && c.state === "live", "the resync");
    assert.notEqual(resyncs[0].epoch, oldEpoch);
    assert.equal(c.epoch, resyncs[0].epoch);
    const run = await c.send("after");
    assert.equal((await run.done).status, "completed");
    assert.equal(second.port, port);
  });

  test("approvals: the run waits for approve() or a denial, and the answer shows in the stream", { timeout: 60000 }, async (t) => {
    const server = await started(t, new Server(["--set", "agents.approval_required_tools=word_count"]));
    const c = mk(t, server.url, await devToken(server, "gus"));
    await c.connect();
    const listed = await c.agents();
    assert.equal(listed.default, "echo");
    assert.deepEqual(listed.agents.find((a) => a.name === "echo").tools, ["word_count"]);
    for (const decision of ["approve", "deny"]) {
      const run = await c.send("count these words");
      const requested = await new Promise((resolve) => run.on("approval", (d, ev) => {
        if (ev.type === "tool_approval_requested") resolve(d);
      }));
      assert.equal(requested.tool_name, "word_count");
      const pending = await c.approvals();
      assert.ok(pending.some((a) => a.approval_id === requested.approval_id));
      const answer = await c.approve(requested.approval_id, decision, decision === "deny" ? "not now" : undefined);
      assert.equal(answer.decision, decision);
      const result = await run.done;
      assert.equal(result.status, "completed");
      const resolved = run.events.find((e) => e.type === "tool_approval_resolved");
      assert.equal(resolved.data.decision, decision === "approve" ? "approved" : "denied");
      const completedTool = run.events.find((e) => e.type === "tool_completed");
      if (decision === "approve") assert.deepEqual(completedTool.data.result, { words: 3 });
      else assert.equal(completedTool.data.approval, "denied");
      // A second answer to the same approval is refused with the documented code.
      await assert.rejects(c.approve(requested.approval_id, "approve"),
        (e) => e instanceof AgentwireError && e.code === "approval_resolved");
    }
  });

  test("stop(): the run ends stopped (requested)", { timeout: 60000 }, async (t) => {
    const server = await started(t, new Server(GATED));
    const c = mk(t, server.url, await devToken(server, "hana"));
    await c.connect();
    const run = await c.send(`gate:${gateFile(t)}`);
    await waitFor(() => run.text === "part one, ", "the run to be streaming");
    const reply = await c.stop(run.runId);
    assert.equal(reply.status, "stopping");
    const result = await run.done;
    assert.equal(result.status, "stopped");
    assert.equal(result.reason, "requested");
  });

  test("renameThread and deleteThread: another client of the user sees both; a thread with a run is not deleted", { timeout: 60000 }, async (t) => {
    const server = await started(t, new Server(GATED));
    const token = await devToken(server, "ines");
    const c = mk(t, server.url, token);
    const other = mk(t, server.url, token);
    const changes = [];
    other.on("thread_renamed", (d, ev) => changes.push(["renamed", ev.thread_id, d.title]));
    other.on("thread_deleted", (d, ev) => changes.push(["deleted", ev.thread_id]));
    await c.connect();
    await other.connect();
    const run = await c.send(`gate:${gateFile(t)}`);
    await waitFor(() => run.text === "part one, ", "the run to be streaming");
    assert.deepEqual(await c.renameThread(run.threadId, "Renamed"), { thread_id: run.threadId, title: "Renamed" });
    await assert.rejects(c.deleteThread(run.threadId), (e) => e instanceof AgentwireError && e.code === "thread_busy");
    await c.stop(run.runId);
    await run.done;
    assert.deepEqual(await c.deleteThread(run.threadId), { thread_id: run.threadId });
    await waitFor(() => changes.length === 2, () => `both changes on the other client: ${JSON.stringify(changes)}`);
    assert.deepEqual(changes, [["renamed", run.threadId, "Renamed"], ["deleted", run.threadId]]);
    assert.deepEqual((await c.threads()).threads, []);
    await assert.rejects(c.history(run.threadId), (e) => e.code === "thread_not_found");
  });

  test("run(id) of a run that ended before this client saw it settles from the server; close() settles the rest", { timeout: 60000 }, async (t) => {
    const server = await started(t, new Server(GATED));
    const token = await devToken(server, "kit");
    const first = mk(t, server.url, token);
    await first.connect();
    const ended = await first.send("no gate");
    assert.equal((await ended.done).status, "completed");
    // A second client starts at the stream's head: it never sees that run's events.
    const second = mk(t, server.url, token);
    await second.connect();
    const looked = await second.run(ended.runId).done;
    assert.equal(looked.status, "completed");
    assert.equal(looked.fromServer, true);
    // A run still going when the client closes: its done settles as unknown instead of never.
    const open = await second.send(`gate:${gateFile(t)}`);
    await waitFor(() => open.text === "part one, ", "the run to stream");
    second.close();
    const result = await open.done;
    assert.equal(result.status, "unknown");
    assert.equal(result.error.code, "closed");
  });

  test("close codes: a refused token and the connection limit end the client without retries", { timeout: 60000 }, async (t) => {
    const server = await started(t, new Server(["--set", "ws.max_connections_per_user=1"]));
    const bad = mk(t, server.url, "not.a.token");
    await assert.rejects(bad.connect(), (e) => e.closeCode === 1008);
    assert.equal(bad.state, "closed");
    assert.equal(bad.connects, 1);
    assert.equal(bad.reconnectTimer, null);

    const token = await devToken(server, "ivan");
    const first = mk(t, server.url, token);
    await first.connect();
    const second = mk(t, server.url, token);
    await assert.rejects(second.connect(), (e) => e.closeCode === 4002);
    assert.equal(second.connects, 1);
    assert.equal(second.reconnectTimer, null);
    assert.equal(first.state, "live", "the first connection is unaffected");
  });

  test("errors: a server error rejects with its code; a request without a reply times out", { timeout: 60000 }, async (t) => {
    const server = await started(t, new Server());
    const c = mk(t, server.url, await devToken(server, "jo"));
    await c.connect();
    await assert.rejects(c.history("no-such-thread"), (e) => e instanceof AgentwireError && e.code === "thread_not_found");
    await assert.rejects(c.send("x", { agent: "nobody" }), (e) => e.code === "unknown_agent");
    // ack_events has no reply by design: the request times out on the client's clock.
    await assert.rejects(c.request("ack_events", { seq: 0 }, { timeoutMs: 100 }), (e) => e.code === "timeout");
    c.close();
    await assert.rejects(c.threads(), (e) => e.code === "closed");
  });
});
}

test("the server serves this client as /web/agentwire.js (the chat page imports it from there)", async (t) => {
  const server = await started(t, new Server());
  const r = await fetch(`${server.url}/web/agentwire.js`);
  assert.equal(r.status, 200);
  assert.match(r.headers.get("content-type"), /^text\/javascript/);
  assert.equal(await r.text(), readFileSync(join(here, "..", "agentwire.js"), "utf8"));
});
