#!/usr/bin/python3
"""Chunk rollup, before/after in one run: events per run and server CPU per run for a 60 KB echo
answer and for an LLM answer streamed at 150 tokens/s (the fake OpenAI server of the tests), with
agents.chunk_window_ms=0 (every delta its own chunk) and the default 30. The server is pinned to
core 0 and this client to core 1; server CPU is read from /proc/PID/stat around the runs.

Usage: AW_BIN=build-ci/agentwire bench/rollup-figures.py [ECHO_RUNS] [LLM_RUNS]
"""
import asyncio
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))
import harness  # noqa: E402
import wsclient  # noqa: E402
from fake_openai import FakeOpenAI  # noqa: E402
from wsclient import Client  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


async def runs(srv, user, content, agent, n):
    c = await Client.connect(srv.port, wsclient.dev_token(srv.port, user))
    await c.send("ping")
    events = 0
    cpu0 = cpu_seconds(srv.proc.pid)
    for i in range(n):
        ack = await c.request("user_message", {"content": content, "agent": agent}, id_=f"m{i}", want="ack")
        run = ack["data"]["run_id"]
        done = await c.recv_until(lambda f: f.get("run_id") == run and f["type"] in
                                  ("agent_completed", "agent_error", "agent_stopped"), timeout=120)
        assert done["type"] == "agent_completed", done
        events += sum(1 for f in c.frames if f.get("run_id") == run and "seq" in f)
        await c.send("ack_events", {"seq": done["seq"]})
        c.frames.clear()
    cpu = cpu_seconds(srv.proc.pid) - cpu0
    await c.close()
    return events / n, cpu / n * 1000


async def main():
    echo_runs = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    llm_runs = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    os.sched_setaffinity(0, {1})
    fake = FakeOpenAI()
    big = " ".join(["word"] * 12000)
    rows = []
    for window in (0, 30):
        srv = harness.Server("--set", f"agents.chunk_window_ms={window}",
                             "--set", f"agents.llm_base_url=http://127.0.0.1:{fake.port}/v1",
                             "--set", "ws.max_messages_per_second=100000").start()
        os.sched_setaffinity(srv.proc.pid, {0})
        try:
            ev, ms = await runs(srv, "bench_echo", big, "echo", echo_runs)
            rows.append({"case": "60 KB echo", "chunk_window_ms": window, "events_per_run": round(ev, 1),
                         "server_cpu_ms_per_run": round(ms, 2), "runs": echo_runs})
            ev, ms = await runs(srv, "bench_llm", "tokens 300", "llm", llm_runs)
            rows.append({"case": "LLM 300 tokens at 150/s", "chunk_window_ms": window, "events_per_run": round(ev, 1),
                         "server_cpu_ms_per_run": round(ms, 2), "runs": llm_runs})
        finally:
            srv.stop()
    fake.close()
    for r in rows:
        print(json.dumps(r))
    print("\n| case | chunk_window_ms | events per run | server CPU per run |\n|---|---|---|---|")
    for r in rows:
        print(f"| {r['case']} | {r['chunk_window_ms']} | {r['events_per_run']} | {r['server_cpu_ms_per_run']} ms |")


asyncio.run(main())
