#!/usr/bin/env bash
# Issue 12's figures, in one run: chat (closed loop, echo agent) on
#   1. one node on SQLite (the embedded default),
#   2. one node on PostgreSQL,
#   3. three nodes on PostgreSQL + Redis, users spread over them, each user with a second connection
#      on the next node (--watch): every event also crosses nodes.
# The agentwire processes, PostgreSQL and Redis share core 0; the load tool runs on core 1. CPU is
# the agentwire processes' own (utime+stime over the window, summed over nodes); PostgreSQL's and
# Redis's CPU on the same core is measured from their processes and reported beside it.
# Usage: bench/multinode-figures.sh   (USERS=100 DURATION=15; B=build directory)
set -euo pipefail
cd "$(dirname "$0")/.."
B="${B:-$(pwd)/build}"
USERS="${USERS:-100}"
DURATION="${DURATION:-15}"
TMP=$(mktemp -d)
chmod 755 "$TMP"  # PostgreSQL runs as its own user
ulimit -n "$(ulimit -Hn)"
export AW_TEST_SERVICES_DIR="$TMP/services"
cleanup() {
  pkill -P $$ agentwire 2>/dev/null || true
  scripts/test-services stop || true
  rm -rf "$TMP"
}
trap cleanup EXIT
scripts/test-services start >/dev/null
# shellcheck disable=SC1091
source "$AW_TEST_SERVICES_DIR/env"
# PostgreSQL and Redis on core 0 with the servers.
for pid in $(pgrep -f "postgres -D $AW_TEST_SERVICES_DIR" || true) $(cat "$AW_TEST_SERVICES_DIR/redis.pid"); do
  taskset -a -p -c 0 "$pid" >/dev/null 2>&1 || true
done
secret=$(head -c 32 /dev/urandom | base64)
echo "$secret" >"$TMP/secret"

# utime+stime in clock ticks of every process whose command line matches.
ticks() { local t=0; for p in $(pgrep -f "$1" || true); do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0))); done; echo $t; }

start_node() {  # name, extra flags...
  local name=$1; shift
  mkdir -p "$TMP/$name"
  taskset -c 0 "$B/agentwire" serve --port 0 --port-file "$TMP/$name/port" --log-level warn \
    --set "store.path=$TMP/$name/agentwire.db" --set "auth.secret=$secret" --set "node.id=$name" \
    --set ws.max_connections_per_user=100000 --set agents.max_queue=100000 --set ws.max_messages_per_second=100000 \
    "$@" >"$TMP/$name/log" 2>&1 &
  echo $! >"$TMP/$name/pid"
  for _ in $(seq 500); do [[ -s "$TMP/$name/port" ]] && break; sleep 0.02; done
  until curl -sf "http://127.0.0.1:$(cat "$TMP/$name/port")/health/ready" >/dev/null; do sleep 0.02; done
}

measure() {  # label, nodes..., -- loadgen flags
  local label=$1; shift
  local urls=() pids=()
  while [[ $1 != -- ]]; do
    urls+=(--url "ws://127.0.0.1:$(cat "$TMP/$1/port")"); pids+=(--server-pid "$(cat "$TMP/$1/pid")"); shift
  done
  shift
  local svc0; svc0=$(( $(ticks "postgres") + $(ticks "redis-server") ))
  echo "== $label"
  taskset -c 1 "$B/loadgen" --mode chat "${urls[@]}" --secret-file "$TMP/secret" -c "$USERS" -d "$DURATION" --warmup 3 \
    "${pids[@]}" "$@" --json "$TMP/results.jsonl" 2>/dev/null | grep -E "runs/s|agent_completed|completed, other|server CPU"
  local svc1; svc1=$(( $(ticks "postgres") + $(ticks "redis-server") ))
  echo "PostgreSQL + Redis CPU over the run (warm-up included): $(echo "scale=2; ($svc1 - $svc0) / $(getconf CLK_TCK)" | bc) s"
}

stop_nodes() { for n in "$@"; do kill "$(cat "$TMP/$n/pid")"; done; for n in "$@"; do while kill -0 "$(cat "$TMP/$n/pid")" 2>/dev/null; do sleep 0.05; done; done; }

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); $USERS users, closed loop, ${DURATION} s"
start_node sqlite
measure "1 node, SQLite" sqlite --
stop_nodes sqlite

PG="--set store.backend=postgres --set store.url=$AW_TEST_PG_URL"
# shellcheck disable=SC2086
start_node pg1 $PG
measure "1 node, PostgreSQL" pg1 --
stop_nodes pg1
psql -q "$AW_TEST_PG_URL" -c "TRUNCATE threads, messages, user_streams, events, runs, nodes, meta" >/dev/null

for n in a b c; do
  # shellcheck disable=SC2086
  start_node "node-$n" $PG --set bus.backend=redis --set "bus.url=$AW_TEST_REDIS_URL"
done
measure "3 nodes, PostgreSQL + Redis, users spread, each also watching from the next node" node-a node-b node-c -- --watch
stop_nodes node-a node-b node-c
echo "JSON lines: $(cat "$TMP/results.jsonl" | wc -l) (printed above)"
