// The chat page in Debian's Chromium against the real binary: node --test tests/e2e/
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { mkdtempSync, writeFileSync } from "node:fs";
import { Server, launchBrowser, signIn, runEvents, ARTIFACTS, TMP, freePort } from "./harness.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const cleanups = [];
after(async () => { for (const c of cleanups.reverse()) await c(); });

async function started(server) {
  await server.start();
  cleanups.push(() => server.stop());
  return server;
}
async function browser(options) {
  const b = await launchBrowser(options);
  cleanups.push(() => b.close());
  return b;
}

const FIVE = ["agent_started", "agent_thinking", "tool_executing", "tool_completed", "agent_completed"];

test("sign in, send a message, see the five events and the streamed answer in order; reload shows history", async () => {
  const server = await started(new Server());
  const ctx = await browser();
  const page = ctx.pages()[0] || await ctx.newPage();
  await signIn(page, server, "alice");
  const input = page.getByLabel("Message");
  await input.fill("hello browser");
  await input.press("Enter");
  const run = page.locator("article.run");
  await run.locator(".run-status[data-status=completed]").waitFor();
  const events = await runEvents(run);
  // The five lifecycle events, in order, with the answer's chunks between tool_completed and agent_completed.
  assert.deepEqual(events.filter((e) => e !== "agent_response_chunk"), FIVE);
  const firstChunk = events.indexOf("agent_response_chunk");
  assert.ok(firstChunk > events.indexOf("tool_completed") && firstChunk < events.indexOf("agent_completed"), events.join());
  const answer = await run.locator(".run-answer").textContent();
  assert.ok(answer.length > 0);
  const chunks = await run.locator(".run-events li[data-event=agent_response_chunk]").allTextContents();
  assert.equal(chunks.join(""), answer, "the streamed chunks make up the answer");
  // seqs rendered strictly increasing: nothing twice, nothing out of order
  const seqs = await run.locator(".run-events li").evaluateAll((lis) => lis.map((li) => Number(li.dataset.seq)));
  assert.deepEqual(seqs, [...seqs].sort((a, b) => a - b));
  assert.equal(new Set(seqs).size, seqs.length);
  assert.match(await run.locator(".run-status").textContent(), /^completed in \d+\.\d+ m?s$/);
  assert.equal(await page.locator("#signin").isVisible(), false, "the sign-in form is gone once signed in");
  assert.equal(await page.locator("#chat").isVisible(), true);
  assert.equal(await page.locator("#agent-picker").isVisible(), false, "one agent: nothing to pick");
  await page.locator("#thread-list button").first().waitFor();
  // The page acknowledges what it rendered: every appended event ends up acked.
  const metric = (name) => server.metric(name);
  for (let i = 0; i < 50 && (await metric("agentwire_events_acked_total")) < seqs.length; i++) await page.waitForTimeout(50);
  assert.equal(await metric("agentwire_events_acked_total"), await metric("agentwire_events_appended_total"));
  await page.screenshot({ path: join(ARTIFACTS, "chat.png"), fullPage: true });

  await page.reload();
  await page.locator("#conn-state[data-state=live]").waitFor();
  await page.locator(".msg.user", { hasText: "hello browser" }).waitFor();
  // After a reload the run's answer comes from the thread's history.
  await page.locator(`text=${answer}`).first().waitFor();
  assert.equal(await page.locator("#thread-list button").count(), 1);
});

