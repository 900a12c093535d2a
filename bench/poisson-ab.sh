#!/bin/bash
# One 15 s Poisson run (1,000 users, mean 1 msg/s each, after a 3 s warm-up) against one agentwire binary,
# pinned as in run-figures.sh (server on core 0, load on core 1); prints p50/p95/p99/max of agent_completed
# and the server's CPU per event. For A/B runs alternated in one session (docs/performance.md).
#   bench/poisson-ab.sh BUILD_DIR STORE LABEL [extra --set args]   STORE: "file" (SQLite in a temp dir) or ":memory:"
#   e.g. AWBIN=/tmp/agentwire-b bench/poisson-ab.sh build file B
#   LOAD="-c 100 --think-ms 0" replaces the load (here the closed loop of run-figures.sh's CPU figure).
set -euo pipefail
cd "$(dirname "$0")/.."
B=$1; SP=$2; LABEL=$3; shift 3
ulimit -n 20000
T=$(mktemp -d)
SECRET=0123456789abcdef0123456789abcdef
printf %s "$SECRET" > "$T/secret"
[ "$SP" = file ] && SP=$T/a.db
# From $T: with :memory:, the files that go beside the store (its lock, the startup history) land there.
AW="$(realpath "${AWBIN:-$B/agentwire}")"
(cd "$T" && exec taskset -c 0 "$AW" serve --port 0 --port-file "$T/port" --set "store.path=$SP" --log-level warn \
  --set auth.secret=$SECRET --set ws.max_connections_per_user=100000 --set ws.max_messages_per_second=100000 \
  --set server.max_http_connections_per_ip=100000 --set server.max_http_connections=100000 \
  --set agents.max_queue=100000 "$@" > "$T/log" 2>&1) &
PID=$!
trap 'kill $PID 2>/dev/null || true; wait $PID 2>/dev/null || true; rm -rf "$T"' EXIT
for _ in $(seq 200); do [ -s "$T/port" ] && break; sleep 0.05; done
PORT=$(cat "$T/port")
until curl -sf "http://127.0.0.1:$PORT/health/ready" >/dev/null; do sleep 0.05; done
taskset -c 1 "$B/loadgen" --mode chat --url "ws://127.0.0.1:$PORT" --secret-file "$T/secret" -d 15 --warmup 3 \
  ${LOAD:--c 1000 --think-ms 1000 --arrivals poisson} --server-pid "$PID" 2>&1 | grep -E "^agent_completed|server CPU" | tr '\n' ' '
echo " [$LABEL]"
