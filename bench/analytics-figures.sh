#!/usr/bin/env bash
# The analytics figures of docs/performance.md, in one run:
#  1. analytics_bench: record() cost on the hot path, encode+gzip per row, rows/s into ClickHouse;
#  2. user_message -> agent_completed latency with 1,000 users at one message per second, with
#     analytics off and then on (rows going to a real ClickHouse), same machine, same run.
#   bench/analytics-figures.sh [BUILD_DIR]    (needs clickhouse-server; scripts/install-deps test)
set -euo pipefail
cd "$(dirname "$0")/.."
B="${1:-build}"
OUT="$B/analytics-figures.jsonl"
TMP="$(mktemp -d)"
: > "$OUT"
CH_PID=""
AW_PID=""
cleanup() {
  for p in $AW_PID $CH_PID; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$TMP"
}
trap cleanup EXIT
ulimit -n "$(ulimit -Hn)"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, $(uname -r), $(date -u +%F)"
CH_HTTP=$(free_port); CH_TCP=$(free_port)
scripts/clickhouse-config "$TMP/ch" "$CH_HTTP" "$CH_TCP"
/usr/sbin/clickhouse-server --config-file="$TMP/ch/config.xml" > "$TMP/ch/stdout.log" 2>&1 &
CH_PID=$!
until curl -sf "http://127.0.0.1:$CH_HTTP/ping" >/dev/null; do sleep 0.05; done
CH_URL="http://127.0.0.1:$CH_HTTP"

echo "== analytics_bench (ClickHouse $(curl -s "$CH_URL/?query=SELECT%20version()"))"
AW_CLICKHOUSE_URL="$CH_URL" "$B/analytics_bench" 2>/dev/null | grep -E "^BM_"

start_agentwire() {
  rm -rf "$TMP/aw"; mkdir -p "$TMP/aw"
  "$B/agentwire" serve --port 0 --port-file "$TMP/aw/port" --set "store.path=$TMP/aw/agentwire.db" \
    --log-level warn --set ws.max_connections_per_user=100000 --set server.max_http_connections_per_ip=100000 --set server.max_http_connections=100000 --set agents.max_queue=100000 "$@" \
    > "$TMP/aw/log" 2>&1 &
  AW_PID=$!
  for _ in $(seq 200); do [[ -s "$TMP/aw/port" ]] && break; sleep 0.02; done
  AW_PORT=$(cat "$TMP/aw/port")
  until curl -sf "http://127.0.0.1:$AW_PORT/health/ready" >/dev/null; do sleep 0.02; done
}
stop_agentwire() { kill "$AW_PID"; wait "$AW_PID" || true; AW_PID=""; }

for mode in off on; do
  echo "== chat: 1000 users, one message per user per second, analytics $mode"
  if [[ $mode == on ]]; then
    start_agentwire --set analytics.enabled=true --set "analytics.url=$CH_URL" --set analytics.database=bench_chat
  else
    start_agentwire
  fi
  "$B/loadgen" --mode chat --url "ws://127.0.0.1:$AW_PORT" --secret-file "$TMP/aw/dev-secret" -c 1000 -d 15 \
    --warmup 3 --think-ms 1000 --server-pid "$AW_PID" --json "$OUT" 2>/dev/null | grep -v "^{" || true
  if [[ $mode == on ]]; then
    curl -s "http://127.0.0.1:$AW_PORT/health" | python3 -c 'import json,sys; d=[c for c in json.load(sys.stdin)["components"] if c["name"]=="analytics"][0]; print("analytics:", d["state"], json.dumps(d.get("details")))'
  fi
  stop_agentwire
done
echo "rows in ClickHouse: $(curl -s "$CH_URL/?query=SELECT%20count()%20FROM%20bench_chat.agentwire_events")"
echo "JSON lines: $OUT"
