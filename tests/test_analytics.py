"""Analytics to a real ClickHouse (Debian's clickhouse-server 18.16, started per test on free
loopback ports): graceful degradation, an outage in the middle of load, a spool left by a
previous run, the spool cap, required mode, and a malformed batch moved aside."""
import asyncio
import os
import struct
import sys
import unittest
import zlib

sys.path.insert(0, os.path.dirname(__file__))
import fake_openai  # noqa: E402
import harness  # noqa: E402
import wsclient  # noqa: E402
from fake_openai import FakeOpenAI  # noqa: E402
from harness import ClickHouse, metric, metric_samples  # noqa: E402
from wsclient import Client  # noqa: E402

# Fast batching and retries so outages play out in seconds.
FAST = ["--set", "analytics.enabled=true", "--set", "analytics.flush_interval_ms=200",
        "--set", "analytics.retry_initial_ms=100", "--set", "analytics.retry_max_ms=400",
        "--set", "analytics.connect_timeout_ms=300", "--set", "analytics.request_timeout_ms=2000"]


def closed_port_url():
    return f"http://127.0.0.1:{harness.free_port()}"


def produced_by_kind(srv):
    status, text = srv.get("/metrics")
    assert status == 200
    return {dict(k)["kind"]: int(v) for k, v in metric_samples(text, "agentwire_analytics_rows_total").items()}



def analytics_details(srv):
    _, body = srv.get("/health")
    comp = next(c for c in body["components"] if c["name"] == "analytics")
    return comp


wait_for = harness.wait_for
wait_for_async = harness.wait_for_async


def counts_in_clickhouse(ch, db, final=False):
    rows = ch.rows(f"SELECT kind, count() FROM {db}.agentwire_events {'FINAL' if final else ''} GROUP BY kind")
    return {k: int(n) for k, n in rows}


async def chat(port, user, messages):
    """Sends `messages` user messages from one user and waits for each run to finish."""
    c = await Client.connect(port, wsclient.dev_token(port, user))
    for i in range(messages):
        ack = await c.request("user_message", {"content": f"hello {i}"}, id_=f"m{i}", want="ack")
        assert ack["type"] == "ack", ack
        run_id = ack["data"]["run_id"]
        await c.recv_until(lambda f: f.get("run_id") == run_id and f["type"] == "agent_completed")
    await c.close()


class GracefulDegradationTest(unittest.IsolatedAsyncioTestCase):
    async def test_unreachable_clickhouse_warns_once_and_chat_works_without_5xx(self):
        # The seed's "ClickHouse graceful degradation" test.
        srv = harness.Server(*FAST, "--set", "analytics.url=" + closed_port_url()).start()
        try:
            status, ready = srv.get("/health/ready")
            self.assertEqual(status, 200, ready)
            self.assertEqual([d["name"] for d in ready["degraded"]], ["analytics"])
            await asyncio.gather(*(chat(srv.port, f"user{i}", 3) for i in range(5)))
            # Several retries fail; the warning stays one line per outage.
            await wait_for_async(lambda: analytics_details(srv)["details"]["insert_errors"] >= 4,
                                 what="four failed attempts")
            for path in ("/health", "/health/ready", "/health/live", "/health/startup", "/metrics", "/"):
                status, _ = srv.get(path)
                self.assertLess(status, 500, path)
            comp = analytics_details(srv)
            self.assertEqual(comp["state"], "degraded")
            self.assertIn("unreachable", comp["reason"])
            self.assertGreater(comp["details"]["spool_batches"], 0)
            self.assertGreater(comp["details"]["insert_errors"], 1, "it keeps retrying")
            self.assertEqual(metric(srv, "agentwire_clickhouse_up"), 0)
        finally:
            srv.stop()
        warnings = [line for line in srv.logs().splitlines() if "is not storing analytics" in line]
        self.assertEqual(len(warnings), 1, warnings)
        self.assertIn("warn", warnings[0])


