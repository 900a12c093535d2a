#!/usr/bin/env bash
# Produces the figures at the top of docs/performance.md in one run on this machine, so the ratios
# compare agentwire with the Beast echo baseline under the same conditions. Every server runs on
# core 0 and the load tool on core 1 (taskset); server CPU is read from /proc/PID/stat over the
# measured window.
#   bench/run-figures.sh [BUILD_DIR]      (default: build; build it with `make build` first)
# Writes JSON lines to $BUILD_DIR/figures.jsonl, the log of each step to stdout, and the summary
# table last. Takes about 4 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
B="${1:-build}"
OUT="$B/figures.jsonl"
TMP="$(mktemp -d)"
: > "$OUT"
SERVER_CPU="${SERVER_CPU:-0}"
LOAD_CPU="${LOAD_CPU:-1}"
IDLE_CONNECTIONS="${IDLE_CONNECTIONS:-15000}"
cleanup() { pkill -f "$TMP" 2>/dev/null || true; rm -rf "$TMP"; }
AW_PID=""
ECHO_PID=""
trap cleanup EXIT
ulimit -n "$(ulimit -Hn)"

echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, $(uname -r), $(date -u +%F)," \
  "server on core $SERVER_CPU, load on core $LOAD_CPU"
echo "== startup to ready (embedded defaults, its READY=1) vs exec of agentwire --version"
AW_SERVER_CPU="$SERVER_CPU" taskset -c "$LOAD_CPU" "$B/startup_bench" --benchmark_repetitions=5 --benchmark_report_aggregates_only=true \
  --benchmark_format=json 2>/dev/null > "$TMP/startup.json"
python3 - "$TMP/startup.json" "$OUT" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
med = {b["run_name"].split("/")[0]: b["real_time"] for b in d["benchmarks"] if b.get("aggregate_name") == "median"}
line = {"mode": "startup", "median_ms": {k: round(v, 2) for k, v in med.items()}}
print(json.dumps(line))
open(sys.argv[2], "a").write(json.dumps(line) + "\n")
EOF

start_agentwire() {
  rm -rf "$TMP/aw"; mkdir -p "$TMP/aw"
  taskset -c "$SERVER_CPU" "$B/agentwire" serve --port 0 --port-file "$TMP/aw/port" \
    --set "store.path=$TMP/aw/agentwire.db" --log-level warn --set ws.max_connections_per_user=100000 --set ws.max_messages_per_second=100000 \
    --set server.max_http_connections_per_ip=100000 --set server.max_http_connections=100000 \
    --set agents.max_queue=100000 "$@" > "$TMP/aw/log" 2>&1 &
  AW_PID=$!
  for _ in $(seq 500); do [[ -s "$TMP/aw/port" ]] && break; sleep 0.02; done
  AW_PORT=$(cat "$TMP/aw/port")
  until curl -sf "http://127.0.0.1:$AW_PORT/health/ready" >/dev/null; do sleep 0.02; done
}
start_echo() {
  rm -f "$TMP/echo.port"
  taskset -c "$SERVER_CPU" "$B/echo_server" --port 0 --port-file "$TMP/echo.port" --threads 2 "$TMP" \
    > /dev/null 2>&1 &
  ECHO_PID=$!
  for _ in $(seq 500); do [[ -s "$TMP/echo.port" ]] && break; sleep 0.02; done
  ECHO_PORT=$(cat "$TMP/echo.port")
}
stop_all() {
  # Never `kill 0`: that would signal this script's whole process group.
  for p in ${AW_PID:-} ${ECHO_PID:-}; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  AW_PID=""; ECHO_PID=""
}
record() {  # label: the last JSON line a tool wrote to $TMP/line, labelled, into $OUT
  python3 -c 'import json,sys; d=json.loads(open(sys.argv[1]).read().splitlines()[-1]); d["label"]=sys.argv[2]; print(json.dumps(d))' \
    "$TMP/line" "$1" >> "$OUT"
}
load() {  # label, then loadgen arguments
  local label=$1; shift
  taskset -c "$LOAD_CPU" "$B/loadgen" "$@" --json "$TMP/line" 2>/dev/null | grep -v "^{" || true
  record "$label"
}

echo "== CPU per frame: Beast echo, 100 connections closed loop, 200-byte frames"
start_echo
load echo_100 --mode echo --url "ws://127.0.0.1:$ECHO_PORT" -c 100 -d 10 --warmup 2 --server-pid "$ECHO_PID" \
  --message-bytes 200
stop_all
echo "== CPU per event: agentwire, 100 users closed loop, user_message -> agent_completed (echo agent)"
start_agentwire
load chat_100 --mode chat --url "ws://127.0.0.1:$AW_PORT" --secret-file "$TMP/aw/dev-secret" -c 100 -d 10 \
  --warmup 2 --server-pid "$AW_PID"
stop_all

echo "== the machine: a fixed unit of CPU work on core $SERVER_CPU, 50 ms windows slower than the median"
taskset -c "$SERVER_CPU" "$B/cpu_probe" --seconds 10 --json "$TMP/line" | grep -v "^{" || true
record cpu_probe

