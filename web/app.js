// The agentwire chat page. Plain ES module, no build step.
//
// Delivery (resume from the last seq seen, dedupe, acks, reconnects, resync) is the JS client's
// (clients/js/agentwire.js, served as /web/agentwire.js): the page is its first user. The page
// renders what the client hands over: every event once, in seq order.

import { AgentwireClient } from "./agentwire.js";
import { marked } from "./vendor-marked.js";
import DOMPurify from "./vendor-purify.js";

const $ = (id) => document.getElementById(id);
const EVENT_TYPES = new Set(["agent_started", "agent_thinking", "tool_executing", "tool_completed",
  "tool_approval_requested", "tool_approval_resolved", "agent_response_chunk", "agent_completed", "agent_error",
  "agent_stopped"]);

const state = {
  token: null,
  user: null,
  client: null,
  threads: new Map(),     // thread_id -> {thread_id, title, created_at, activity}
  items: new Map(),       // thread_id -> [item]; item = {kind: "message"|"run", ...}
  runs: new Map(),        // run_id -> run item
  current: null,          // thread_id shown, null = a new conversation
  agents: [],             // [{name, kind, description, ...}] the user may pick (list_agents)
  defaultAgent: null,
};

// ---- persistence (the stream position is the client's; the page keeps the thread shown) ----

const currentKey = () => `agentwire:${state.user}:current`;
function saveCurrent() {
  localStorage.setItem(currentKey(), JSON.stringify(state.current));
}
function loadCurrent() {
  try { return JSON.parse(localStorage.getItem(currentKey())); } catch { return null; }
}

// ---- connection --------------------------------------------------------------------------

const CONN_STATES = { idle: "offline", connecting: "connecting", live: "live", reconnecting: "reconnecting", closed: "offline" };

function setConn(s) {
  const el = $("conn-state");
  el.dataset.state = s;
  el.textContent = s;
}

function connect() {
  const client = new AgentwireClient({ url: location.origin, token: state.token, storageKey: `agentwire:${state.user}` });
  state.client = client;
  client.on("state", (s) => {
    if (state.client !== client) return;
    setConn(s === "reconnecting" && navigator.onLine === false ? "offline" : CONN_STATES[s]);
  });
  client.on("closed", ({ code, reason }) => {
    if (state.client !== client) return;
    // Too many connections of this user (4002): say so and stay signed in (reload once a tab is closed).
    if (code === 4002) return showNotice("This user has too many open connections: close a tab, then reload.");
    // The token was refused (1008): signing in again is the only way out.
    signOut(`The server refused the connection: ${reason || code}`);
  });
  client.on("live", () => { if (state.client === client) goneLive(); });
  client.on("resync", () => { if (state.client === client) onResync(); });
  client.on("event", (ev) => { if (state.client === client) onStreamEvent(ev); });
  client.connect().catch(() => { /* "closed" said why */ });
}

function request(type, data = {}) {
  if (!state.client) return Promise.reject(new Error("not connected"));
  return state.client.request(type, data);
}

async function goneLive() {
  await loadAgents();
  await refreshThreads();
  await loadApprovals();
  if (state.current) await loadHistory(state.current);
}

// The agents a new conversation may start with: a picker when there is more than one.
async function loadAgents() {
  try {
    const r = await request("list_agents");
    state.agents = r.agents;
    state.defaultAgent = r.default;
    const picker = $("agent-picker");
    const chosen = picker.value || r.default;
    picker.replaceChildren(...r.agents.map((a) => el("option", { value: a.name, title: a.description || "" },
      a.description ? `${a.name}: ${a.description}` : a.name)));
    picker.value = r.agents.some((a) => a.name === chosen) ? chosen : r.default;
    renderThread();
  } catch { /* the server's default agent answers meanwhile */ }
}

// Approvals waiting for this user, whatever device's run asked (a page that was away finds them).
async function loadApprovals() {
  try {
    for (const a of await state.client.approvals()) {
      const run = runFor(a.thread_id, a.run_id);
      if (!run.approvals.has(a.approval_id)) run.approvals.set(a.approval_id, { ...a, status: "pending" });
      if (run.status === "running") run.status = "awaiting_approval";
    }
    if (state.current) renderThread();
  } catch { /* shown on the next reconnect */ }
}

