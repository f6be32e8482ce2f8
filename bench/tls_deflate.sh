#!/usr/bin/env bash
# bench/tls_deflate.sh — the TLS and permessage-deflate rows of
# docs/BENCHMARKS.md, all in one run so their ratios compare:
#   1. fan-out 1x100 (64 B, window 1): wschat ws:// and wss://, Node ws on
#      http and on https — deliveries/s and server CPU per delivery;
#   2. idle connections on /echo: RSS per connection, wschat ws:// and
#      wss://, Node ws https;
#   3. fan-out 1x100 of 1 KiB chat-like text, wschat, client offering
#      permessage-deflate or not — deliveries/s and bytes read per delivery.
# Servers pinned to CPU 0, wschat-bench to CPU 1, a fresh server per row.
#
#   bash bench/tls_deflate.sh            DURATION=10 CONNS_IDLE=2000 RUNS=1
set -uo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
BUILD_DIR="${BUILD_DIR:-$root/build}"
BENCH="$BUILD_DIR/tools/wschat-bench/wschat-bench"
WSCHAT="$BUILD_DIR/wschat"
PEERS="$root/bench/peers"
DURATION="${DURATION:-10}"; WARMUP="${WARMUP:-2}"; CONNS_IDLE="${CONNS_IDLE:-2000}"; RUNS="${RUNS:-1}"
PORT="${PORT_BASE:-18700}"
OUT="${OUT:-$root/bench/results/tls-deflate-$(date -u +%Y%m%dT%H%M%SZ)}"
mkdir -p "$OUT"
tmp="$(mktemp -d /tmp/wschat-tlsbench.XXXXXX)"
PID=""
stop() { [ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null; PID=""; }
trap 'stop; rm -rf "$tmp"' EXIT
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

[ -x "$BENCH" ] && [ -x "$WSCHAT" ] || { echo "build first (make build)" >&2; exit 2; }
[ -d "$PEERS/node_modules/ws" ] || (cd "$PEERS" && npm install --no-audit --no-fund --loglevel=error) || exit 2
. "$root/bench/lib.sh"
bench_cert "$tmp" || { echo "openssl could not make a certificate" >&2; exit 2; }

start() { # kind port -> PID; waits until the port accepts
  rm -f "$tmp"/db*
  case "$1" in
    wschat) taskset -c 0 "$WSCHAT" --host 127.0.0.1 --port "$2" --tls-port $(( $2 + 1 )) --tls-cert "$tmp/cert.pem" \
              --tls-key "$tmp/key.pem" --db "$tmp/db" --echo --ping-interval 0 --log-level warn >>"$OUT/server.log" 2>&1 & ;;
    node)   taskset -c 0 node "$PEERS/node_ws.mjs" "$2" >>"$OUT/server.log" 2>&1 & ;;
    nodetls) taskset -c 0 node "$PEERS/node_ws.mjs" $(( $2 + 1 )) "$tmp/cert.pem" "$tmp/key.pem" >>"$OUT/server.log" 2>&1 & ;;
  esac
  PID=$!
  local p=$2; [ "$1" = nodetls ] && p=$(( $2 + 1 ))
  for _ in $(seq 1 100); do (exec 3<>/dev/tcp/127.0.0.1/$p) 2>/dev/null && return 0; sleep 0.1; done
  echo "server $1 did not start" >&2; exit 1
}

row() { # name kind scheme args...
  local name=$1 kind=$2 scheme=$3; shift 3
  for run in $(seq 1 "$RUNS"); do
    PORT=$(( PORT + 2 )); start "$kind" "$PORT"
    local p=$PORT; [ "$scheme" = wss ] && p=$(( PORT + 1 ))
    timeout 300 taskset -c 1 "$BENCH" "$@" --url "$scheme://127.0.0.1:$p" --server-pid "$PID" --quiet \
      --json "$OUT/$name.$run.json" >"$OUT/$name.$run.out" 2>"$OUT/$name.$run.err"
    echo "$name: $(grep -h '^RESULT\|^WIRE' "$OUT/$name.$run.out" | tr '\n' ' ')"
    stop
  done
}

FAN="fanout --rooms 1 --conns 100 --pubs all --window 1 --size 64 --duration $DURATION --warmup $WARMUP"
row fanout_wschat_ws     wschat  ws  $FAN
row fanout_wschat_wss    wschat  wss $FAN
row fanout_node_ws       node    ws  $FAN
row fanout_node_wss      nodetls wss $FAN
IDLE="connect --conns $CONNS_IDLE --concurrency 128 --settle 2"
row idle_wschat_ws       wschat  ws  $IDLE
row idle_wschat_wss      wschat  wss $IDLE
row idle_node_wss        nodetls wss $IDLE
KIB="fanout --rooms 1 --conns 100 --pubs all --window 1 --size 1024 --chat-text --duration $DURATION --warmup $WARMUP"
row text1k_plain         wschat  ws  $KIB
row text1k_deflate       wschat  ws  $KIB --deflate
row text1k_wss_plain     wschat  wss $KIB
row text1k_wss_deflate   wschat  wss $KIB --deflate
echo "results in $OUT"
