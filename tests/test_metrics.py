"""GET /metrics on the real binary: Prometheus text format, and the named series move as
expected through connect, chat and disconnect; the self-check's traffic is not counted."""
import asyncio
import os
import re
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402
import wsclient  # noqa: E402
from wsclient import Client  # noqa: E402

LINE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$')


def promtool_check(text):
    """`promtool check metrics` (Debian's prometheus package): exposition format and naming lint."""
    r = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True)
    return r.returncode, (r.stdout + r.stderr).strip()


def scrape(srv):
    status, text = srv.get("/metrics")
    assert status == 200
    samples, types = {}, {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            types[name] = kind
            continue
        if not line or line.startswith("#"):
            continue
        m = LINE.match(line)
        assert m, f"not Prometheus text: {line!r}"
        samples[m.group(1) + (m.group(2) or "")] = float(m.group(3))
    return samples, types


class MetricsTest(unittest.IsolatedAsyncioTestCase):
    async def test_series_follow_connect_chat_disconnect(self):
        srv = harness.Server().start()
        try:
            before, types = scrape(srv)
            self.assertEqual(before["agentwire_ready"], 1)
            self.assertEqual(before["agentwire_events_appended_total"], 0, "the self-check must not be counted")
            self.assertEqual(before["agentwire_handlers_registered"], 15)
            self.assertEqual(types["agentwire_events_appended_total"], "counter")
            self.assertEqual(types["agentwire_connections"], "gauge")
            for comp in ("config", "store", "delivery", "message_handlers", "analytics", "agent_bridge",
                         "self_check", "ws_gateway"):
                self.assertEqual(before[f'agentwire_component_healthy{{component="{comp}"}}'], 1, comp)
                self.assertIn(f'agentwire_component_start_duration_seconds{{component="{comp}"}}', before)
            self.assertGreater(before["process_resident_memory_bytes"], 0)
            self.assertGreater(before["process_open_fds"], 0)

            c = await Client.connect(srv.port, wsclient.dev_token(srv.port, "metrics_user"))
            ack = await c.request("user_message", {"content": "count me"}, id_="m", want="ack")
            await c.recv_until(lambda f: f["type"] == "agent_completed")
            last_seq = max(f["seq"] for f in c.frames if "seq" in f)
            await c.send("ack_events", {"seq": last_seq})
            err = await c.request("get_thread_history", {"thread_id": "thr_nope"}, id_="e")
            self.assertEqual(err["data"]["code"], "thread_not_found")
            for _ in range(100):
                during, _ = scrape(srv)
                if during["agentwire_events_acked_total"] == last_seq:
                    break
                await asyncio.sleep(0.02)
            self.assertEqual(during["agentwire_connections"], 1)
            self.assertEqual(during["agentwire_users_connected"], 1)
            self.assertEqual(during["agentwire_websocket_connections"], 1)
            events = len([f for f in c.frames if "seq" in f and f["run_id"] == ack["data"]["run_id"]])
            self.assertEqual(during["agentwire_events_appended_total"], events)
            self.assertEqual(during["agentwire_events_sent_total"], events)
            self.assertEqual(during["agentwire_delivery_failures_total"], 0)
            # Acks are the ground truth of delivery: every event of the run was acknowledged once.
            self.assertEqual(during["agentwire_events_acked_total"], events)
            self.assertEqual(during['agentwire_agent_runs_total{agent="echo",outcome="completed"}'], 1)
            self.assertEqual(during['agentwire_agent_run_duration_seconds_count{agent="echo"}'], 1)
            self.assertEqual(during['agentwire_delivery_latency_seconds_count'], events)
            self.assertEqual(during['agentwire_delivery_latency_seconds_bucket{le="+Inf"}'], events)
            self.assertEqual(types["agentwire_delivery_latency_seconds"], "histogram")
            # The group commits that stored the run: its message, the run and its events at least.
            self.assertEqual(types["agentwire_store_commit_seconds"], "histogram")
            self.assertGreaterEqual(during["agentwire_store_commit_seconds_count"], 1)
            self.assertEqual(during["agentwire_store_commit_items_count"],
                             during["agentwire_store_commit_seconds_count"])
            self.assertGreaterEqual(during["agentwire_store_commit_items_sum"], events + 2)
            self.assertEqual(during['agentwire_client_errors_total{code="thread_not_found"}'], 1)
            self.assertEqual(during["agentwire_connections_opened_total"], 1)
            self.assertEqual(during["agentwire_threads_running_without_connection"], 0)
            code, out = promtool_check(srv.get("/metrics")[1])
            self.assertEqual(code, 0, out)
            await c.close()
            for _ in range(100):
                after, _ = scrape(srv)
                if after["agentwire_connections"] == 0:
                    break
                await asyncio.sleep(0.02)
            self.assertEqual(after["agentwire_connections"], 0)
            self.assertEqual(after["agentwire_users_connected"], 0)
            self.assertGreaterEqual(after["process_cpu_seconds_total"], before["process_cpu_seconds_total"])
            for _ in range(100):
                after, _ = scrape(srv)
                if after.get('agentwire_connections_closed_total{code="1000"}') == 1:
                    break
                await asyncio.sleep(0.02)
            self.assertEqual(after['agentwire_connections_closed_total{code="1000"}'], 1)
            # A refused token is counted as a 1008 close.
            with self.assertRaises(Exception):
                await Client.connect(srv.port, "not-a-token")
            refused, _ = scrape(srv)
            self.assertEqual(refused['agentwire_connections_closed_total{code="1008"}'], 1)
            status, alerts = srv.get("/health/alerts")
            self.assertEqual(status, 200)
            self.assertEqual(alerts["active"], [])
            self.assertIn("AgentwireDeliveryFailures", alerts["rules"])
        finally:
            srv.stop()

    async def test_delivery_success_counts_acking_streams_and_consistency_counts_unacked_threads(self):
        srv = harness.Server().start()
        try:
            token = wsclient.dev_token(srv.port, "acker")
            c = await Client.connect(srv.port, token)
            await c.send("ping")
            first = await c.request("user_message", {"content": "one"}, id_="m1", want="ack")
            await c.recv_until(lambda f: f["type"] == "agent_completed")
            head = c.events()[-1]["seq"]
            await c.send("ack_events", {"seq": head})  # the stream's first ack: from here on it is acking
            await harness.wait_for_async(lambda: scrape(srv)[0]["agentwire_events_acked_total"] == head,
                                         what="the first ack written")
            m, _ = scrape(srv)
            self.assertEqual(m["agentwire_events_appended_acking_total"], 0, "history before the first ack is out")
            self.assertEqual(m["agentwire_events_acked_acking_total"], 0)
            # An HTTP-only user never acks: its events are not in the ratio.
            other = {"Authorization": f"Bearer {wsclient.dev_token(srv.port, 'http_only')}"}
            status, t, _ = srv.request("POST", "/api/threads", {}, headers=other)
            status, _, _ = srv.request("POST", f"/api/threads/{t['thread_id']}/messages", {"content": "x"},
                                       headers=other)
            second = await c.request("user_message", {"content": "two", "thread_id": first["data"]["thread_id"]},
                                     id_="m2", want="ack")
            await c.recv_until(lambda f: f["type"] == "agent_completed" and f["run_id"] == second["data"]["run_id"])
            run_events = len([e for e in c.events() if e["run_id"] == second["data"]["run_id"]])
            await harness.wait_for_async(
                lambda: scrape(srv)[0]["agentwire_events_appended_acking_total"] == run_events,
                what="the second run counted on the acking stream")
            half = c.events()[-1]["seq"] - 2
            await c.send("ack_events", {"seq": half})
            await harness.wait_for_async(
                lambda: scrape(srv)[0]["agentwire_events_acked_acking_total"] == half - head, what="acked counted")
            # Two events unacknowledged and the user leaves: one thread waits for a client.
            await c.close()
            await harness.wait_for_async(
                lambda: scrape(srv)[0]["agentwire_threads_unacked_without_connection"] == 1,
                what="the unacknowledged thread counted (refreshed every 10 s)")
        finally:
            srv.stop()

    async def test_clickhouse_down_series_and_alert(self):
        port = harness.free_port()  # nothing listens here
        srv = harness.Server("--set", "analytics.enabled=true", "--set", f"analytics.url=http://127.0.0.1:{port}",
                             "--set", "analytics.flush_interval_ms=100", "--set", "analytics.retry_initial_ms=50",
                             "--set", "analytics.retry_max_ms=100").start()
        try:
            c = await Client.connect(srv.port, wsclient.dev_token(srv.port, "ch_user"))
            await c.request("user_message", {"content": "x"}, id_="m", want="ack")
            await c.recv_until(lambda f: f["type"] == "agent_completed")
            await c.close()
            for _ in range(200):
                m, _ = scrape(srv)
                if m["agentwire_analytics_spool_batches"] > 0 and m["agentwire_clickhouse_insert_errors_total"] > 2:
                    break
                await asyncio.sleep(0.02)
            self.assertEqual(m["agentwire_analytics_enabled"], 1)
            self.assertEqual(m["agentwire_clickhouse_up"], 0)
            self.assertGreater(m["agentwire_analytics_spool_bytes"], 0)
            self.assertEqual(m['agentwire_component_degraded{component="analytics"}'], 1)
            self.assertEqual(m["agentwire_ready"], 1)
            self.assertGreater(m['agentwire_analytics_rows_total{kind="event_delivered"}'], 0)
            code, out = promtool_check(srv.get("/metrics")[1])
            self.assertEqual(code, 0, out)
            for _ in range(100):
                status, alerts = srv.get("/health/alerts")
                if alerts["active"]:
                    break
                await asyncio.sleep(0.05)
            self.assertEqual([(a["name"], a["severity"]) for a in alerts["active"]],
                             [("AgentwireClickHouseDown", "info")])
        finally:
            srv.stop()
        firing = [l for l in srv.logs().splitlines() if "alert AgentwireClickHouseDown firing" in l]
        self.assertEqual(len(firing), 1, "logged once, not once per retry")
        self.assertIn("info", firing[0])


if __name__ == "__main__":
    harness.main()
