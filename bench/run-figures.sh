#!/usr/bin/env bash
# Produces every figure in docs/performance.md in one run on this machine, so the ratios
# compare agentwire with the Beast echo baseline under the same conditions.
#   bench/run-figures.sh [BUILD_DIR]      (default: build; build it with `make build` first)
# Writes JSON lines to $BUILD_DIR/figures.jsonl and a summary to stdout.
set -euo pipefail
cd "$(dirname "$0")/.."
B="${1:-build}"
OUT="$B/figures.jsonl"
TMP="$(mktemp -d)"
: > "$OUT"
cleanup() { pkill -f "$TMP" 2>/dev/null || true; rm -rf "$TMP"; }
AW_PID=""
ECHO_PID=""
trap cleanup EXIT
ulimit -n "$(ulimit -Hn)"

echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, $(uname -r), $(date -u +%F)"
echo "== startup to ready (embedded defaults) vs exec of agentwire --version"
"$B/startup_bench" --benchmark_repetitions=5 --benchmark_report_aggregates_only=true 2>/dev/null | grep -E "_(median|mean)"

start_agentwire() {
  rm -rf "$TMP/aw"; mkdir -p "$TMP/aw"
  "$B/agentwire" serve --port 0 --port-file "$TMP/aw/port" --set "store.path=$TMP/aw/agentwire.db" \
    --log-level warn --set ws.max_connections_per_user=100000 --set server.max_http_connections_per_ip=100000 --set server.max_http_connections=100000 --set agents.max_queue=100000 "$@" \
    > "$TMP/aw/log" 2>&1 &
  for _ in $(seq 200); do [[ -s "$TMP/aw/port" ]] && break; sleep 0.02; done
  AW_PID=$(pgrep -n -f "$TMP/aw/port")
  AW_PORT=$(cat "$TMP/aw/port")
  until curl -sf "http://127.0.0.1:$AW_PORT/health/ready" >/dev/null; do sleep 0.02; done
}
start_echo() {
  "$B/echo_server" --port 0 --port-file "$TMP/echo.port" --threads 2 "$TMP" > /dev/null 2>&1 &
  for _ in $(seq 200); do [[ -s "$TMP/echo.port" ]] && break; sleep 0.02; done
  ECHO_PID=$(pgrep -n -f "echo_server.*$TMP")
  ECHO_PORT=$(cat "$TMP/echo.port")
}
stop_all() {
  # Never `kill 0`: that would signal this script's whole process group.
  for p in ${AW_PID:-} ${ECHO_PID:-}; do kill "$p" 2>/dev/null || true; done
  AW_PID=""; ECHO_PID=""
  sleep 0.5
  rm -f "$TMP/echo.port"
}

for c in 100 1000; do
  echo "== CPU per frame: Beast echo, $c connections, 200-byte frames"
  start_echo
  "$B/loadgen" --mode echo --url "ws://127.0.0.1:$ECHO_PORT" -c "$c" -d 10 --warmup 2 --server-pid "$ECHO_PID" \
    --message-bytes 200 --json "$OUT" 2>/dev/null | grep -v "^{" || true
  stop_all
  echo "== chat: $c users, user_message -> agent_completed (echo agent), closed loop"
  start_agentwire
  "$B/loadgen" --mode chat --url "ws://127.0.0.1:$AW_PORT" --secret-file "$TMP/aw/dev-secret" -c "$c" -d 10 \
    --warmup 2 --server-pid "$AW_PID" --json "$OUT" 2>/dev/null | grep -v "^{" || true
  stop_all
done

echo "== chat: 1000 users, one message per user per second (open loop, think time 1 s)"
start_agentwire
"$B/loadgen" --mode chat --url "ws://127.0.0.1:$AW_PORT" --secret-file "$TMP/aw/dev-secret" -c 1000 -d 15 \
  --warmup 3 --think-ms 1000 --server-pid "$AW_PID" --json "$OUT" 2>/dev/null | grep -v "^{" || true
stop_all

echo "== RSS per idle connection, 10,000 connections"
start_echo
"$B/loadgen" --mode idle --url "ws://127.0.0.1:$ECHO_PORT" -c 10000 -d 3 --warmup 2 --server-pid "$ECHO_PID" \
  --json "$OUT" 2>/dev/null | grep -v "^{" || true
stop_all
start_agentwire
"$B/loadgen" --mode idle --url "ws://127.0.0.1:$AW_PORT" --secret-file "$TMP/aw/dev-secret" -c 10000 -d 3 \
  --warmup 2 --server-pid "$AW_PID" --json "$OUT" 2>/dev/null | grep -v "^{" || true
stop_all
echo "JSON lines: $OUT"
