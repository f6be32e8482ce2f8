#!/usr/bin/env bash
# scripts/cluster.sh — `make cluster`: redis-server and three wschat nodes
# sharing one chat, for a person to try (docs/SCALING.md).
#
#   http://localhost:8001/  http://localhost:8002/  http://localhost:8003/
#
# Redis listens on 127.0.0.1:${REDIS_PORT:-6390} with its files (AOF,
# appendfsync always) in data/cluster-redis/. Ctrl-C stops everything.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
WSCHAT="${WSCHAT:-$root/build/wschat}"
REDIS_PORT="${REDIS_PORT:-6390}"
PORTS="${PORTS:-8001 8002 8003}"
HOST="${HOST:-127.0.0.1}"
dir="$root/data/cluster-redis"
mkdir -p "$dir"
pids=()
stop() {
  trap - INT TERM EXIT
  echo "cluster: stopping" >&2
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap stop INT TERM EXIT

redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$dir" --appendonly yes --appendfsync always \
  --save '' --daemonize no --logfile "$dir/redis.log" &
pids+=($!)
for _ in $(seq 1 100); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.05; done
redis-cli -p "$REDIS_PORT" ping >/dev/null || { echo "cluster: redis-server did not start (see $dir/redis.log)" >&2; exit 1; }
echo "cluster: redis-server on 127.0.0.1:$REDIS_PORT (files in ${dir#$root/})" >&2

for port in $PORTS; do
  "$WSCHAT" --host "$HOST" --port "$port" --redis "redis://127.0.0.1:$REDIS_PORT" "$@" &
  pids+=($!)
done
for port in $PORTS; do
  for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.05; done
  echo "cluster: node http://localhost:$port/" >&2
done
echo "cluster: Ctrl-C stops all" >&2
wait -n "${pids[@]}" || true