async function onResync() {
  // Our position is no longer in the stream: reload what matters over HTTP and continue live.
  $("resync-notice").hidden = false;
  // Runs seen in progress may have ended in the events that were skipped: the history has the truth.
  for (const [id, run] of state.runs) {
    if (run.status === "running" || run.status === "awaiting_approval") {
      state.runs.delete(id);
      const items = state.items.get(run.thread_id);
      if (items) state.items.set(run.thread_id, items.filter((it) => it !== run));
    }
  }
  await refreshThreads();
  if (state.current) await loadHistoryHttp(state.current);
}

// ---- stream events -----------------------------------------------------------------------

function onStreamEvent(ev) {
  // Thread changes made on any device of this user.
  if (ev.type === "thread_renamed") {
    const t = state.threads.get(ev.thread_id);
    if (t) { t.title = ev.data.title; renderThreads(); if (ev.thread_id === state.current) renderThread(); }
    return;
  }
  if (ev.type === "thread_deleted") { forgetThread(ev.thread_id); return; }
  if (!EVENT_TYPES.has(ev.type)) return;
  const run = runFor(ev.thread_id, ev.run_id);
  applyEvent(run, ev);
  if (ev.thread_id === state.current) renderThread();
  else markActivity(ev.thread_id);
}

function runFor(threadId, runId) {
  let run = state.runs.get(runId);
  if (!run) {
    run = { kind: "run", run_id: runId, thread_id: threadId, events: [], text: "", status: "running",
      approvals: new Map() };
    state.runs.set(runId, run);
    itemsOf(threadId).push(run);
  }
  return run;
}

function applyEvent(run, ev) {
  const d = ev.data || {};
  run.events.push({ type: ev.type, seq: ev.seq, data: d });
  switch (ev.type) {
    case "agent_started": run.agent = d.agent_name; run.started = ev.ts; break;
    case "agent_response_chunk":
      // Chunks the thread's history already summed up (partial_answer, up to from_seq) are not added twice.
      if (!(run.fromSeq && ev.seq < run.fromSeq)) run.text += d.delta || "";
      break;
    case "tool_approval_requested":
      run.approvals.set(d.approval_id, { ...d, status: "pending" });
      run.status = "awaiting_approval";
      break;
    case "tool_approval_resolved": {
      const a = run.approvals.get(d.approval_id) || { ...d };
      Object.assign(a, { status: d.decision, by: d.by, reason: d.reason });
      run.approvals.set(d.approval_id, a);
      if (run.status === "awaiting_approval") run.status = "running";
      break;
    }
    case "agent_completed":
      run.status = "completed"; run.text = d.content ?? run.text; run.time_ms = d.execution_time_ms;
      run.message_id = d.message_id; run.finishReason = d.finish_reason; break;
    case "agent_error":
      // interrupted: the server stopped while the run was in flight (send the message again).
      run.status = d.code === "interrupted" ? "interrupted" : "error";
      run.error = `${d.code}: ${d.message}`;
      break;
    case "agent_stopped": run.status = "stopped"; run.stopReason = d.reason; break;
  }
}

function itemsOf(threadId) {
  if (!state.items.has(threadId)) state.items.set(threadId, []);
  return state.items.get(threadId);
}

// ---- threads and history -----------------------------------------------------------------

async function refreshThreads() {
  try {
    const r = await request("list_threads");
    const listed = new Set(r.threads.map((t) => t.thread_id));
    // A thread gone from a complete list was deleted (from another device, while this page was away).
    if (!r.next_before) for (const id of [...state.threads.keys()]) if (!listed.has(id)) forgetThread(id);
    for (const t of r.threads) state.threads.set(t.thread_id, { ...state.threads.get(t.thread_id), ...t });
    renderThreads();
  } catch { /* reconnect will retry */ }
}

// A run in progress when the history was read: its answer so far is the history's partial_answer
// (every chunk before from_seq) followed by the chunks this page got from from_seq on. A page that
// was reloaded mid-run shows the answer whole and once, not only the chunks after its position.
function seedRun(threadId, p) {
  const run = runFor(threadId, p.run_id);
  run.fromSeq = p.from_seq;
  const later = run.events.filter((e) => e.type === "agent_response_chunk" && e.seq >= p.from_seq);
  run.text = (p.partial_answer || "") + later.map((e) => e.data.delta || "").join("");
  if (!run.events.length) run.status = p.status === "awaiting_approval" ? "awaiting_approval" : "running";
}