class OutageTest(unittest.IsolatedAsyncioTestCase):
    """Eight users chat without pause while ClickHouse fails under them and comes back."""

    async def run_outage(self, db, fail, recover, strict_before_merge):
        with ClickHouse() as ch:
            # Rate limiting is not the subject here: the clients chat as fast as the server answers.
            srv = harness.Server(*FAST, "--set", "analytics.url=" + ch.url, "--set", f"analytics.database={db}",
                                 "--set", "ws.max_messages_per_second=100000").start()
            try:
                self.assertEqual(analytics_details(srv)["state"], "healthy")
                stop_load = asyncio.Event()
                errors = []
                sent = [0] * 8

                async def load(n):
                    c = await Client.connect(srv.port, wsclient.dev_token(srv.port, f"u{n}"))
                    while not stop_load.is_set():
                        i = sent[n]
                        ack = await c.request("user_message", {"content": f"m{i}"}, id_=f"m{i}", want="ack")
                        if ack["type"] != "ack":
                            errors.append(ack)
                            break
                        run_id = ack["data"]["run_id"]
                        await c.recv_until(lambda f: f.get("run_id") == run_id and f["type"] == "agent_completed")
                        sent[n] += 1
                    await c.close()

                async def wait_more_messages(n, what):
                    target = sum(sent) + n
                    while sum(sent) < target:
                        self.assertFalse(errors, errors)
                        await asyncio.sleep(0.01)

                tasks = [asyncio.create_task(load(n)) for n in range(8)]
                await wait_more_messages(40, "load before the outage")
                await asyncio.to_thread(fail, ch)
                await wait_for_async(lambda: analytics_details(srv)["state"] == "degraded", what="analytics degraded")
                # Chat goes on during the outage, and what it produces is spooled.
                await wait_more_messages(40, "load during the outage")
                await wait_for_async(lambda: analytics_details(srv)["details"]["spool_batches"] > 0,
                                     what="batches spooled during the outage")
                await asyncio.to_thread(recover, ch)
                await wait_for_async(lambda: analytics_details(srv)["state"] == "healthy", what="ClickHouse back")
                await wait_more_messages(40, "load after the outage")
                stop_load.set()
                await asyncio.gather(*tasks)
                self.assertFalse(errors, errors)

                def drained():
                    d = analytics_details(srv)
                    return (d["state"] == "healthy" and d["details"]["spool_batches"] == 0
                            and d["details"]["queue_depth"] == 0
                            and produced_by_kind(srv).get("connection_closed") == 8)
                await wait_for_async(drained, what="spool drained and every connection_closed row recorded")
                produced = produced_by_kind(srv)
                appended = metric(srv, "agentwire_events_appended_total")
            finally:
                srv.stop()
            self.assertIn("rows inserted, 0 batches (0 bytes) left in the spool, 0 rows dropped", srv.logs())
            # A hung server may finish an insert its client gave up on after the duplicate check
            # looked for it; ReplacingMergeTree's key (batch_id, row_no) removes that copy at the
            # next merge, which is not under the test's control (OPTIMIZE … FINAL is a no-op while
            # a background merge holds the parts), so the count reads through FINAL instead.
            in_ch = counts_in_clickhouse(ch, db, final=not strict_before_merge)
            self.assertEqual(in_ch, produced)
            # Ground truth from the clients and the stream, not only from the server's own counters.
            self.assertEqual(in_ch["message_received"], sum(sent))
            self.assertEqual(in_ch["run_finished"], sum(sent))
            self.assertEqual(in_ch["event_delivered"], appended)
            self.assertEqual(in_ch["connection_opened"], 8)
            if strict_before_merge:
                # Killed: an insert either landed before the kill or not at all, and the check before
                # the retry tells which, so no (batch, row) pair is stored twice, even before a merge.
                dup = ch.rows(f"SELECT count() - uniqExact(batch_id, row_no) FROM {db}.agentwire_events")
                self.assertEqual(dup, [["0"]])
                runs = ch.rows(f"SELECT agent, outcome, count() FROM {db}.agentwire_runs GROUP BY agent, outcome")
                self.assertEqual(runs, [["echo", "completed", str(sum(sent))]])

    async def test_killed_in_the_middle_of_load_every_row_lands_exactly_once(self):
        # SIGKILL: the server is gone at once, an insert in flight has an unknown outcome and is
        # looked up before it is sent again.
        await self.run_outage("outage", lambda ch: ch.kill(), lambda ch: ch.start(), strict_before_merge=True)

    async def test_hung_in_the_middle_of_load_trips_the_timeout_and_every_row_lands_once(self):
        # SIGSTOP: connections stay open and nothing answers; only the request timeout notices.
        await self.run_outage("hung", lambda ch: ch.pause(), lambda ch: ch.resume(), strict_before_merge=False)


