#!/usr/bin/env bash
# bench/tls_handover_ab.sh — the TLS 1.3 handover against the OpenSSL record
# path it replaced, in one run: the same wschat-bench rows against two
# wschat binaries, alternating, a fresh server per row (servers on CPU 0,
# the bench on CPU 1):
#   fan-out 1x100 (64 B, window 1) over ws:// and wss:// — deliveries/s and
#   server CPU per delivery; idle wss:// connections on /echo — RSS each.
#
#   BASE_BIN=/path/to/older/wschat bash bench/tls_handover_ab.sh   RUNS=2 DURATION=8 CONNS_IDLE=1500
# (an older binary: e.g. `git archive 3f30a9b | tar -x -C DIR` and a
# `cmake -DCMAKE_BUILD_TYPE=RelWithDebInfo` build of the wschat target there).
set -uo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
BUILD_DIR="${BUILD_DIR:-$root/build}"
BENCH="$BUILD_DIR/tools/wschat-bench/wschat-bench"
NEW_BIN="${NEW_BIN:-$BUILD_DIR/wschat}"
BASE_BIN="${BASE_BIN:?set BASE_BIN to the wschat binary to compare against}"
RUNS="${RUNS:-2}"; DURATION="${DURATION:-8}"; CONNS_IDLE="${CONNS_IDLE:-1500}"
PORT="${PORT_BASE:-18800}"
OUT="${OUT:-$root/bench/results/tls-handover-ab-$(date -u +%Y%m%dT%H%M%SZ)}"
mkdir -p "$OUT"
tmp="$(mktemp -d /tmp/wschat-tlsab.XXXXXX)"
PID=""
stop() { [ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null; PID=""; }
trap 'stop; rm -rf "$tmp"' EXIT
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
[ -x "$BENCH" ] && [ -x "$NEW_BIN" ] && [ -x "$BASE_BIN" ] || { echo "build first (make build), and BASE_BIN" >&2; exit 2; }
. "$root/bench/lib.sh"
bench_cert "$tmp" || { echo "openssl could not make a certificate" >&2; exit 2; }

row() { # variant name scheme bench-args...
  local v=$1 name=$2 scheme=$3; shift 3
  local bin="$NEW_BIN"; [ "$v" = base ] && bin="$BASE_BIN"
  PORT=$(( PORT + 2 )); rm -f "$tmp"/db*
  taskset -c 0 "$bin" --host 127.0.0.1 --port "$PORT" --tls-port $(( PORT + 1 )) --tls-cert "$tmp/cert.pem" \
    --tls-key "$tmp/key.pem" --db "$tmp/db" --echo --ping-interval 0 --log-level warn >>"$OUT/server.log" 2>&1 &
  PID=$!
  for _ in $(seq 1 100); do (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break; sleep 0.1; done
  local p=$PORT; [ "$scheme" = wss ] && p=$(( PORT + 1 ))
  timeout 300 taskset -c 1 "$BENCH" "$@" --url "$scheme://127.0.0.1:$p" --server-pid "$PID" --quiet \
    >"$OUT/$v.$name.out" 2>&1
  echo "$v $name: $(grep -o 'deliveries_per_s=[0-9]*\|server_cpu_ns_per_delivery=[0-9]*\|rss_per_conn_bytes=[0-9]*' \
    "$OUT/$v.$name.out" | tr '\n' ' ')"
  stop
}

FAN="fanout --rooms 1 --conns 100 --pubs all --window 1 --size 64 --duration $DURATION --warmup 2"
IDLE="connect --conns $CONNS_IDLE --concurrency 128 --settle 2"
for r in $(seq 1 "$RUNS"); do
  for v in base new; do row "$v" "ws$r" ws $FAN; done
  for v in new base; do row "$v" "wss$r" wss $FAN; done
  for v in base new; do row "$v" "idle$r" wss $IDLE; done
done
echo "results in $OUT"