function mergeHistory(threadId, messages, inProgress = []) {
  for (const p of inProgress) seedRun(threadId, p);
  // History is the durable truth for messages; runs we watched live keep their progress details.
  const items = [];
  const seenRuns = new Set();
  for (const m of messages) {
    if (m.role !== "user" && m.run_id && state.runs.has(m.run_id)) {
      items.push(state.runs.get(m.run_id));
      seenRuns.add(m.run_id);
    } else {
      items.push({ kind: "message", role: m.role, content: m.content, message_id: m.message_id, run_id: m.run_id });
    }
  }
  for (const it of itemsOf(threadId)) {
    if (it.kind === "run" && !seenRuns.has(it.run_id)) items.push(it);  // still running, or ended without an answer
  }
  state.items.set(threadId, items);
}

async function loadHistory(threadId) {
  try {
    const r = await request("get_thread_history", { thread_id: threadId, limit: 200 });
    mergeHistory(threadId, r.messages, r.runs_in_progress);
    if (threadId === state.current) renderThread();
  } catch { /* shown on the next reconnect */ }
}

async function loadHistoryHttp(threadId) {
  const r = await fetch(`/api/threads/${encodeURIComponent(threadId)}/messages?limit=200`,
    { headers: { Authorization: `Bearer ${state.token}` } });
  if (!r.ok) return;
  const body = await r.json();
  mergeHistory(threadId, body.messages, body.runs_in_progress);
  if (threadId === state.current) renderThread();
}

function selectThread(threadId) {
  $("resync-notice").hidden = true;
  $("rename-form").hidden = true;
  state.current = threadId;
  saveCurrent();
  const t = threadId && state.threads.get(threadId);
  if (t) t.activity = false;
  renderThreads();
  renderThread();
  if (threadId) loadHistory(threadId);
  $("input").focus();
}

function forgetThread(threadId) {
  if (!state.threads.has(threadId) && !state.items.has(threadId)) return;
  state.threads.delete(threadId);
  state.items.delete(threadId);
  for (const [id, run] of state.runs) if (run.thread_id === threadId) state.runs.delete(id);
  if (state.current === threadId) selectThread(null);
  else renderThreads();
}

// ---- rename and delete (the header's buttons) ------------------------------------------------

function startRename() {
  const t = state.current && state.threads.get(state.current);
  if (!t) return;
  $("rename-input").value = t.title || "";
  showRenameForm(true);
  $("rename-input").select();
}

function showRenameForm(on) {
  $("rename-form").hidden = !on;
  $("thread-title").hidden = on;
  $("rename-thread").hidden = on || !state.current;
  $("delete-thread").hidden = on || !state.current;
}

async function saveRename() {
  const threadId = state.current;
  const title = $("rename-input").value.trim();
  if (!threadId || !title) return;
  try {
    const r = await state.client.renameThread(threadId, title);
    const t = state.threads.get(threadId);
    if (t) t.title = r.title;
    showRenameForm(false);
    renderThreads();
    renderThread();
    $("rename-thread").focus();
  } catch (err) {
    showNotice(`Not renamed: ${err.message}`);
  }
}

async function deleteCurrent() {
  const threadId = state.current;
  const t = threadId && state.threads.get(threadId);
  if (!t || !confirm(`Delete "${t.title || "(untitled)"}" and its messages?`)) return;
  try {
    await state.client.deleteThread(threadId);
    forgetThread(threadId);
  } catch (err) {
    showNotice(err.code === "thread_busy" ? "A run of this thread is in progress: stop it, then delete the thread."
      : `Not deleted: ${err.message}`);
  }
}

function markActivity(threadId) {
  const t = state.threads.get(threadId);
  if (t) t.activity = true;
  else {
    // A thread started on another device: shown at once, its title fetched with the list.
    state.threads.set(threadId, { thread_id: threadId, title: "New thread", activity: true });
    refreshThreads();
  }
  renderThreads();
}

// ---- sending -----------------------------------------------------------------------------