echo "== 1,000 connections, Poisson-like arrivals, mean 1 msg/s each: Beast echo round trips (the latency baseline)"
start_echo
load poisson_echo_1000 --mode echo --url "ws://127.0.0.1:$ECHO_PORT" -c 1000 -d 20 --warmup 3 --think-ms 1000 \
  --arrivals poisson --server-pid "$ECHO_PID" --message-bytes 200
stop_all

echo "== 1,000 users, Poisson-like arrivals, mean 1 msg/s each (exponential think time, random offsets)"
start_agentwire
load poisson_1000 --mode chat --url "ws://127.0.0.1:$AW_PORT" --secret-file "$TMP/aw/dev-secret" -c 1000 \
  -d 20 --warmup 3 --think-ms 1000 --arrivals poisson --server-pid "$AW_PID"
stop_all

echo "== 1,000 users in lockstep (each sends 1 s after its answer: bursts of 1,000 at once)"
start_agentwire
load lockstep_1000 --mode chat --url "ws://127.0.0.1:$AW_PORT" --secret-file "$TMP/aw/dev-secret" -c 1000 \
  -d 15 --warmup 3 --think-ms 1000 --arrivals lockstep --server-pid "$AW_PID"
stop_all

echo "== RSS per idle connection, $IDLE_CONNECTIONS connections"
start_echo
load idle_echo --mode idle --url "ws://127.0.0.1:$ECHO_PORT" -c "$IDLE_CONNECTIONS" -d 3 --warmup 2 \
  --server-pid "$ECHO_PID"
stop_all
start_agentwire
load idle_agentwire --mode idle --url "ws://127.0.0.1:$AW_PORT" --secret-file "$TMP/aw/dev-secret" \
  -c "$IDLE_CONNECTIONS" -d 3 --warmup 2 --server-pid "$AW_PID"
stop_all

echo
echo "== summary (this run; server on core $SERVER_CPU, load on core $LOAD_CPU)"
python3 - "$OUT" <<'EOF'
import json, sys
rows = {}
for line in open(sys.argv[1]):
    d = json.loads(line)
    rows[d.get("label", d["mode"])] = d
def get(label, *path):
    d = rows.get(label, {})
    for p in path:
        d = d.get(p, {}) if isinstance(d, dict) else {}
    return d if d != {} else None
echo, chat = get("echo_100", "cpu_us_per_echo"), get("chat_100", "cpu_us_per_event")
print("| figure | baseline | agentwire | ratio | target |")
print("|---|---|---|---|---|")
if echo and chat:
    print(f"| server CPU per delivered frame, 100 users closed loop | Beast echo {echo:.2f} µs | {chat:.2f} µs | "
          f"{chat / echo:.2f}× | ≤ 2× |")
def load_of(label):
    cpu, window = get(label, "server_cpu_s"), get(label, "window_s")
    return f", server busy {100 * cpu / window:.0f}% of its core" if cpu and window else ""
rtt = get("poisson_echo_1000", "rtt_ms")
for label, name in (("poisson_1000", "1,000 users, Poisson 1 msg/s"), ("lockstep_1000", "1,000 users lockstep (burst)")):
    lat = get(label, "latency_ms", "agent_completed")
    if lat:
        target = "p99 ≤ 5 ms" if label.startswith("poisson") else "p99 ≤ 100 ms"
        base = "–"
        if rtt and label.startswith("poisson"):
            base = (f"Beast echo round trip, same arrivals: p50 {rtt['p50']:.2f} ms, p99 {rtt['p99']:.2f} ms"
                    f"{load_of('poisson_echo_1000')}")
        print(f"| user_message → agent_completed, {name} | {base} | p50 {lat['p50']:.2f} ms, p95 {lat['p95']:.2f} ms, "
              f"p99 {lat['p99']:.2f} ms ({get(label, 'runs_per_s'):.0f} runs/s{load_of(label)}) | – | {target} |")
probe = rows.get("cpu_probe")
if probe:
    print(f"| the machine: 50 ms windows in which a fixed CPU loop on the server's core ran slower than its median | – | "
          f"{probe['windows_over_1_5x']} of {probe['windows']} over 1.5×, {probe['windows_over_2x']} over 2×, "
          f"worst {probe['worst_ratio']:.1f}× | – | – |")
ie, ia = get("idle_echo", "bytes_per_connection"), get("idle_agentwire", "bytes_per_connection")
if ie and ia:
    n = get("idle_agentwire", "connected")
    print(f"| RSS per idle authenticated connection, {n} connections | Beast echo {ie / 1024:.1f} KB | "
          f"{ia / 1024:.1f} KB | {ia / ie:.2f}× | ≤ 4 KB |")
st = get("startup", "median_ms")
if st:
    base = next((v for k, v in st.items() if "Version" in k), None)
    ready = next((v for k, v in st.items() if "Ready" in k), None)
    if base is not None and ready is not None:
        print(f"| startup to ready, embedded defaults | exec --version {base:.1f} ms | {ready:.1f} ms | – | ≤ 50 ms |")
EOF
echo "JSON lines: $OUT"
