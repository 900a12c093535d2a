#!/usr/bin/env bash
# A/B: user_message -> agent_completed latency, 1000 users at 1 msg/s, two binaries alternated.
# Usage: bench/ab-chat.sh OLD_BINARY NEW_BINARY   (USERS=100 THINK="--think-ms 0" for the closed loop;
#        ROUNDS=N alternations, default 2)
# The server runs on core 0 and the load tool on core 1 (taskset), as in run-figures.sh.
# ARGS_A / ARGS_B: extra server flags for one side only (a key the other binary does not know).
set -euo pipefail
B="${B:-$(cd "$(dirname "$0")/.." && pwd)/build}"
TMP=$(mktemp -d)
ulimit -n "$(ulimit -Hn)"
run() {
  local bin=$1 label=$2 extra=$3
  rm -rf "$TMP/aw"; mkdir -p "$TMP/aw"
  # shellcheck disable=SC2086
  taskset -c 0 "$bin" serve --port 0 --port-file "$TMP/aw/port" --set "store.path=$TMP/aw/agentwire.db" --log-level warn \
    --set ws.max_connections_per_user=100000 --set ws.max_messages_per_second=100000 --set agents.max_queue=100000 --set server.max_http_connections_per_ip=100000 \
    --set server.max_http_connections=100000 $extra > "$TMP/aw/log" 2>&1 &
  local pid=$!
  for _ in $(seq 200); do [[ -s "$TMP/aw/port" ]] && break; sleep 0.02; done
  local port; port=$(cat "$TMP/aw/port")
  until curl -sf "http://127.0.0.1:$port/health/ready" >/dev/null; do sleep 0.02; done
  echo "== $label"
  taskset -c 1 "$B/loadgen" --mode chat --url "ws://127.0.0.1:$port" --secret-file "$TMP/aw/dev-secret" -c "${USERS:-1000}" -d 15 \
    --warmup 3 ${THINK:---think-ms 1000} --server-pid "$pid" 2>/dev/null | grep -E "runs/s|agent_completed|server CPU"
  kill $pid; wait $pid || true
}
for i in $(seq "${ROUNDS:-2}"); do run "$1" "A: $1 ($i)" "${ARGS_A:-}"; run "$2" "B: $2 ($i)" "${ARGS_B:-}"; done
rm -rf "$TMP"