async function sendMessage(text) {
  const data = { content: text };
  if (state.current) data.thread_id = state.current;
  // A new conversation: its thread keeps the agent picked for it.
  else if (state.agents.length > 1) data.agent = $("agent-picker").value;
  const local = { kind: "message", role: "user", content: text, pending: true };
  const threadBefore = state.current;
  if (threadBefore) { itemsOf(threadBefore).push(local); renderThread(); }
  try {
    const ack = await request("user_message", data);
    local.pending = false;
    local.message_id = ack.message_id;
    if (!threadBefore) {
      // The server created the thread: it becomes the current one.
      state.threads.set(ack.thread_id, { thread_id: ack.thread_id, title: text.slice(0, 60), agent: data.agent });
      const items = itemsOf(ack.thread_id);
      // Events of the run may already have arrived: keep the user's message first.
      items.unshift(local);
      selectThread(ack.thread_id);
    } else {
      renderThread();
    }
  } catch (e) {
    local.pending = false;
    local.error = e.code && e.code !== "disconnected" ? `${e.code}: ${e.message}` : "not sent: the connection is down";
    if (!threadBefore) { showNotice(local.error); } else renderThread();
  }
}

// ---- rendering ---------------------------------------------------------------------------

// Answers are Markdown (marked, vendored from npm; web/THIRD_PARTY.md). An agent's answer is not
// trusted: raw HTML in it is shown as text, and the HTML marked makes is sanitized by DOMPurify
// (no scripts, no event handlers, no javascript: links) before it reaches the page.
const escapeHtml = (t) => t.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
marked.use({ gfm: true, breaks: true, renderer: { html: ({ text }) => escapeHtml(text) } });
DOMPurify.addHook("afterSanitizeAttributes", (node) => {
  if (node.tagName === "A" && node.getAttribute("href")) {
    node.setAttribute("target", "_blank");
    node.setAttribute("rel", "noopener noreferrer");
  }
});

function markdown(text) {
  const box = el("div", { class: "markdown" });
  box.innerHTML = DOMPurify.sanitize(marked.parse(text || "").trim(), { USE_PROFILES: { html: true } });
  for (const pre of box.querySelectorAll("pre")) {
    const copy = el("button", { type: "button", class: "copy", "aria-label": "Copy code" }, "Copy");
    copy.onclick = async () => {
      try {
        await navigator.clipboard.writeText(pre.querySelector("code")?.textContent ?? pre.textContent);
        copy.textContent = "Copied";
      } catch { copy.textContent = "Cannot copy"; }
    };
    pre.prepend(copy);
  }
  return box;
}

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "dataset") Object.assign(e.dataset, v);
    else if (v !== undefined && v !== null) e.setAttribute(k, v);
  }
  for (const c of children) if (c !== null && c !== undefined) e.append(c);
  return e;
}

function renderThreads() {
  const list = $("thread-list");
  list.replaceChildren();
  const threads = [...state.threads.values()].sort((a, b) => (b.created_at || 0) - (a.created_at || 0));
  for (const t of threads) {
    const b = el("button", { type: "button", "aria-current": String(t.thread_id === state.current), dataset: { threadId: t.thread_id } },
      t.title || "(untitled)", t.activity ? el("span", { class: "activity", "aria-label": "new activity" }, "●") : null);
    b.onclick = () => selectThread(t.thread_id);
    list.append(el("li", {}, b));
  }
}

function describe(ev) {
  const d = ev.data;
  switch (ev.type) {
    case "agent_started": return `started (${d.agent_name})`;
    case "agent_thinking": return `thinking: ${d.reasoning ?? ""}`;
    case "tool_executing": return el("span", { class: "tool" }, `tool ${d.tool_name}(${JSON.stringify(d.args)})`);
    case "tool_completed": return el("span", { class: "tool" }, `tool ${d.tool_name} → ${JSON.stringify(d.result)} (${d.duration_ms} ms)`);
    case "agent_response_chunk": return d.delta;
    case "agent_completed": return `completed in ${Number(d.execution_time_ms).toFixed(1)} ms` +
      (d.usage ? ` · ${d.usage.input_tokens} tokens in, ${d.usage.output_tokens} out` : "");
    case "agent_error": return `error ${d.code}: ${d.message}`;
    case "agent_stopped": return `stopped (${d.reason})`;
    case "tool_approval_requested": return el("span", { class: "tool" }, `approval asked: ${d.tool_name}(${JSON.stringify(d.args)})`);
    case "tool_approval_resolved": return `approval ${d.decision} (${d.by})`;
  }
  return ev.type;
}

function timeLeft(expiresAt) {
  const s = Math.max(0, Math.round((expiresAt - Date.now()) / 1000));
  return s >= 60 ? `${Math.floor(s / 60)} min ${s % 60} s left` : `${s} s left`;
}

