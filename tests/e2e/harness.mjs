// Starts the real agentwire binary and Debian's Chromium (through playwright-core) for the
// browser tests. Nothing is left running: every start registers its stop.
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, existsSync, mkdirSync, openSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
export const BIN = process.env.AW_BIN || join(here, "..", "..", "build", "agentwire");
export const TMP = process.env.AW_TEST_TMP || tmpdir();
export const ARTIFACTS = process.env.AW_ARTIFACTS || join(TMP, "e2e-artifacts");
mkdirSync(TMP, { recursive: true });
mkdirSync(ARTIFACTS, { recursive: true });

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export class Server {
  constructor(args = [], { dir, port = 0 } = {}) {
    this.dir = dir || mkdtempSync(join(TMP, "aw-e2e-"));
    this.args = args;
    this.port = port;
  }

  async start() {
    const portFile = join(this.dir, "port");
    const log = openSync(join(this.dir, "server.log"), "a");
    this.proc = spawn(BIN, ["serve", "--port", String(this.port), "--port-file", portFile,
      "--set", `store.path=${join(this.dir, "agentwire.db")}`, ...this.args], { stdio: ["ignore", log, log] });
    this.exited = new Promise((r) => this.proc.on("exit", (code) => r(code)));
    const deadline = Date.now() + 20000;
    while (Date.now() < deadline) {
      if (this.proc.exitCode !== null) throw new Error(`server exited ${this.proc.exitCode}:\n${this.logs()}`);
      if (existsSync(portFile)) {
        const text = readFileSync(portFile, "utf8").trim();
        if (text && Number(text) !== 0 && (this.port === 0 || Number(text) === this.port)) {
          this.port = Number(text);
          break;
        }
      }
      await sleep(10);
    }
    while (Date.now() < deadline) {
      try {
        const r = await fetch(`${this.url}/health/ready`);
        if (r.status === 200) return this;
      } catch { /* not listening yet */ }
      await sleep(20);
    }
    throw new Error("server never became ready\n" + this.logs());
  }

  get url() { return `http://127.0.0.1:${this.port}`; }

  /** A metric without labels from the server's /metrics; throws when it is not there. */
  async metric(name) {
    const text = await (await fetch(`${this.url}/metrics`)).text();
    const line = text.split("\n").find((l) => l.startsWith(name + " "));
    if (!line) throw new Error(`no ${name} in /metrics`);
    return Number(line.split(" ")[1]);
  }

  logs() {
    try { return readFileSync(join(this.dir, "server.log"), "utf8"); } catch { return ""; }
  }

  async stop(signal = "SIGTERM") {
    if (!this.proc || this.proc.exitCode !== null) return this.proc?.exitCode;
    this.proc.kill(signal);
    const code = await Promise.race([this.exited, sleep(15000).then(() => "timeout")]);
    if (code === "timeout") { this.proc.kill("SIGKILL"); return this.exited; }
    return code;
  }
}

export async function launchBrowser(options = {}) {
  const profile = mkdtempSync(join(TMP, "chromium-"));
  const executablePath = existsSync("/usr/lib/chromium/chromium") ? "/usr/lib/chromium/chromium" : "/usr/bin/chromium";
  return chromium.launchPersistentContext(profile, {
    executablePath,
    headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
    ...options,
  });
}

export async function signIn(page, server, user) {
  await page.goto(server.url + "/");
  if (await page.locator("#chat").isVisible()) throw new Error("the chat is visible before signing in");
  await page.getByLabel("User name").fill(user);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.locator("#conn-state[data-state=live]").waitFor({ timeout: 10000 });
}

// The event types of one rendered run, in the order shown (chunks included).
export async function runEvents(runLocator) {
  return runLocator.locator(".run-events li").evaluateAll((lis) => lis.map((li) => li.dataset.event));
}

export function freePort() {
  return new Promise((resolve) => {
    import("node:net").then(({ createServer }) => {
      const s = createServer();
      s.listen(0, "127.0.0.1", () => { const p = s.address().port; s.close(() => resolve(p)); });
    });
  });
}
