#!/usr/bin/env bash
# WebSockets over HTTP/2 against HTTP/1.1, in one run (docs/BENCHMARKS.md,
# "HTTP/2"): fan-out 1 room x 100 (HTTP/1.1: 100 connections; h2: 10
# connections x 10 streams; h2: 1 connection x 100 streams), then idle
# WebSockets on /echo, HTTP/1.1 against 100 per HTTP/2 connection (server
# RSS per WebSocket). Each run starts a fresh server pinned to CPU 0 and
# wschat-bench pinned to CPU 1; RUNS rounds, the variants interleaved so
# drifts of the shared machine hit all of them alike. Bounded: every
# wschat-bench has a timeout. Prints one line per run and the medians.
#
#   bench/h2.sh [BUILD_DIR=build] [RUNS=3] [DURATION=5] [IDLE=2000]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
BUILD_DIR="${BUILD_DIR:-$root/build}"
RUNS="${RUNS:-3}"
DURATION="${DURATION:-5}"
IDLE="${IDLE:-2000}"
BENCH="$BUILD_DIR/tools/wschat-bench/wschat-bench"
WSCHAT="$BUILD_DIR/wschat"
tmp="$(mktemp -d /tmp/wschat-h2bench.XXXXXX)"
trap 'kill "${pid:-0}" 2>/dev/null || true; rm -rf "$tmp"' EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

start() {
  port="$(free_port)"
  rm -f "$tmp"/bench.db*
  taskset -c 0 "$WSCHAT" --host 127.0.0.1 --port "$port" --db "$tmp/bench.db" --echo >>"$tmp/server.log" 2>&1 &
  pid=$!
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && return; sleep 0.05; done
  echo "server did not start" >&2; exit 1
}
stop() { kill "$pid"; wait "$pid" 2>/dev/null || true; pid=; }

run() { # name, wschat-bench args...
  local name=$1; shift
  start
  local out
  out="$(timeout 300 taskset -c 1 "$BENCH" "$@" --url "ws://127.0.0.1:$port" --server-pid "$pid" --quiet 2>&1 | grep '^RESULT' || true)"
  stop
  echo "$name $out" | tee -a "$tmp/results"
}

for r in $(seq "$RUNS"); do
  for v in "http1:" "h2-10x10:--h2 10" "h2-1x100:--h2 100"; do
    name=${v%%:*}; extra=${v#*:}
    run "fanout-$name" fanout --rooms 1 --conns 100 --duration "$DURATION" --warmup 1 $extra
  done
  for v in "http1:" "h2-100:--h2 100"; do
    name=${v%%:*}; extra=${v#*:}
    run "idle-$name" connect --conns "$IDLE" --settle 2 $extra
  done
done

python3 - "$tmp/results" <<'PY'
import sys, statistics, re
rows = {}
for line in open(sys.argv[1]):
    name, _, rest = line.partition(' ')
    kv = dict(re.findall(r'(\w+)=(\S+)', rest))
    rows.setdefault(name, []).append(kv)
def med(name, key):
    vals = [float(r[key]) for r in rows.get(name, []) if key in r and float(r[key]) >= 0]
    return statistics.median(vals) if vals else float('nan')
print('\nmedians of', max(len(v) for v in rows.values()), 'runs')
base = med('fanout-http1', 'deliveries_per_s')
for n in ('fanout-http1', 'fanout-h2-10x10', 'fanout-h2-1x100'):
    d = med(n, 'deliveries_per_s')
    errs = sum(int(r.get('errors', 0)) + int(r.get('lost', 0)) for r in rows.get(n, []))
    print(f"{n:18} deliveries/s {d:12,.0f}  ({d / base:.0%} of HTTP/1.1)  p99 {med(n, 'p99_ms'):.2f} ms  "
          f"server ns/delivery {med(n, 'server_cpu_ns_per_delivery'):,.0f}  errors+lost {errs}")
for n in ('idle-http1', 'idle-h2-100'):
    print(f"{n:18} server RSS per idle WebSocket {med(n, 'rss_per_conn_bytes'):,.0f} B  accepted/s {med(n, 'accept_per_s'):,.0f}")
PY
