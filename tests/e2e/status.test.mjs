// The operators' status page in Debian's Chromium against the real binary.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { Server, launchBrowser, ARTIFACTS, freePort } from "./harness.mjs";

const cleanups = [];
after(async () => { for (const c of cleanups.reverse()) await c(); });

test("status page: components with health, one timeline bar per component, a degraded component shown as such", async () => {
  const unused = await freePort();
  const server = new Server(["--set", "analytics.enabled=true", "--set", `analytics.url=http://127.0.0.1:${unused}`]);
  await server.start();
  cleanups.push(() => server.stop());
  const ctx = await launchBrowser();
  cleanups.push(() => ctx.close());
  const page = ctx.pages()[0] || await ctx.newPage();
  await page.goto(server.url + "/status");
  await page.locator("body[data-loaded=true]").waitFor();

  const health = await (await fetch(server.url + "/health")).json();
  const names = health.components.map((c) => c.name);
  const rows = await page.locator("#components tr").evaluateAll((trs) => trs.map((tr) => tr.dataset.component));
  assert.deepEqual(rows, names);
  const bars = await page.locator("#timeline rect.bar").evaluateAll((rs) => rs.map((r) => r.dataset.component));
  assert.deepEqual(bars.sort(), [...names].sort(), "one bar per component");
  // Dependencies are drawn: an arrow into agent_bridge from each of its dependencies.
  const into = await page.locator('#timeline path.dep[data-to="agent_bridge"]').evaluateAll((ps) => ps.map((p) => p.dataset.from));
  assert.deepEqual(into.sort(), ["analytics", "delivery", "message_handlers"]);
  // The degraded component is shown as such, in the table and in the timeline.
  assert.equal(await page.locator('#components tr[data-component=analytics] td.state').textContent(), "degraded");
  assert.equal(await page.locator('#timeline rect.bar[data-component=analytics]').getAttribute("data-outcome"), "degraded");
  assert.equal(await page.locator("#overall").textContent(), "degraded");
  assert.equal(await page.locator("#clickhouse").textContent(), "down");
  // The INFO alert for ClickHouse is listed once the monitor has evaluated.
  await page.locator('#alerts li[data-severity=info]', { hasText: "AgentwireClickHouseDown" }).waitFor({ timeout: 5000 });
  // Live counts refresh by themselves.
  assert.equal(await page.locator("#connections").textContent(), "0");
  const ws = await fetch(`${server.url}/auth/dev-token?user=watcher`).then((r) => r.json());
  const other = await ctx.newPage();  // a client in another tab
  await other.goto(server.url + "/web/style.css");
  await other.evaluate((token) => new Promise((resolve) => {
    window.sock = new WebSocket(`ws://${location.host}/ws`, ["jwt-auth", `jwt.${token}`]);
    window.sock.onopen = resolve;
  }), ws.token);
  await page.locator("#connections", { hasText: "1" }).waitFor({ timeout: 6000 });
  await other.close();
  await page.screenshot({ path: join(ARTIFACTS, "status.png"), fullPage: true });
});

test("status page: charts of the last minutes from the server's own counters, including what happened before the page opened", async () => {
  const server = new Server(["--set", "status.trend_step_ms=1000"]);
  await server.start();
  cleanups.push(() => server.stop());
  // Traffic before any page is open: the server keeps the points, not the page.
  const { token } = await fetch(`${server.url}/auth/dev-token?user=charts`).then((r) => r.json());
  const auth = { Authorization: `Bearer ${token}`, "Content-Type": "application/json" };
  const thread = await fetch(`${server.url}/api/threads`, { method: "POST", headers: auth, body: "{}" }).then((r) => r.json());
  for (let i = 0; i < 5; i++) {
    const r = await fetch(`${server.url}/api/threads/${thread.thread_id}/messages`,
      { method: "POST", headers: auth, body: JSON.stringify({ content: `message ${i}` }) });
    assert.equal(r.status, 202);
  }
  const trends = async () => (await fetch(`${server.url}/health/trends`)).json();
  // Waits for a point that covers the runs (each step is a second of the monitor's beat).
  const deadline = Date.now() + 20000;
  for (let t = await trends(); !t.points.some((p) => p.events_per_s > 0 && p.p99_ms !== null); t = await trends()) {
    assert.ok(Date.now() < deadline, `no point with the runs' events: ${JSON.stringify(t)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  const t = await trends();
  assert.equal(t.step_ms, 1000);
  for (const p of t.points) {
    assert.deepEqual(Object.keys(p).sort(), ["active_runs", "connections", "events_per_s", "p99_ms", "t"]);
  }

  const ctx = await launchBrowser();
  cleanups.push(() => ctx.close());
  const page = ctx.pages()[0] || await ctx.newPage();
  await page.goto(server.url + "/status");
  await page.locator("body[data-loaded=true]").waitFor();
  const events = page.locator('.chart[data-series=events_per_s]');
  assert.ok(Number(await events.getAttribute("data-max")) > 0, "the events chart shows the traffic from before the page");
  assert.equal(await events.locator("svg path.line").count(), 1);
  assert.ok(Number(await page.locator('.chart[data-series=p99_ms]').getAttribute("data-points")) >= 1);
  assert.match(await events.locator("svg").getAttribute("aria-label"), /^Events \/ s: now [\d.]+, max [\d.]+$/);
  // A connection opened now shows in the connections chart within a step or two.
  const ws = await page.evaluate((tok) => new Promise((resolve) => {
    window.sock = new WebSocket(`ws://${location.host}/ws`, ["jwt-auth", `jwt.${tok}`]);
    window.sock.onopen = () => resolve(true);
  }), token);
  assert.ok(ws);
  await page.locator('.chart[data-series=connections][data-last="1"]').waitFor({ timeout: 10000 });
  await page.screenshot({ path: join(ARTIFACTS, "status-charts.png"), fullPage: true });
});