class SpoolTest(unittest.IsolatedAsyncioTestCase):
    async def test_restart_with_a_non_empty_spool_drains_it_on_start(self):
        db = "respool"
        url = closed_port_url()
        srv = harness.Server(*FAST, "--set", "analytics.url=" + url, "--set", f"analytics.database={db}").start()
        try:
            await asyncio.gather(*(chat(srv.port, f"user{i}", 4) for i in range(4)))
            await wait_for_async(lambda: produced_by_kind(srv).get("connection_closed") == 4,
                                 what="every connection_closed row recorded")
            first_run = produced_by_kind(srv)
        finally:
            srv.stop()
        spool_dir = os.path.join(srv.dir, "analytics-spool")
        segments = [f for f in os.listdir(spool_dir) if f.endswith(".awb")]
        self.assertTrue(segments, "SIGTERM leaves what ClickHouse did not take in the spool")
        self.assertIn("0 rows inserted", srv.logs())

        ch = ClickHouse()
        ch.http_port = int(url.rsplit(":", 1)[1])  # ClickHouse now answers where the spool was aimed
        harness.subprocess.run([os.path.join(harness.SCRIPTS, "clickhouse-config"), ch.dir, str(ch.http_port),
                                str(ch.tcp_port)], check=True)
        with ch:
            srv2 = harness.Server(*FAST, "--set", "analytics.url=" + url, "--set", f"analytics.database={db}",
                                  data_dir=srv.dir).start()
            try:
                wait_for(lambda: analytics_details(srv2)["details"]["spool_batches"] == 0, what="spool drained")
                self.assertEqual(counts_in_clickhouse(ch, db), first_run)
                self.assertEqual([f for f in os.listdir(spool_dir) if f.endswith(".awb")], [])
            finally:
                srv2.stop()
        self.assertIn("left in the spool by a previous run", srv2.logs())

    async def test_spool_cap_exceeded_drops_are_counted_and_the_process_is_fine(self):
        srv = harness.Server(*FAST, "--set", "analytics.url=" + closed_port_url(),
                             "--set", "analytics.spool_max_mb=0").start()
        try:
            await asyncio.gather(*(chat(srv.port, f"user{i}", 3) for i in range(4)))
            await wait_for_async(lambda: produced_by_kind(srv).get("connection_closed") == 4,
                                 what="every connection_closed row recorded")
            # Every row produced ends up dropped (and counted), none is lost uncounted.
            await wait_for_async(lambda: metric(srv, "agentwire_analytics_rows_dropped_total", reason="spool_full")
                                 == sum(produced_by_kind(srv).values()), what="every row counted as dropped")
            self.assertGreater(metric(srv, "agentwire_analytics_rows_dropped_total", reason="spool_full"), 0)
            status, _ = srv.get("/health/ready")
            self.assertEqual(status, 200)
            await chat(srv.port, "after", 2)  # chat is unaffected
        finally:
            srv.stop()
        full = [line for line in srv.logs().splitlines() if "spool" in line and "full" in line]
        self.assertEqual(len(full), 1, full)

    async def test_malformed_batch_is_moved_aside_and_the_rest_is_stored(self):
        db = "malformed"
        srv = harness.Server(*FAST, "--set", "analytics.url=" + closed_port_url(),
                             "--set", f"analytics.database={db}")
        spool_dir = os.path.join(srv.dir, "analytics-spool")
        os.makedirs(spool_dir)

        def segment(n, batch_id, body):
            payload = f"{batch_id}\n2026-11-28\n1\n".encode() + body
            data = b"AWSPOOL1" + struct.pack("<IQ", zlib.crc32(payload), len(payload)) + payload
            with open(os.path.join(spool_dir, f"seg-{n:020}.awb"), "wb") as f:
                f.write(data)

        good = (b'{"batch_id":"good-1","row_no":0,"event_date":"2026-11-28","ts":1795838400,'
                b'"ts_ms":1795838400000,"kind":"run_finished","user_id":"u","agent":"echo","outcome":"completed"}\n')
        segment(1, "bad-1", b'{"batch_id":"bad-1","row_no":"not a number"}\n')
        segment(2, "good-1", good)
        with ClickHouse() as ch:
            srv.args = [a if not a.startswith("analytics.url=") else "analytics.url=" + ch.url for a in srv.args]
            srv.start()
            try:
                wait_for(lambda: analytics_details(srv)["details"]["spool_batches"] == 0, what="spool drained")
                self.assertEqual(counts_in_clickhouse(ch, db).get("run_finished"), 1)
                rejected = os.listdir(os.path.join(spool_dir, "rejected"))
                self.assertIn("seg-00000000000000000001.awb.rejected", rejected)
                self.assertEqual(metric(srv, "agentwire_analytics_rows_dropped_total", reason="rejected"), 1)
                self.assertEqual(analytics_details(srv)["state"], "healthy")
            finally:
                srv.stop()


def create_table_of_2026_11_28(ch, db):
    """agentwire_events as versions before the token columns created it."""
    ch.query(f"CREATE TABLE {db}.agentwire_events (event_date Date, ts DateTime('UTC'), ts_ms UInt64, "
             "node String, kind String, user_id String, thread_id String, run_id String, "
             "connection_id String, agent String, outcome String, event_type String, reason String, "
             "seq Int64, latency_us Int64, duration_ms Int64, count Int64, code Int64, batch_id String, "
             "row_no UInt32) ENGINE = ReplacingMergeTree() PARTITION BY toYYYYMM(event_date) "
             "ORDER BY (user_id, ts, batch_id, row_no)")


