// The operators' status page: components and their health, the startup trace as a timeline
// (one bar per component from its start to its finish, an arrow from each dependency, like
// `systemd-analyze plot`), live counts, charts of the last minutes, ClickHouse, active alerts.
// Refreshes itself every 2 s.
const $ = (id) => document.getElementById(id);
const SVG = "http://www.w3.org/2000/svg";
let previous = null;  // {t, events} for the delivery rate

function metricValues(text, name) {
  const out = [];
  for (const line of text.split("\n")) {
    if (!line.startsWith(name)) continue;
    const m = line.match(/^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$/);
    if (m && m[1] === name) out.push({ labels: m[2] || "", value: Number(m[3]) });
  }
  return out;
}
const metric = (text, name) => metricValues(text, name).reduce((s, v) => s + v.value, 0);

function svg(tag, attrs, text) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

function drawTimeline(trace) {
  const comps = trace.components;
  const end = Math.max(1, ...comps.map((c) => (c.end_us ?? c.start_us ?? 0)));
  const left = 130, width = 640, row = 22, top = 18;
  const x = (us) => left + (us / end) * width;
  const root = svg("svg", { width: left + width + 80, height: top + comps.length * row + 10 });
  const defs = svg("defs", {});
  const marker = svg("marker", { id: "arrow", viewBox: "0 0 6 6", refX: "6", refY: "3", markerWidth: "6", markerHeight: "6", orient: "auto" });
  marker.append(svg("path", { d: "M0,0 L6,3 L0,6 z", fill: "#9aa3ad" }));
  defs.append(marker);
  root.append(defs);
  root.append(svg("text", { x: left, y: 12 }, "0 ms"));
  root.append(svg("text", { x: left + width - 40, y: 12 }, `${(end / 1000).toFixed(2)} ms`));
  const rowOf = new Map(comps.map((c, i) => [c.name, i]));
  comps.forEach((c, i) => {
    const y = top + i * row;
    const start = c.start_us ?? 0, stop = c.end_us ?? start;
    root.append(svg("text", { x: 4, y: y + 14 }, c.name));
    const bar = svg("rect", { class: "bar", x: x(start), y: y + 3, width: Math.max(2, x(stop) - x(start)), height: row - 8,
      "data-component": c.name, "data-outcome": c.outcome });
    bar.append(svg("title", {}, `${c.name}: ${(start / 1000).toFixed(2)} → ${(stop / 1000).toFixed(2)} ms (${c.outcome})`));
    root.append(bar);
    root.append(svg("text", { x: x(stop) + 4, y: y + 14 }, `${((stop - start) / 1000).toFixed(2)} ms ${c.outcome === "ok" ? "" : c.outcome}`));
    for (const d of c.dependencies || []) {
      const j = rowOf.get(d);
      if (j === undefined) continue;
      const dep = comps[j];
      const fx = x(dep.end_us ?? 0), fy = top + j * row + row / 2;
      root.append(svg("path", { class: "dep", d: `M${fx},${fy} L${x(start)},${y + row / 2}`, "data-from": d, "data-to": c.name }));
    }
  });
  $("timeline").replaceChildren(root);
  $("timeline-summary").textContent = trace.finished
    ? `Ready ${trace.ok ? "" : "(with failures) "}after ${(trace.total_us ?? end) / 1000} ms.`
    : "Still starting.";
}

function renderComponents(health) {
  const body = $("components");
  body.replaceChildren();
  for (const c of health.components) {
    const tr = document.createElement("tr");
    tr.dataset.component = c.name;
    const details = c.details ? Object.entries(c.details).map(([k, v]) => `${k}=${v}`).join(", ") : "";
    for (const [text, cls] of [[c.name], [c.state, "state"], [c.critical ? "yes" : "no"], [[c.reason, details].filter(Boolean).join(" — ")]]) {
      const td = document.createElement("td");
      td.textContent = text;
      if (cls) { td.className = cls; td.dataset.state = c.state; }
      tr.append(td);
    }
    body.append(tr);
  }
  const overall = $("overall");
  overall.textContent = health.status;
  overall.dataset.state = health.status === "healthy" ? "live" : health.status === "degraded" ? "reconnecting" : "offline";
  const ch = health.components.find((c) => c.name === "analytics");
  $("clickhouse").textContent = !ch || (ch.details && ch.details.enabled === false) ? "off" : ch.details && ch.details.up ? "up" : "down";
}

