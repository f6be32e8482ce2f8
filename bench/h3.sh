#!/usr/bin/env bash
# bench/h3.sh — fan-out over HTTP/3 against HTTP/1.1 (and HTTP/2 when the
# bench knows --h2), in one run against one server (docs/BENCHMARKS.md,
# "HTTP/3").
#
# Fan-out 1x100 (one room, 100 members, every member publishes, window 1),
# each carrier ROUNDS times, alternating, so the machine's drift hits all of
# them alike. One WebSocket per connection on every carrier (100 TCP or 100
# QUIC connections). Prints a Markdown table of medians: deliveries/s, p99,
# server CPU per delivery.
#
#   bash bench/h3.sh                 DURATION=5 WARMUP=1 ROUNDS=3
set -uo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
BUILD_DIR="${BUILD_DIR:-$root/build}"
BENCH="$BUILD_DIR/tools/wschat-bench/wschat-bench"
WSCHAT="$BUILD_DIR/wschat"
DURATION="${DURATION:-5}"; WARMUP="${WARMUP:-1}"; ROUNDS="${ROUNDS:-3}"
PORT="${PORT:-18400}"; TLS_PORT=$((PORT + 1))
tmp="$(mktemp -d /tmp/wschat-h3-bench.XXXXXX)"
pid=""
cleanup() {
  [ -n "$pid" ] && { kill -0 "$pid" 2>/dev/null || { log "the server died:"; tail -20 "$tmp/server.log" >&2; }; kill "$pid" 2>/dev/null; }
  wait 2>/dev/null; rm -rf "$tmp"
}
trap cleanup EXIT
log() { echo "h3-bench: $*" >&2; }
[ -x "$BENCH" ] && [ -x "$WSCHAT" ] || { log "build first: make build"; exit 2; }

. "$root/bench/lib.sh"
bench_cert "$tmp" || { echo "openssl could not make a certificate" >&2; exit 2; }
"$WSCHAT" --host 127.0.0.1 --port "$PORT" --db "$tmp/wschat.db" --log-level warn \
  --tls-port "$TLS_PORT" --tls-cert "$tmp/cert.pem" --tls-key "$tmp/key.pem" --h3-port "$TLS_PORT" \
  >"$tmp/server.log" 2>&1 &
pid=$!
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.05; done

carriers="http1 h3"
usage="$("$BENCH" 2>&1 || true)"
case "$usage" in *--h2*) carriers="http1 h2 h3" ;; esac
load=(fanout --rooms 1 --conns 100 --size 64 --window 1 --duration "$DURATION" --warmup "$WARMUP"
      --server-pid "$pid" --quiet)
run() {  # carrier round
  local c=$1 r=$2 args=()
  case $c in
    http1) args=(--url "ws://127.0.0.1:$PORT") ;;
    h2) args=(--url "ws://127.0.0.1:$PORT" --h2 1) ;;
    h3) args=(--url "ws://127.0.0.1:$TLS_PORT" --h3 1) ;;
  esac
  nice -n 10 "$BENCH" "${load[@]}" "${args[@]}" --room-prefix "$c$r" 2>/dev/null | grep '^RESULT' \
    | sed "s/^RESULT/RESULT carrier=$c/" >>"$tmp/results"
}
for r in $(seq 1 "$ROUNDS"); do for c in $carriers; do log "round $r $c"; run "$c" "$r"; done; done
cat "$tmp/results" >&2
python3 - "$tmp/results" <<'PY'
import sys, statistics as st
rows = {}
for line in open(sys.argv[1]):
    kv = dict(p.split('=', 1) for p in line.split()[1:] if '=' in p)
    rows.setdefault(kv['carrier'], []).append(kv)
base = None
print('| carrier | deliveries/s (median) | p99 ms | server CPU ns/delivery | errors | vs HTTP/1.1 |')
print('|---|---:|---:|---:|---:|---:|')
for c in ['http1', 'h2', 'h3']:
    if c not in rows: continue
    d = st.median(float(r['deliveries_per_s']) for r in rows[c])
    p = st.median(float(r['p99_ms']) for r in rows[c])
    cpu = st.median(float(r['server_cpu_ns_per_delivery']) for r in rows[c])
    err = sum(int(r['errors']) + int(r['lost']) for r in rows[c])
    if c == 'http1': base = d
    print(f'| {c} | {d:,.0f} | {p:.2f} | {cpu:,.0f} | {err} | {100*d/base:.0f}% |')
PY