function renderApproval(run, a) {
  const card = el("section", { class: "approval", dataset: { approvalId: a.approval_id, state: a.status },
    "aria-label": `Approval for ${a.tool_name}` },
    el("div", { class: "approval-head" }, `The agent wants to run `, el("code", {}, a.tool_name)),
    el("pre", { class: "approval-args" }, JSON.stringify(a.args, null, 2)));
  if (a.status === "pending") {
    const time = el("span", { class: "approval-time", dataset: { expires: String(a.expires_at || "") } },
      a.expires_at ? timeLeft(a.expires_at) : "");
    const answer = (decision) => async () => {
      card.querySelectorAll("button").forEach((b) => { b.disabled = true; });
      try {
        await state.client.approve(a.approval_id, decision);
      } catch (e) {
        a.error = `${e.code}: ${e.message}`;
        renderThread();
      }
    };
    const approve = el("button", { type: "button", class: "approve" }, "Approve");
    const deny = el("button", { type: "button", class: "deny" }, "Deny");
    approve.onclick = answer("approve");
    deny.onclick = answer("deny");
    card.append(el("div", { class: "approval-actions" }, approve, deny, time));
  } else {
    card.append(el("div", { class: "approval-outcome", dataset: { decision: a.status } },
      `${a.status}${a.by ? ` by ${a.by}` : ""}${a.reason ? `: ${a.reason}` : ""}`));
  }
  if (a.error) card.append(el("div", { class: "error", role: "alert" }, a.error));
  return card;
}

function renderRun(run) {
  const events = el("ol", { class: "run-events", "aria-label": "run progress" });
  for (const ev of run.events) {
    events.append(el("li", { dataset: { event: ev.type, seq: String(ev.seq) } }, describe(ev)));
  }
  const took = run.time_ms === undefined ? "" : run.time_ms < 1000 ? `${run.time_ms.toFixed(1)} ms`
    : `${(run.time_ms / 1000).toFixed(2)} s`;
  const statusText = run.status === "completed" && took ? `completed in ${took}`
    : run.status === "stopped" && run.stopReason ? `stopped (${run.stopReason})`
      : run.status === "awaiting_approval" ? "waiting for your approval" : run.status;
  const active = run.status === "running" || run.status === "awaiting_approval";
  let stop = null;
  if (active) {
    stop = el("button", { type: "button", class: "stop", "aria-label": "Stop this run" }, "Stop");
    stop.onclick = async () => {
      stop.disabled = true;
      try { await state.client.stop(run.run_id); } catch (e) { run.error = `${e.code}: ${e.message}`; renderThread(); }
    };
  }
  return el("article", { class: "run", dataset: { runId: run.run_id, status: run.status }, "aria-busy": String(active) },
    el("div", { class: "run-head" }, el("span", {}, run.agent || "agent"),
      el("span", { class: "run-status", dataset: { status: run.status } }, statusText), stop),
    events,
    ...[...run.approvals.values()].map((a) => renderApproval(run, a)),
    el("div", { class: "run-answer", "aria-live": active ? "polite" : "off" }, markdown(run.text)),
    // finish_reason "length": the model hit its token limit mid-answer; say so rather than pass it off as whole.
    run.finishReason === "length" ? el("div", { class: "run-note", role: "note" },
      "The model stopped at its token limit: this answer is incomplete.") : null,
    run.finishReason === "content_filter" ? el("div", { class: "run-note", role: "note" },
      "The model's provider filtered this answer.") : null,
    run.error ? el("div", { class: "run-error", role: "alert" }, run.error) : null);
}

function renderThread() {
  const box = $("messages");
  const atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 40;
  box.replaceChildren();
  const t = state.current && state.threads.get(state.current);
  $("thread-title").textContent = t ? (t.title || "(untitled)") : "New conversation";
  $("agent-picker-label").hidden = Boolean(state.current) || state.agents.length < 2;
  const agent = t && (t.agent || (state.agents.length > 1 ? state.defaultAgent : null));
  $("thread-agent").hidden = !agent;
  $("thread-agent").textContent = agent ? `with ${agent}` : "";
  if ($("rename-form").hidden) showRenameForm(false);
  for (const it of state.current ? itemsOf(state.current) : []) {
    if (it.kind === "run") box.append(renderRun(it));
    else {
      // A person's message is shown as typed; an agent's answer as Markdown.
      const body = it.role === "user" ? it.content : markdown(it.content);
      box.append(el("div", { class: `msg ${it.role}${it.pending ? " pending" : ""}`, dataset: { role: it.role } }, body));
      if (it.error) box.append(el("div", { class: "error", role: "alert" }, it.error));
    }
  }
  if (atBottom) box.scrollTop = box.scrollHeight;
}