class SchemaTest(unittest.TestCase):
    def test_a_materialized_runs_view_from_an_earlier_version_is_replaced_by_the_plain_view(self):
        db = "migrated"
        with ClickHouse() as ch:
            ch.query(f"CREATE DATABASE {db}")
            # The schema as the earlier version created it (the table itself is unchanged).
            create_table_of_2026_11_28(ch, db)
            ch.query(f"CREATE MATERIALIZED VIEW {db}.agentwire_runs ENGINE = ReplacingMergeTree() "
                     "PARTITION BY toYYYYMM(event_date) ORDER BY (agent, ts, batch_id, row_no) AS SELECT "
                     f"event_date, ts, agent, outcome, batch_id, row_no FROM {db}.agentwire_events "
                     "WHERE kind = 'run_finished'")
            ch.query(f"INSERT INTO {db}.agentwire_events (event_date, ts, kind, agent, outcome, batch_id, row_no) "
                     "VALUES ('2026-11-28', 1795838400, 'run_finished', 'old', 'completed', 'old-1', 0)")
            srv = harness.Server(*FAST, "--set", "analytics.url=" + ch.url,
                                 "--set", f"analytics.database={db}").start()
            try:
                self.assertEqual(analytics_details(srv)["state"], "healthy")
                engine = ch.rows(f"SELECT engine FROM system.tables WHERE database = '{db}' "
                                 "AND name = 'agentwire_runs'")
                self.assertEqual(engine, [["View"]])
                runs = ch.rows(f"SELECT agent, batch_id, input_tokens FROM {db}.agentwire_runs")
                self.assertEqual(runs, [["old", "old-1", "0"]], "the rows written before are still there")
            finally:
                srv.stop()

    def test_token_columns_are_added_to_an_earlier_table_and_a_runs_usage_lands_in_them(self):
        db = "tokens"
        fake = FakeOpenAI()
        with ClickHouse() as ch:
            ch.query(f"CREATE DATABASE {db}")
            create_table_of_2026_11_28(ch, db)
            # The plain view as the previous version made it: without the token columns.
            ch.query(f"CREATE VIEW {db}.agentwire_runs AS SELECT event_date, ts, ts_ms, node, agent, outcome, "
                     "user_id, thread_id, run_id, duration_ms, count AS tool_calls, reason, batch_id, row_no "
                     f"FROM {db}.agentwire_events WHERE kind = 'run_finished'")
            srv = harness.Server(*FAST, "--set", "analytics.url=" + ch.url, "--set", f"analytics.database={db}",
                                 "--set", f"agents.llm_base_url=http://127.0.0.1:{fake.port}/v1").start()
            try:
                self.assertEqual(analytics_details(srv)["state"], "healthy")

                async def run():
                    c = await Client.connect(srv.port, wsclient.dev_token(srv.port, "counted"))
                    ack = await c.request("user_message", {"content": "stream", "agent": "llm"}, id_="m", want="ack")
                    await c.recv_until(lambda f: f.get("run_id") == ack["data"]["run_id"]
                                       and f["type"] == "agent_completed")
                    await c.close()
                asyncio.run(run())
                query = (f"SELECT agent, reason, input_tokens, output_tokens FROM {db}.agentwire_runs "
                         "WHERE agent = 'llm'")
                wait_for(lambda: ch.rows(query), what="the run's row in ClickHouse")
                self.assertEqual(ch.rows(query), [["llm", "stop", str(fake_openai.PROMPT_TOKENS),
                                                   str(fake_openai.COMPLETION_TOKENS)]])
            finally:
                srv.stop()
                fake.close()


class RequiredModeTest(unittest.TestCase):
    def test_required_and_clickhouse_down_is_not_ready_with_the_reason_until_it_answers(self):
        ch = ClickHouse()
        srv = harness.Server(*FAST, "--set", "analytics.required=true", "--set", "analytics.url=" + ch.url)
        srv.start(wait_ready=False)
        try:
            def not_ready_body():
                status, body = srv.get("/health/ready")
                return body if status == 503 and body.get("phase") == "running" else None
            body = wait_for(not_ready_body, what="startup finished, not ready")
            names = [c["name"] for c in body["not_ready"]]
            self.assertEqual(names, ["analytics"])
            self.assertIn("unreachable", body["not_ready"][0]["reason"])
            status, _ = harness.raw_upgrade(srv.port, headers={"Authorization": "Bearer x"})[0:2]
            self.assertEqual(status, 503, "no WebSocket is accepted while a critical component is not ready")
            with ch:
                srv.wait_ready(timeout=20)  # it recovers by itself once ClickHouse answers
        finally:
            srv.stop()


if __name__ == "__main__":
    harness.main()
