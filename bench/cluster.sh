#!/usr/bin/env bash
# bench/cluster.sh — what Redis costs (docs/SCALING.md, "Measured cost").
#
# In one run, for fan-out 1x100 and 10x100 (rooms x members, every member
# publishes, window 1): one node on SQLite, one node on Redis, two nodes on
# Redis with the clients split between them (wschat-bench --node). For each:
# deliveries/s, p99, server CPU per delivery (all nodes), Redis CPU per
# message (INFO cpu) and Redis commands per message (INFO commandstats).
# Prints a Markdown table; keeps the JSON under bench/results/cluster-<stamp>/.
#
#   bash bench/cluster.sh                DURATION=5 WARMUP=1 RUNS=1 by default
#   FSYNC=always bash bench/cluster.sh   Redis appendfsync (default everysec)
set -uo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
BUILD_DIR="${BUILD_DIR:-$root/build}"
BENCH="$BUILD_DIR/tools/wschat-bench/wschat-bench"
WSCHAT="$BUILD_DIR/wschat"
DURATION="${DURATION:-5}"
WARMUP="${WARMUP:-1}"
FSYNC="${FSYNC:-everysec}"
PORT_BASE="${PORT_BASE:-18300}"
SCENARIOS="${SCENARIOS:-1x100 10x100}"
stamp="$(date -u +%Y%m%dT%H%M%SZ)"
OUT="${OUT:-$root/bench/results/cluster-$stamp}"
mkdir -p "$OUT"
tmp="$(mktemp -d /tmp/wschat-cluster-bench.XXXXXX)"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; wait 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
log() { echo "cluster-bench: $*" >&2; }
[ -x "$BENCH" ] && [ -x "$WSCHAT" ] || { log "build first: make build"; exit 2; }
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

rport=$((PORT_BASE)); n1=$((PORT_BASE + 1)); n2=$((PORT_BASE + 2))
rcli() { redis-cli -p "$rport" "$@"; }

wait_http() { for _ in $(seq 1 200); do curl -sf "http://127.0.0.1:$1/healthz" >/dev/null && return 0; sleep 0.05; done; return 1; }

start_redis() {
  rm -rf "$tmp/redis"; mkdir -p "$tmp/redis"
  redis-server --port "$rport" --bind 127.0.0.1 --dir "$tmp/redis" --appendonly yes \
    --appendfsync "$FSYNC" --save '' --daemonize no --logfile "$tmp/redis.log" &
  redis_pid=$!; pids+=("$redis_pid")
  for _ in $(seq 1 100); do rcli ping >/dev/null 2>&1 && return 0; sleep 0.05; done
  log "redis-server did not start"; exit 1
}

start_node() {   # port, extra args...
  local port=$1; shift
  "$WSCHAT" --host 127.0.0.1 --port "$port" --log-level warn "$@" >"$tmp/node-$port.log" 2>&1 &
  last_pid=$!; pids+=("$last_pid")
  wait_http "$port" || { log "node $port did not start"; cat "$tmp/node-$port.log" >&2; exit 1; }
}

stop_all() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; wait 2>/dev/null; pids=(); }

redis_cpu() { rcli info cpu | awk -F: '/^used_cpu_(sys|user):/ {s += $2} END {printf "%.4f", s}'; }
redis_calls() {   # total calls, xadd calls (= messages stored)
  rcli info commandstats | awk -F'[:=,]' '/^cmdstat_/ {t += $3; if ($1 ~ /xadd/) e += $3} END {printf "%d %d", t, e}'
}

rows=()
run_case() {   # label scenario mode
  local label=$1 sc=$2 mode=$3 rooms=${2%x*} conns=${2#*x}
  local extra=() pid1 pid2
  if [ "$mode" = sqlite ]; then
    start_node "$n1" --db "$tmp/$label.db"; pid1=$last_pid
  else
    start_redis
    start_node "$n1" --redis "redis://127.0.0.1:$rport"; pid1=$last_pid
    if [ "$mode" = redis2 ]; then
      start_node "$n2" --redis "redis://127.0.0.1:$rport"; pid2=$last_pid
      extra=(--node "ws://127.0.0.1:$n2" --node-pid "$pid2")
    fi
  fi
  local c0="" k0=""
  [ "$mode" != sqlite ] && { c0=$(redis_cpu); k0=$(redis_calls); }
  local json="$OUT/$label-$sc.json"
  nice -n 10 "$BENCH" fanout --url "ws://127.0.0.1:$n1" --rooms "$rooms" --conns "$conns" \
    --duration "$DURATION" --warmup "$WARMUP" --server-pid "$pid1" "${extra[@]}" \
    --room-prefix "b$RANDOM" --json "$json" --quiet >/dev/null 2>"$tmp/bench.err" || { log "bench failed: $(tail -3 "$tmp/bench.err")"; }
  local rc="-" rk="-"
  if [ "$mode" != sqlite ]; then
    local c1 k1; c1=$(redis_cpu); k1=$(redis_calls)
    read -r t0 e0 <<<"$k0"; read -r t1 e1 <<<"$k1"
    local msgs=$((e1 - e0)) cmds=$((t1 - t0))
    [ "$msgs" -gt 0 ] && { rc=$(awk -v a="$c0" -v b="$c1" -v m="$msgs" 'BEGIN {printf "%.1f", (b - a) * 1e6 / m}');
                           rk=$(awk -v c="$cmds" -v m="$msgs" 'BEGIN {printf "%.2f", c / m}'); }
  fi
  stop_all
  rows+=("$(python3 - "$json" "$label" "$sc" "$rc" "$rk" <<'PY'
import json, sys
path, label, sc, rc, rk = sys.argv[1:6]
try:
    j = json.load(open(path))
except Exception:
    print(f"| {sc} | {label} | failed | | | | | |"); sys.exit()
v = j["verification"]
ok = "ok" if j["ok"] else f"lost {v['lost']} dup {v['duplicates']} reord {v['reordered']} err {j['errors']}"
print(f"| {sc} | {label} | {j['deliveries_per_s']:,.0f} | {j['latency_ms']['p99']:.2f} | "
      f"{j['server_cpu_ns_per_delivery']/1000:.2f} | {rc} | {rk} | {ok} |")
PY
)")
}

for sc in $SCENARIOS; do
  run_case "sqlite-1-node" "$sc" sqlite
  run_case "redis-1-node" "$sc" redis
  run_case "redis-2-nodes" "$sc" redis2
done

echo "| fan-out | setup | deliveries/s | p99 ms | server CPU µs/delivery | Redis CPU µs/message | Redis commands/message | check |"
echo "|---|---|---:|---:|---:|---:|---:|---|"
printf '%s\n' "${rows[@]}"
echo
echo "($(nproc) cores shared by servers, redis-server and the load generator; duration ${DURATION}s, warmup ${WARMUP}s, appendfsync $FSYNC; JSON in ${OUT#$root/})"
