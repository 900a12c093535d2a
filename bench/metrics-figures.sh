#!/usr/bin/env bash
# The metrics-overhead figure of docs/performance.md: the per-event work metrics add to the
# delivery path (metrics_bench) beside the CPU per delivered event of the full path (loadgen,
# 100 users closed loop), measured in the same run.
#   bench/metrics-figures.sh [BUILD_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
B="${1:-build}"
TMP="$(mktemp -d)"
AW_PID=""
cleanup() { [[ -n "$AW_PID" ]] && kill "$AW_PID" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$TMP"; }
trap cleanup EXIT
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, $(uname -r), $(date -u +%F)"
echo "== metrics_bench"
"$B/metrics_bench" --benchmark_repetitions=3 --benchmark_report_aggregates_only=true 2>/dev/null | grep -E "_median"
echo "== chat: 100 users, closed loop, CPU per delivered event"
"$B/agentwire" serve --port 0 --port-file "$TMP/port" --set "store.path=$TMP/agentwire.db" --log-level warn \
  --set ws.max_connections_per_user=100000 --set server.max_http_connections_per_ip=100000 --set server.max_http_connections=100000 > "$TMP/log" 2>&1 &
AW_PID=$!
for _ in $(seq 200); do [[ -s "$TMP/port" ]] && break; sleep 0.02; done
PORT=$(cat "$TMP/port")
until curl -sf "http://127.0.0.1:$PORT/health/ready" >/dev/null; do sleep 0.02; done
"$B/loadgen" --mode chat --url "ws://127.0.0.1:$PORT" --secret-file "$TMP/dev-secret" -c 100 -d 10 --warmup 2 \
  --server-pid "$AW_PID" 2>/dev/null | grep -E "runs/s|server CPU"
echo "== a scrape of the real server's /metrics (bytes, and wall time of 20 scrapes)"
curl -s "http://127.0.0.1:$PORT/metrics" | wc -c
/usr/bin/time -f "%e s for 20 scrapes" bash -c "for i in \$(seq 20); do curl -s http://127.0.0.1:$PORT/metrics >/dev/null; done"
