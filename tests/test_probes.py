"""Probes against the real binary: readiness from 503 to 200, degraded optional components,
the startup trace, upgrades refused before ready, SIGTERM flipping readiness before exit."""
import http.client
import json
import os
import signal
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402


class ProbeTest(unittest.TestCase):
    def test_ready_goes_from_503_to_200_while_slow_optional_component_starts(self):
        # Analytics points at a listener that never answers: its start takes ~2 x 700 ms, and
        # the probes must answer the whole time.
        hole = harness.Blackhole()
        srv = harness.Server("--set", "analytics.enabled=true",
                             "--set", f"analytics.url=http://127.0.0.1:{hole.port}",
                             "--set", "analytics.connect_timeout_ms=700")
        try:
            srv.start(wait_ready=False)
            seen = []
            refused_upgrades = 0
            deadline = time.time() + 15
            while time.time() < deadline:
                status, body = srv.get("/health/ready")
                seen.append(status)
                if status == 503:
                    self.assertFalse(body["ready"])
                    self.assertIn(body["phase"], ("idle", "starting"))
                    live, _ = srv.get("/health/live")
                    self.assertEqual(live, 200, "liveness checks no dependency")
                    up, hdrs, _ = harness.raw_upgrade(srv.port)
                    if up == 503:
                        self.assertIn("Retry-After", hdrs)
                        refused_upgrades += 1
                    else:
                        # Startup may finish between the two requests; then it must be ready now.
                        self.assertEqual(up, 101)
                        self.assertEqual(srv.get("/health/ready")[0], 200, "an upgrade was accepted before ready")
                if status == 200:
                    break
                time.sleep(0.02)
            self.assertIn(503, seen, "readiness was never observed false during startup")
            self.assertGreater(refused_upgrades, 0, "no upgrade was refused while starting")
            self.assertEqual(seen[-1], 200, srv.logs())
            self.assertTrue(body["ready"])
            # The optional component is degraded, shown in the body, and does not fail readiness.
            self.assertEqual([c["name"] for c in body["degraded"]], ["analytics"])
            status, overall = srv.get("/health")
            self.assertEqual(status, 200)
            self.assertEqual(overall["status"], "degraded")
            states = {c["name"]: c["state"] for c in overall["components"]}
            self.assertEqual(states.pop("analytics"), "degraded")
            self.assertTrue(all(s == "healthy" for s in states.values()), states)
            self.assertNotIn("uninitialized", json.dumps(overall))
            # The warning is logged once.
            self.assertEqual(srv.logs().count("is not storing analytics"), 1, srv.logs())
        finally:
            srv.stop()
            hole.close()

    def test_startup_trace_lists_every_component_in_order(self):
        srv = harness.Server().start()
        try:
            status, trace = srv.get("/health/startup")
            self.assertEqual(status, 200)
            self.assertTrue(trace["finished"] and trace["ok"])
            names = [c["name"] for c in trace["components"]]
            # alert_monitor needs only config: it starts beside the chain, so it watches startup too.
            self.assertEqual(names, ["config", "store", "delivery", "message_handlers", "analytics",
                                     "agent_bridge", "self_check", "ws_gateway", "alert_monitor"])
            by_name = {c["name"]: c for c in trace["components"]}
            for c in trace["components"]:
                self.assertEqual(c["outcome"], "ok", c)
                self.assertGreaterEqual(c["duration_us"], 0)
                for dep in c["dependencies"]:
                    self.assertLessEqual(by_name[dep]["end_us"], c["start_us"], (dep, c["name"]))
            events = [e["event"] for e in trace["events"]]
            registered = next(i for i, e in enumerate(events) if e.startswith("handlers_registered"))
            counted = next(i for i, e in enumerate(events) if e.startswith("handlers_counted"))
            self.assertLess(registered, counted)
            self.assertNotIn("zero handlers", srv.logs())
            self.assertIn("startup trace:", srv.logs(), "the trace is logged as a table")
            # The alert monitor watches startup from beside the chain: it saw the handlers too.
            status, alerts = srv.get("/health/alerts")
            self.assertIn("AgentwireNoMessageHandlers", alerts["rules"])
            self.assertEqual([a["name"] for a in alerts["active"]], [])
            _, text = srv.get("/metrics")
            self.assertEqual(harness.metric_samples(text, "agentwire_handlers_registered")[frozenset()], 15)
        finally:
            srv.stop()

    def test_sigterm_turns_readiness_false_before_exit(self):
        srv = harness.Server("--set", "server.shutdown_delay_ms=1500").start()
        conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
        status, _ = srv.get("/health/ready", conn=conn)
        self.assertEqual(status, 200)
        srv.signal(signal.SIGTERM)
        t0 = time.time()
        saw_503 = False
        while time.time() - t0 < 1.2:
            status, body = srv.get("/health/ready", conn=conn)
            if status == 503:
                self.assertTrue(body["shutting_down"])
                saw_503 = True
                break
            time.sleep(0.01)
        self.assertTrue(saw_503, "readiness stayed true after SIGTERM")
        # The HTTP API refuses new work once shutdown has begun, with the documented code.
        conn.request("POST", "/api/threads", body="{}", headers={"Authorization": "Bearer x"})
        r = conn.getresponse()
        body = json.loads(r.read())
        self.assertEqual((r.status, body["error"]["code"]), (503, "not_ready"))
        self.assertEqual(srv.wait_exit(), 0, srv.logs())
        self.assertIn("stopped cleanly", srv.logs())

    def test_sigint_exits_zero(self):
        srv = harness.Server().start()
        srv.signal(signal.SIGINT)
        self.assertEqual(srv.wait_exit(), 0, srv.logs())

    def test_critical_failure_exits_nonzero_with_one_clear_line(self):
        srv = harness.Server()
        # The store path is a directory: SQLite cannot open it.
        os.makedirs(os.path.join(srv.dir, "agentwire.db"))
        srv.start(wait_ready=False)
        code = srv.wait_exit()
        self.assertEqual(code, 1)
        lines = [l for l in srv.logs().splitlines() if l.startswith("agentwire: startup failed")]
        self.assertEqual(len(lines), 1, srv.logs())
        self.assertIn("component 'store'", lines[0])
        self.assertIn("cannot open SQLite database", lines[0])
        # The failed start is counted in the data directory, so the success rate sees it.
        os.rmdir(os.path.join(srv.dir, "agentwire.db"))
        good = harness.Server(data_dir=srv.dir).start()
        try:
            _, text = good.get("/metrics")
            counts = {name: harness.metric_samples(text, name)[frozenset()]
                      for name in ("agentwire_starts_total", "agentwire_ready_starts_total",
                                   "agentwire_clean_starts_total")}
            self.assertEqual(counts, {"agentwire_starts_total": 2, "agentwire_ready_starts_total": 1,
                                      "agentwire_clean_starts_total": 1})
        finally:
            good.stop()

    def test_selfcheck_on_demand(self):
        srv = harness.Server().start()
        try:
            status, body = srv.get("/health/selfcheck")
            self.assertEqual(status, 200, body)
            self.assertTrue(body["ok"])
        finally:
            srv.stop()

    def test_external_probe_command(self):
        srv = harness.Server().start()
        try:
            r = harness.run_cli("probe", f"ws://127.0.0.1:{srv.port}")
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn("agent_completed", r.stdout)
            with open(os.path.join(srv.dir, "dev-secret")) as f:
                secret = f.readline().strip()
            r = harness.run_cli("probe", f"ws://127.0.0.1:{srv.port}", "--secret", secret, "--user", "ops")
            self.assertEqual(r.returncode, 0, r.stderr)
            r = harness.run_cli("probe", f"ws://127.0.0.1:{srv.port}", "--secret", "wrong-secret")
            self.assertEqual(r.returncode, 1)
            self.assertIn("invalid_token", r.stderr)
        finally:
            srv.stop()
        r = harness.run_cli("probe", f"ws://127.0.0.1:{srv.port}", "--timeout-ms", "500")
        self.assertEqual(r.returncode, 1)
        self.assertIn("probe FAILED", r.stderr)

    def test_unknown_path_and_method(self):
        srv = harness.Server().start()
        try:
            status, body = srv.get("/nope")
            self.assertEqual(status, 404)
            self.assertEqual(body["error"]["code"], "not_found")
            status, body, _ = srv.request("POST", "/health/live", body={})
            self.assertEqual(status, 405)
        finally:
            srv.stop()


if __name__ == "__main__":
    harness.main()