function showNotice(text) {
  const box = $("messages");
  box.append(el("div", { class: "error", role: "alert" }, text));
}

// ---- health banner -----------------------------------------------------------------------

async function pollHealth() {
  try {
    const r = await fetch("/health", { cache: "no-store" });
    const body = await r.json();
    const degraded = (body.components || []).filter((c) => c.state !== "healthy");
    const banner = $("degraded-banner");
    if (degraded.length) {
      banner.textContent = "Some server components are degraded (chat still works): " +
        degraded.map((c) => `${c.name} (${c.state}${c.reason ? `: ${c.reason}` : ""})`).join("; ");
      banner.hidden = false;
    } else {
      banner.hidden = true;
    }
  } catch { /* the connection state already says the server is unreachable */ }
}

// ---- sign in -----------------------------------------------------------------------------

function userFromToken(token) {
  try {
    const payload = JSON.parse(atob(token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/")));
    return payload.sub;
  } catch { return null; }
}

function signIn(token, user) {
  state.token = token;
  state.user = user;
  sessionStorage.setItem("agentwire:session", JSON.stringify({ token, user }));
  $("who").textContent = user;
  $("sign-out").hidden = false;
  $("signin").hidden = true;
  $("chat").hidden = false;
  state.current = loadCurrent();
  renderThreads();
  renderThread();
  connect();
  $("input").focus();
}

function signOut(message) {
  sessionStorage.removeItem("agentwire:session");
  const client = state.client;
  Object.assign(state, { token: null, user: null, client: null, current: null });
  state.threads.clear(); state.items.clear(); state.runs.clear();
  if (client) client.close();
  setConn("offline");
  $("who").textContent = "";
  $("sign-out").hidden = true;
  $("chat").hidden = true;
  $("signin").hidden = false;
  const err = $("signin-error");
  err.hidden = !message;
  err.textContent = message || "";
}

async function devSignIn(name) {
  const r = await fetch(`/auth/dev-token?user=${encodeURIComponent(name)}`);
  const body = await r.json();
  if (!r.ok) throw new Error(body.error ? body.error.message : `HTTP ${r.status}`);
  signIn(body.token, body.user_id);
}

function init() {
  $("signin-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    try { await devSignIn($("username").value.trim()); } catch (err) {
      const box = $("signin-error");
      box.textContent = `Cannot sign in: ${err.message}. Outside development mode, use a token.`;
      box.hidden = false;
    }
  });
  $("token-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const token = $("token").value.trim();
    const user = userFromToken(token);
    if (!user) { $("signin-error").textContent = "That is not a JWT with a sub claim."; $("signin-error").hidden = false; return; }
    signIn(token, user);
  });
  $("sign-out").addEventListener("click", () => signOut());
  $("new-thread").addEventListener("click", () => selectThread(null));
  $("rename-thread").addEventListener("click", startRename);
  $("delete-thread").addEventListener("click", deleteCurrent);
  $("rename-form").addEventListener("submit", (e) => { e.preventDefault(); saveRename(); });
  $("rename-cancel").addEventListener("click", () => { showRenameForm(false); $("rename-thread").focus(); });
  $("rename-input").addEventListener("keydown", (e) => {
    if (e.key === "Escape") { showRenameForm(false); $("rename-thread").focus(); }
  });
  const input = $("input");
  $("composer").addEventListener("submit", (e) => {
    e.preventDefault();
    const text = input.value.trim();
    if (!text) return;
    input.value = "";
    sendMessage(text);
  });
  input.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      $("composer").requestSubmit();
    }
  });
  window.addEventListener("online", () => state.client?.reconnectNow());
  window.addEventListener("offline", () => { if (state.client && state.client.state !== "live") setConn("offline"); });
  pollHealth();
  setInterval(pollHealth, 5000);
  // An approval's time left counts down between events.
  setInterval(() => {
    for (const t of document.querySelectorAll(".approval-time[data-expires]")) {
      if (t.dataset.expires) t.textContent = timeLeft(Number(t.dataset.expires));
    }
  }, 1000);
  const session = JSON.parse(sessionStorage.getItem("agentwire:session") || "null");
  if (session && session.token) signIn(session.token, session.user);
}

init();
