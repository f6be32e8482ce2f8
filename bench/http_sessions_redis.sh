#!/usr/bin/env bash
# bench/http_sessions_redis.sh — what keeping HTTP polling sessions in Redis
# costs (docs/SCALING.md, "Measured cost"): the same `wschat-bench
# transports` workload (long polling and polling at 250 ms; every delivery
# verified) against one release node without --redis (sessions in memory)
# and one with --redis (sessions in Redis: every event appended there, every
# poll read from there), in one run, on a redis-server this script starts on
# a free port (AOF everysec) and stops. Prints the RESULT lines and Redis's
# CPU and script calls.
#
#   bash bench/http_sessions_redis.sh
#   CLIENTS=50 RATE=50 DURATION=10 bash bench/http_sessions_redis.sh
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
BUILD_DIR="${BUILD_DIR:-$root/build}"
WSCHAT="$BUILD_DIR/wschat"
BENCH="$BUILD_DIR/tools/wschat-bench/wschat-bench"
CLIENTS="${CLIENTS:-50}"; RATE="${RATE:-50}"; DURATION="${DURATION:-10}"
free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
RPORT="$(free_port)"; PORT="$(free_port)"
tmp="$(mktemp -d /tmp/wschat-hsr.XXXXXX)"
rpid=""; spid=""
cleanup() {
  [ -n "$spid" ] && { kill "$spid" 2>/dev/null || true; wait "$spid" 2>/dev/null || true; }
  [ -n "$rpid" ] && { kill "$rpid" 2>/dev/null || true; wait "$rpid" 2>/dev/null || true; }
  rm -rf "$tmp"
}
trap cleanup EXIT

redis-server --port "$RPORT" --bind 127.0.0.1 --dir "$tmp" --appendonly yes --appendfsync everysec \
  --save '' >"$tmp/redis.log" 2>&1 &
rpid=$!
for _ in $(seq 50); do redis-cli -p "$RPORT" ping >/dev/null 2>&1 && break; sleep 0.1; done

for mode in memory redis; do
  extra=()
  [ "$mode" = redis ] && extra=(--redis "redis://127.0.0.1:$RPORT")
  "$WSCHAT" --host 127.0.0.1 --port "$PORT" --db "$tmp/$mode.db" --log-level warn "${extra[@]}" \
    >>"$tmp/server.log" 2>&1 &
  spid=$!
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
  echo "== sessions in $mode"
  timeout $((DURATION * 4 + 60)) "$BENCH" transports --url "http://127.0.0.1:$PORT" --pid "$spid" \
    --clients "$CLIENTS" --rate "$RATE" --duration "$DURATION" --transport longpoll,poll:250 | grep '^RESULT'
  kill "$spid"; wait "$spid" 2>/dev/null || true; spid=""
done
echo "== redis-server (the redis run only)"
redis-cli -p "$RPORT" info cpu | grep -E '^used_cpu_(sys|user):'
redis-cli -p "$RPORT" info commandstats | grep -E '^cmdstat_(evalsha|publish):'
