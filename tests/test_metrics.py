"""GET /metrics on the real binary: Prometheus text format, and the named series move as
expected through connect, chat and disconnect; the self-check's traffic is not counted."""
import asyncio
import os
import re
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402
import wsclient  # noqa: E402
from wsclient import Client  # noqa: E402

LINE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$')


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
            self.assertEqual(before["agentwire_handlers_registered"], 8)
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
            during, _ = scrape(srv)
            self.assertEqual(during["agentwire_connections"], 1)
            self.assertEqual(during["agentwire_users_connected"], 1)
            self.assertEqual(during["agentwire_websocket_connections"], 1)
            events = len([f for f in c.frames if "seq" in f and f["run_id"] == ack["data"]["run_id"]])
            self.assertEqual(during["agentwire_events_appended_total"], events)
            self.assertEqual(during["agentwire_events_sent_total"], events)
            self.assertEqual(during["agentwire_delivery_failures_total"], 0)
            await c.close()
            for _ in range(100):
                after, _ = scrape(srv)
                if after["agentwire_connections"] == 0:
                    break
                await asyncio.sleep(0.02)
            self.assertEqual(after["agentwire_connections"], 0)
            self.assertEqual(after["agentwire_users_connected"], 0)
            self.assertGreaterEqual(after["process_cpu_seconds_total"], before["process_cpu_seconds_total"])
        finally:
            srv.stop()


if __name__ == "__main__":
    harness.main()
