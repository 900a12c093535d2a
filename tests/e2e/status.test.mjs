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