function renderAlerts(alerts) {
  const list = $("alerts");
  list.replaceChildren();
  if (!alerts.active.length) { list.append(Object.assign(document.createElement("li"), { textContent: "none" })); return; }
  for (const a of alerts.active) {
    const li = document.createElement("li");
    li.dataset.severity = a.severity;
    li.textContent = `${a.severity.toUpperCase()} ${a.name}: ${a.summary} — ${a.detail} (since ${new Date(a.since_ms).toLocaleTimeString()})`;
    list.append(li);
  }
}

// One small line chart per series of GET /health/trends (the server keeps the points, so a page
// opened now shows the past minutes too). A gap where a step had no value (p99 with nothing
// delivered) is a break in the line, not a zero.
function drawTrends(trends) {
  const points = trends.points;
  $("trends-summary").textContent = points.length
    ? `${points.length} points, one every ${trends.step_ms / 1000} s, the last at ${new Date(points[points.length - 1].t).toLocaleTimeString()}.`
    : "Collecting: one point every few seconds.";
  for (const fig of document.querySelectorAll(".chart")) {
    const key = fig.dataset.series;
    const values = points.map((p) => p[key]);
    const known = values.filter((v) => v !== null && v !== undefined);
    const w = 280, h = 70, pad = 4;
    const max = Math.max(1e-9, ...known);
    const x = (i) => pad + (points.length < 2 ? w - 2 * pad : (i / (points.length - 1)) * (w - 2 * pad));
    const y = (v) => h - pad - (v / max) * (h - 2 * pad);
    const has = (i) => values[i] !== null && values[i] !== undefined;
    let d = "";
    values.forEach((v, i) => {
      if (!has(i)) return;
      d += `${has(i - 1) ? "L" : "M"}${x(i).toFixed(1)},${y(v).toFixed(1)} `;
      // A point alone (the first one, or between gaps) is a short dash, so that it shows.
      if (!has(i - 1) && !has(i + 1)) d += `h3 m-6,0 h3 `;
    });
    const last = known.length ? known[known.length - 1] : null;
    const label = last === null ? "no data" : `now ${fmt(last)}, max ${fmt(Math.max(...known))}`;
    const root = svg("svg", { viewBox: `0 0 ${w} ${h}`, preserveAspectRatio: "none", role: "img", "aria-label": `${fig.querySelector("figcaption").textContent}: ${label}` });
    root.append(svg("line", { class: "axis", x1: pad, y1: h - pad, x2: w - pad, y2: h - pad }));
    if (d) root.append(svg("path", { class: "line", d: d.trim() }));
    fig.dataset.points = String(known.length);
    fig.dataset.last = last === null ? "" : String(last);
    fig.dataset.max = known.length ? String(Math.max(...known)) : "";
    fig.querySelector(".plot").replaceChildren(root, Object.assign(document.createElement("div"), { className: "chart-label", textContent: label }));
  }
}

function fmt(v) { return v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2); }

async function refresh() {
  try {
    const [health, trace, alerts, metrics, trends] = await Promise.all([
      fetch("/health", { cache: "no-store" }).then((r) => r.json()),
      fetch("/health/startup", { cache: "no-store" }).then((r) => r.json()),
      fetch("/health/alerts", { cache: "no-store" }).then((r) => r.json()),
      fetch("/metrics", { cache: "no-store" }).then((r) => r.text()),
      fetch("/health/trends", { cache: "no-store" }).then((r) => r.json()),
    ]);
    renderComponents(health);
    drawTrends(trends);
    drawTimeline(trace);
    renderAlerts(alerts);
    $("connections").textContent = metric(metrics, "agentwire_websocket_connections");
    $("users").textContent = metric(metrics, "agentwire_users_connected");
    $("runs").textContent = metric(metrics, "agentwire_agent_runs_active");
    const now = performance.now(), events = metric(metrics, "agentwire_events_sent_total");
    if (previous) $("rate").textContent = ((events - previous.events) / ((now - previous.t) / 1000)).toFixed(1);
    previous = { t: now, events };
    $("updated").textContent = `updated ${new Date().toLocaleTimeString()}`;
    document.body.dataset.loaded = "true";
  } catch (e) {
    $("overall").textContent = "unreachable";
    $("overall").dataset.state = "offline";
  }
}

refresh();
setInterval(refresh, 2000);