test("Enter sends, Shift+Enter is a new line, and the page fits a phone", async () => {
  const server = await started(new Server());
  const ctx = await browser({ viewport: { width: 375, height: 740 } });
  const page = ctx.pages()[0] || await ctx.newPage();
  await signIn(page, server, "phone_user");
  const input = page.getByLabel("Message");
  await input.fill("line one");
  await input.press("Shift+Enter");
  await input.type("line two");
  assert.equal(await input.inputValue(), "line one\nline two", "Shift+Enter must not send");
  assert.equal(await page.locator(".msg.user").count(), 0);
  await input.press("Enter");
  await page.locator("article.run .run-status[data-status=completed]").waitFor();
  assert.equal(await page.locator(".msg.user").first().textContent(), "line one\nline two");
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  assert.ok(overflow <= 0, `horizontal overflow of ${overflow}px on a phone viewport`);
  // Every control is reachable by its accessible name.
  for (const name of ["Send", "New thread", "Sign out", "Rename", "Delete"]) await page.getByRole("button", { name }).waitFor();
  // The keyboard alone: Tab from the message box reaches Send; Enter on a focused Rename opens the title field.
  await page.getByRole("button", { name: "Rename" }).focus();
  await page.keyboard.press("Enter");
  assert.equal(await page.evaluate(() => document.activeElement.id), "rename-input");
  await page.keyboard.press("Escape");
  assert.equal(await page.evaluate(() => document.activeElement.id), "rename-thread");
  await page.screenshot({ path: join(ARTIFACTS, "chat-phone.png"), fullPage: true });
});

test("stopping the server mid-run: the page shows reconnecting, then the rest of the run arrives once", async () => {
  const port = await freePort();
  const agent = `agents.process_command=/usr/bin/python3 ${join(here, "slow_agent.py")}`;
  const args = ["--set", agent, "--set", "agents.default=process"];
  const first = new Server(args, { port });
  await started(first);
  const ctx = await browser();
  const page = ctx.pages()[0] || await ctx.newPage();
  await signIn(page, first, "carol");
  const input = page.getByLabel("Message");
  await input.fill("take your time");
  await input.press("Enter");
  const run = page.locator("article.run");
  await run.locator(".run-events li[data-event=agent_thinking]").waitFor();
  // SIGTERM: connections get 1012, the run is ended with agent_stopped in the user's stream.
  assert.equal(await first.stop("SIGTERM"), 0);
  await page.locator("#conn-state[data-state=reconnecting]").waitFor({ timeout: 5000 });
  const second = new Server(args, { dir: first.dir, port });
  await started(second);
  await page.locator("#conn-state[data-state=live]").waitFor({ timeout: 20000 });
  await run.locator(".run-status[data-status=stopped]").waitFor({ timeout: 10000 });
  const events = await runEvents(run);
  assert.deepEqual(events, ["agent_started", "agent_thinking", "agent_stopped"], "each event exactly once, in order");
  // A second reconnect (reload) must not show anything twice either.
  await page.reload();
  await page.locator("#conn-state[data-state=live]").waitFor();
  await page.waitForTimeout(500);
  const seqs = await page.locator(".run-events li").evaluateAll((lis) => lis.map((li) => li.dataset.seq));
  assert.equal(new Set(seqs).size, seqs.length);
});

