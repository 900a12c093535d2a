#!/usr/bin/env bash
# Produces the figures at the top of docs/performance.md in one run on this machine, so the ratios
# compare agentwire with the Beast echo baseline under the same conditions. Every server runs on
# core 0 and the load tool on core 1 (taskset); server CPU is read from /proc/PID/stat over the
# measured window.
#   bench/run-figures.sh [BUILD_DIR]      (default: build; build it with `make build` first)
# Writes JSON lines to $BUILD_DIR/figures.jsonl, the log of each step to stdout, and the summary
# table last. Takes about 5 minutes (ROUNDS=3).
set -euo pipefail
cd "$(dirname "$0")/.."
B="${1:-build}"
OUT="$B/figures.jsonl"
TMP="$(mktemp -d)"
: > "$OUT"
SERVER_CPU="${SERVER_CPU:-0}"
LOAD_CPU="${LOAD_CPU:-1}"
IDLE_CONNECTIONS="${IDLE_CONNECTIONS:-15000}"
ROUNDS="${ROUNDS:-3}"  # alternations of the CPU pair, and Poisson runs of agentwire
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

# The two CPU figures alternate, ROUNDS times each: on this VM the host's speed moves from minute to
# minute (the echo's own cost has measured 13 and 22 µs in two runs an hour apart), so one run of each
# judges the minute, not the server. The summary gives every run and the ratio of the medians.
for r in $(seq "$ROUNDS"); do
  echo "== CPU per frame ($r/$ROUNDS): Beast echo, 100 connections closed loop, 200-byte frames"
  start_echo
  load "echo_100#$r" --mode echo --url "ws://127.0.0.1:$ECHO_PORT" -c 100 -d 10 --warmup 2 --server-pid "$ECHO_PID" \
    --message-bytes 200
  stop_all
  echo "== CPU per event ($r/$ROUNDS): agentwire, 100 users closed loop, user_message -> agent_completed (echo agent)"
  start_agentwire
  load "chat_100#$r" --mode chat --url "ws://127.0.0.1:$AW_PORT" --secret-file "$TMP/aw/dev-secret" -c 100 -d 10 \
    --warmup 2 --server-pid "$AW_PID"
  stop_all
done

echo "== the machine: a fixed unit of CPU work on core $SERVER_CPU, 50 ms windows slower than the median"
taskset -c "$SERVER_CPU" "$B/cpu_probe" --seconds 10 --json "$TMP/line" | grep -v "^{" || true
record cpu_probe

echo "== 1,000 connections, Poisson-like arrivals, mean 1 msg/s each: Beast echo round trips (the latency baseline)"
start_echo
load poisson_echo_1000 --mode echo --url "ws://127.0.0.1:$ECHO_PORT" -c 1000 -d 20 --warmup 3 --think-ms 1000 \
  --arrivals poisson --server-pid "$ECHO_PID" --message-bytes 200
stop_all

for r in $(seq "$ROUNDS"); do
  echo "== 1,000 users, Poisson-like arrivals, mean 1 msg/s each (exponential think time, random offsets) ($r/$ROUNDS)"
  start_agentwire
  load "poisson_1000#$r" --mode chat --url "ws://127.0.0.1:$AW_PORT" --secret-file "$TMP/aw/dev-secret" -c 1000 \
    -d 20 --warmup 3 --think-ms 1000 --arrivals poisson --server-pid "$AW_PID"
  stop_all
done

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
import json, statistics, sys
rows, runs = {}, {}
for line in open(sys.argv[1]):
    d = json.loads(line)
    label = d.get("label", d["mode"])
    rows[label] = d
    runs.setdefault(label.split("#")[0], []).append(d)  # "chat_100#2": the second round of chat_100
def get(label, *path):
    d = rows.get(label, {})
    for p in path:
        d = d.get(p, {}) if isinstance(d, dict) else {}
    return d if d != {} else None
def values(name, *path):  # one value per round, in run order
    out = []
    for d in runs.get(name, []):
        for p in path:
            d = d.get(p, {}) if isinstance(d, dict) else {}
        if d != {}:
            out.append(d)
    return out
def listed(xs, fmt):
    return " / ".join(fmt.format(x) for x in xs)
echo, chat = values("echo_100", "cpu_us_per_echo"), values("chat_100", "cpu_us_per_event")
print("| figure | baseline | agentwire | ratio | target |")
print("|---|---|---|---|---|")
if echo and chat:
    e, c = statistics.median(echo), statistics.median(chat)
    pairs = listed([c / e for e, c in zip(echo, chat)], "{:.2f}×")
    print(f"| server CPU per delivered frame, 100 users closed loop, median of {len(chat)} alternated runs "
          f"| Beast echo **{e:.2f} µs** ({listed(echo, '{:.2f}')}) | **{c:.2f} µs** ({listed(chat, '{:.2f}')}) "
          f"| **{c / e:.2f}×** (each pair: {pairs}) | ≤ 2× |")
def load_of(label):
    cpu, window = get(label, "server_cpu_s"), get(label, "window_s")
    return f", server busy {100 * cpu / window:.0f}% of its core" if cpu and window else ""
rtt = get("poisson_echo_1000", "rtt_ms")
lat = values("poisson_1000", "latency_ms", "agent_completed")
if lat:
    base = "–"
    if rtt:
        base = (f"Beast echo round trip, same arrivals: p50 {rtt['p50']:.2f} ms, p99 {rtt['p99']:.2f} ms"
                f"{load_of('poisson_echo_1000')}")
    p99 = [x["p99"] for x in lat]
    each = "; ".join(f"p50 {x['p50']:.2f}, p95 {x['p95']:.2f}, p99 {x['p99']:.2f} ms" for x in lat)
    rate = listed(values("poisson_1000", "runs_per_s"), "{:.0f}")
    print(f"| user_message → agent_completed, 1,000 users, Poisson 1 msg/s, {len(lat)} runs | {base} "
          f"| **p99 median {statistics.median(p99):.2f} ms** ({each}; {rate} runs/s) | – | p99 ≤ 5 ms |")
lat = get("lockstep_1000", "latency_ms", "agent_completed")
if lat:
    print(f"| user_message → agent_completed, 1,000 users lockstep (burst) | – | p50 {lat['p50']:.2f} ms, "
          f"p95 {lat['p95']:.2f} ms, p99 {lat['p99']:.2f} ms ({get('lockstep_1000', 'runs_per_s'):.0f} runs/s"
          f"{load_of('lockstep_1000')}) | – | p99 ≤ 100 ms |")
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