test("a page whose position left the retained stream gets resync_required and reloads the thread over HTTP", async () => {
  const server = await started(new Server(["--set", "store.retention_events=5"]));
  const ctx = await browser();
  let page = ctx.pages()[0] || await ctx.newPage();
  await signIn(page, server, "erin");
  const input = page.getByLabel("Message");
  await input.fill("first");
  await input.press("Enter");
  await page.locator("article.run .run-status[data-status=completed]").waitFor();
  const threadId = await page.locator("#thread-list button").first().getAttribute("data-thread-id");
  await page.close();  // the cursor stays in localStorage
  // While the page is away, three more runs push its position out of the 5 retained events.
  const { token } = await (await fetch(`${server.url}/auth/dev-token?user=erin`)).json();
  for (const text of ["second", "third", "fourth"]) {
    const r = await fetch(`${server.url}/api/threads/${threadId}/messages`, {
      method: "POST", headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
      body: JSON.stringify({ content: text }) });
    assert.equal(r.status, 202);
  }
  // Wait for the three runs to finish (their answers are in the thread), however slow the build.
  for (let i = 0; i < 200; i++) {
    const h = await (await fetch(`${server.url}/api/threads/${threadId}/messages`, {
      headers: { Authorization: `Bearer ${token}` } })).json();
    if (h.messages.filter((m) => m.role === "agent").length === 4) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  page = await ctx.newPage();
  const httpHistory = page.waitForRequest((req) => req.url().includes(`/api/threads/${threadId}/messages`));
  await signIn(page, server, "erin");  // a new tab signs in again (the token is kept per tab)
  await httpHistory;  // resync_required made the page reload the thread over HTTP
  for (const text of ["first", "second", "third", "fourth"]) {
    await page.locator(".msg.user", { hasText: text }).waitFor();
  }
  assert.equal(await page.locator(".msg.user").count(), 4, "each message once");
});

test("two users in two browser contexts see neither the other's threads nor events", async () => {
  const server = await started(new Server());
  const a = await browser();
  const b = await browser();
  const pa = a.pages()[0] || await a.newPage();
  const pb = b.pages()[0] || await b.newPage();
  await signIn(pa, server, "user_a");
  await signIn(pb, server, "user_b");
  for (const [page, text] of [[pa, "secret of a"], [pb, "secret of b"]]) {
    const input = page.getByLabel("Message");
    await input.fill(text);
    await input.press("Enter");
  }
  await pa.locator("article.run .run-status[data-status=completed]").waitFor();
  await pb.locator("article.run .run-status[data-status=completed]").waitFor();
  await pa.waitForTimeout(300);
  assert.equal(await pa.locator("text=secret of b").count(), 0);
  assert.equal(await pb.locator("text=secret of a").count(), 0);
  assert.equal(await pa.locator("#thread-list button").count(), 1);
  assert.equal(await pb.locator("#thread-list button").count(), 1);
  assert.equal(await pa.locator("article.run").count(), 1);
  assert.equal(await pb.locator("article.run").count(), 1);
});

test("outside dev mode the page says so, and signing in with a pasted token works", async () => {
  const secret = "e2e-secret-0123456789abcdef0123456789";
  const server = await started(new Server(["--set", "auth.dev_mode=off", "--set", `auth.secret=${secret}`]));
  const ctx = await browser();
  const page = ctx.pages()[0] || await ctx.newPage();
  await page.goto(server.url + "/");
  await page.getByLabel("User name").fill("frank");
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("alert").filter({ hasText: "use a token" }).waitFor();
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString("base64url");
  const unsigned = `${b64({ alg: "HS256", typ: "JWT" })}.${b64({ sub: "frank", exp: Math.floor(Date.now() / 1000) + 600 })}`;
  const token = `${unsigned}.${createHmac("sha256", secret).update(unsigned).digest("base64url")}`;
  await page.getByText("Sign in with a token").click();
  await page.getByLabel(/JWT/).fill(token);
  await page.getByRole("button", { name: "Use token" }).click();
  await page.locator("#conn-state[data-state=live]").waitFor();
  assert.equal(await page.locator("#who").textContent(), "frank");
  const input = page.getByLabel("Message");
  await input.fill("token works");
  await input.press("Enter");
  await page.locator("article.run .run-status[data-status=completed]").waitFor();
});

test("a degraded component shows a banner and chat still works", async () => {
  const unused = await freePort();
  const server = await started(new Server(["--set", "analytics.enabled=true", "--set", `analytics.url=http://127.0.0.1:${unused}`]));
  const ctx = await browser();
  const page = ctx.pages()[0] || await ctx.newPage();
  await signIn(page, server, "dave");
  const banner = page.getByRole("alert").filter({ hasText: "degraded" });
  await banner.waitFor();
  assert.match(await banner.textContent(), /analytics/);
  const input = page.getByLabel("Message");
  await input.fill("still chatting");
  await input.press("Enter");
  await page.locator("article.run .run-status[data-status=completed]").waitFor();
});

test("approval cards: another device's answer updates the card live; the stop button stops a run", async () => {
  const server = await started(new Server(["--set", "agents.approval_required_tools=word_count"]));
  const phone = await browser();
  const laptop = await browser();
  const a = phone.pages()[0] || await phone.newPage();
  await signIn(a, server, "pat");
  await a.getByLabel("Message").fill("count these words");
  await a.getByLabel("Message").press("Enter");
  const cardA = a.locator("section.approval");
  await cardA.locator("button.approve").waitFor();
  assert.equal(await cardA.getAttribute("data-state"), "pending");
  assert.match(await cardA.locator(".approval-args").textContent(), /count these words/);
  assert.match(await cardA.locator(".approval-time").textContent(), /left$/);
  assert.equal(await a.locator(".run-status").getAttribute("data-status"), "awaiting_approval");
  await a.screenshot({ path: join(ARTIFACTS, "approval.png"), fullPage: true });

  // The second device finds the waiting approval (list_approvals) and denies it.
  const b = laptop.pages()[0] || await laptop.newPage();
  await signIn(b, server, "pat");
  await b.locator("#thread-list button").first().click();
  const cardB = b.locator("section.approval");
  await cardB.locator("button.deny").click();
  // The first device's card turns without a reload: the stream carried tool_approval_resolved.
  await a.locator("section.approval[data-state=denied]").waitFor();
  assert.equal(await cardA.locator("button").count(), 0, "no buttons on an answered approval");
  assert.match(await cardA.locator(".approval-outcome").textContent(), /^denied by /);
  await a.locator(".run-status[data-status=completed]").waitFor();

  // A run parked on its approval: the stop button ends it, and its approval expires with it.
  await a.getByLabel("Message").fill("stop me please");
  await a.getByLabel("Message").press("Enter");
  const running = a.locator("article.run").last();
  await running.locator("section.approval[data-state=pending]").waitFor();
  await running.getByRole("button", { name: "Stop this run" }).click();
  await running.locator(".run-status[data-status=stopped]").waitFor();
  assert.equal(await running.locator(".run-status").textContent(), "stopped (requested)");
  assert.match(await running.locator(".approval-outcome").textContent(), /^expired by stop_agent/);
  assert.equal(await running.getByRole("button", { name: "Stop this run" }).count(), 0);
});

test("answers render as Markdown; script, event handlers and javascript: links in an answer do nothing", async () => {
  const server = await started(new Server());
  const ctx = await browser();
  const page = ctx.pages()[0] || await ctx.newPage();
  await signIn(page, server, "quinn");
  // The echo agent answers with the message: whatever Markdown (and HTML) it holds is the agent's answer.
  const hostile = ["intro", "## Heading", "- one", "- two", "", "| a | b |", "|---|---|", "| 1 | 2 |", "",
    "```js", "let x = 1;", "```", "",
    `<script>window.pwned = "script"</script>`, `<img src="x" onerror="window.pwned = 'img'">`, "",
    "[a link](javascript:window.pwned='link') and [safe](https://example.com/)"].join("\n");
  await page.getByLabel("Message").fill(hostile);
  await page.getByLabel("Message").press("Enter");
  const answer = page.locator("article.run .run-answer");
  await page.locator("article.run .run-status[data-status=completed]").waitFor();
  assert.equal(await answer.locator("h2").textContent(), "Heading");
  assert.equal(await answer.locator("li").count(), 2);
  assert.equal(await answer.locator("table td").count(), 2);
  assert.equal((await answer.locator("pre code").textContent()).trim(), "let x = 1;");
  await answer.getByRole("button", { name: "Copy code" }).waitFor();
  // Raw HTML is shown as text, never made into elements.
  assert.equal(await answer.locator("script, img, [onerror]").count(), 0);
  assert.match(await answer.textContent(), /<img src="x" onerror=/);
  const bad = answer.getByText("a link");
  assert.ok(!((await bad.getAttribute("href")) || "").startsWith("javascript:"), "no javascript: URL");
  await bad.click();
  const safe = answer.getByRole("link", { name: "safe" });
  assert.equal(await safe.getAttribute("href"), "https://example.com/");
  assert.equal(await safe.getAttribute("target"), "_blank");
  assert.match(await safe.getAttribute("rel"), /noopener/);
  assert.equal(await page.evaluate(() => window.pwned), undefined, "nothing in the answer ran");
  // The same answer from the thread's history after a reload.
  await page.reload();
  await page.locator(".msg.agent h2", { hasText: "Heading" }).waitFor();
  assert.equal(await page.locator(".msg.agent script, .msg.agent img").count(), 0);
  assert.equal(await page.evaluate(() => window.pwned), undefined);
  assert.match(await page.locator(".msg.user").first().textContent(), /^intro\n## Heading/, "a person's message stays as typed");
});

test("dark mode follows the system's colour scheme", async () => {
  const server = await started(new Server());
  const ctx = await browser({ colorScheme: "dark" });
  const page = ctx.pages()[0] || await ctx.newPage();
  await signIn(page, server, "rory");
  await page.getByLabel("Message").fill("hello in the dark");
  await page.getByLabel("Message").press("Enter");
  await page.locator("article.run .run-status[data-status=completed]").waitFor();
  const bg = await page.evaluate(() => getComputedStyle(document.documentElement).backgroundColor);
  assert.equal(bg, "rgb(21, 23, 27)");
  await page.screenshot({ path: join(ARTIFACTS, "chat-dark.png"), fullPage: true });
});

test("rename and delete a thread from the page; another device's list follows live; a busy thread is kept", async () => {
  const server = await started(new Server(["--set", "agents.approval_required_tools=word_count"]));
  const phone = await browser();
  const laptop = await browser();
  const a = phone.pages()[0] || await phone.newPage();
  const b = laptop.pages()[0] || await laptop.newPage();
  await signIn(a, server, "rey");
  await signIn(b, server, "rey");
  await a.getByLabel("Message").fill("first thread");
  await a.getByLabel("Message").press("Enter");
  // Every echo run calls word_count, which needs an approval on this server.
  await a.locator("section.approval button.approve").click();
  await a.locator(".run-status[data-status=completed]").waitFor();
  await b.locator("#thread-list button", { hasText: "first thread" }).click();

  // Rename with the keyboard: Escape cancels, Enter saves.
  await a.getByRole("button", { name: "Rename" }).click();
  await a.getByLabel("Thread title").fill("never saved");
  await a.getByLabel("Thread title").press("Escape");
  assert.equal(await a.locator("#thread-title").textContent(), "first thread");
  await a.getByRole("button", { name: "Rename" }).click();
  await a.getByLabel("Thread title").fill("Trip plans");
  await a.getByLabel("Thread title").press("Enter");
  await a.locator("#thread-title", { hasText: "Trip plans" }).waitFor();
  // The other device: its list and its header change without a reload (thread_renamed in the stream).
  await b.locator("#thread-list button", { hasText: "Trip plans" }).waitFor();
  await b.locator("#thread-title", { hasText: "Trip plans" }).waitFor();

  // A run parked on an approval: deleting is refused and the thread stays.
  await a.getByLabel("Message").fill("count these words");
  await a.getByLabel("Message").press("Enter");
  const running = a.locator("article.run").last();
  await running.locator("section.approval[data-state=pending]").waitFor();
  a.once("dialog", (d) => d.accept());
  await a.getByRole("button", { name: "Delete" }).click();
  await a.locator(".error", { hasText: "in progress" }).waitFor();
  assert.equal(await a.locator("#thread-list button", { hasText: "Trip plans" }).count(), 1);
  await running.getByRole("button", { name: "Stop this run" }).click();
  await running.locator(".run-status[data-status=stopped]").waitFor();

  // Deleted once nothing runs: gone on both devices, and after a reload.
  a.once("dialog", (d) => d.accept());
  await a.getByRole("button", { name: "Delete" }).click();
  await a.locator("#thread-title", { hasText: "New conversation" }).waitFor();
  assert.equal(await a.locator("#thread-list button").count(), 0);
  await b.locator("#thread-title", { hasText: "New conversation" }).waitFor();
  assert.equal(await b.locator("#thread-list button").count(), 0);
  await a.reload();
  await a.locator("#conn-state[data-state=live]").waitFor();
  assert.equal(await a.locator("#thread-list button").count(), 0);
  assert.equal(await a.getByRole("button", { name: "Delete" }).isVisible(), false, "nothing to delete in a new conversation");
});

test("a page reloaded mid-run shows the answer so far once, then the rest as it streams", async () => {
  const gated = `agents.process_command=/usr/bin/python3 ${join(here, "..", "..", "clients", "js", "test", "gated_agent.py")}`;
  const server = await started(new Server(["--set", gated, "--set", "agents.default=process"]));
  const gate = join(mkdtempSync(join(TMP, "aw-gate-")), "open");
  cleanups.push(() => writeFileSync(gate, ""));  // a run left waiting ends with the server anyway
  const ctx = await browser();
  const page = ctx.pages()[0] || await ctx.newPage();
  await signIn(page, server, "rhea");
  await page.getByLabel("Message").fill(`gate:${gate}`);
  await page.getByLabel("Message").press("Enter");
  const answer = page.locator("article.run .run-answer");
  await answer.filter({ hasText: "part one," }).waitFor();
  // The page acknowledged what it showed: after the reload its position is past the first chunk.
  for (let i = 0; i < 100 && (await server.metric("agentwire_events_acked_total")) < 3; i++) await page.waitForTimeout(50);
  await page.reload();
  await page.locator("#conn-state[data-state=live]").waitFor();
  await page.locator(".run-status[data-status=running]").waitFor();
  assert.equal((await answer.textContent()).trim(), "part one,", "the answer so far, from the thread's history, once");
  writeFileSync(gate, "");
  await page.locator(".run-status[data-status=completed]").waitFor();
  assert.equal((await answer.textContent()).trim(), "part one, part two");
  assert.equal(await page.locator("article.run").count(), 1);
});

test("with several agents a new conversation offers a picker; the thread keeps the agent picked", async () => {
  const dir = mkdtempSync(join(TMP, "aw-e2e-agents-"));
  const config = join(dir, "agents.toml");
  writeFileSync(config, '[[agents.defs]]\nname = "greeter"\nkind = "echo"\ndescription = "Says it back"\n');
  const server = await started(new Server(["--config", config]));
  const ctx = await browser();
  const page = ctx.pages()[0] || await ctx.newPage();
  await signIn(page, server, "iris");
  const picker = page.getByLabel("Agent");
  await picker.waitFor();
  assert.deepEqual(await picker.locator("option").evaluateAll((os) => os.map((o) => o.value)), ["echo", "greeter"]);
  assert.equal(await picker.inputValue(), "echo", "the server's default is picked first");
  await picker.selectOption("greeter");
  const input = page.getByLabel("Message");
  await input.fill("hello greeter");
  await input.press("Enter");
  await page.locator("article.run .run-status[data-status=completed]").waitFor();
  assert.equal(await page.locator("#thread-agent").textContent(), "with greeter");
  assert.equal(await picker.isVisible(), false, "a thread's agent is not picked again");
  await page.screenshot({ path: join(ARTIFACTS, "chat-agent-picker.png"), fullPage: true });
  // The thread was created with that agent: the server says so, and its next message goes to it.
  const { token } = await page.evaluate(() => JSON.parse(sessionStorage.getItem("agentwire:session")));
  const threads = await (await fetch(`${server.url}/api/threads`, { headers: { Authorization: `Bearer ${token}` } })).json();
  assert.equal(threads.threads[0].agent, "greeter");
  await page.locator("#new-thread").click();
  await picker.waitFor();
});

test("an answer cut off at the model's token limit says so, and the run shows its token usage", async () => {
  const { spawn } = await import("node:child_process");
  const fake = spawn("/usr/bin/python3", [join(here, "..", "fake_openai.py")], { stdio: ["pipe", "pipe", "inherit"] });
  cleanups.push(() => fake.stdin.end());
  const port = await new Promise((resolve, reject) => {
    fake.stdout.once("data", (d) => resolve(Number(String(d).trim())));
    fake.once("exit", (code) => reject(new Error(`fake_openai.py exited with ${code}`)));
  });
  const server = await started(new Server(["--set", `agents.llm_base_url=http://127.0.0.1:${port}/v1`,
    "--set", "agents.default=llm"]));
  const ctx = await browser();
  const page = ctx.pages()[0] || await ctx.newPage();
  await signIn(page, server, "jules");
  const input = page.getByLabel("Message");
  await input.fill("long");
  await input.press("Enter");
  const run = page.locator("article.run");
  await run.locator(".run-status[data-status=completed]").waitFor();
  assert.match(await run.locator(".run-note").textContent(), /token limit/);
  assert.match(await run.locator(".run-events li[data-event=agent_completed]").textContent(), /20 tokens in, 4 out/);
  await input.fill("stream");
  await input.press("Enter");
  await run.nth(1).locator(".run-status[data-status=completed]").waitFor();
  assert.equal(await run.nth(1).locator(".run-note").count(), 0, "a whole answer has no note");
});
