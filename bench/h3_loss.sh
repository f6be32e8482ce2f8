#!/usr/bin/env bash
# bench/h3_loss.sh — latency under packet loss, HTTP/3 against HTTP/1.1
# (docs/BENCHMARKS.md, "HTTP/3"). The talk's head-of-line claim, measured.
#
# Runs itself in a new network namespace (unshare -n: its own loopback,
# nothing outside is touched) where nftables drops LOSS % of all packets at
# random. For each loss: one server; fan-out 10 rooms x 10 members, one
# publisher per room, open loop at RATE messages/s in all (latency from the
# scheduled send time). HTTP/3: 10 WebSockets per QUIC connection, ten
# different rooms on each (a lost packet should stall only its stream);
# HTTP/1.1: one WebSocket per TCP connection (a loss stalls that room's
# connection). Prints latency p50/p90/p99 per carrier and loss.
#
#   sudo bash bench/h3_loss.sh          LOSSES="0 1 5" DURATION=10 RATE=200
set -uo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
if [ "${IN_NETNS:-}" != 1 ]; then
  exec unshare -n env IN_NETNS=1 bash "$0" "$@"
fi
BUILD_DIR="${BUILD_DIR:-$root/build}"
BENCH="$BUILD_DIR/tools/wschat-bench/wschat-bench"
WSCHAT="$BUILD_DIR/wschat"
LOSSES="${LOSSES:-0 1 5}"; DURATION="${DURATION:-10}"; RATE="${RATE:-200}"
PORT=18500; TLS_PORT=18501
tmp="$(mktemp -d /tmp/wschat-h3-loss.XXXXXX)"
pid=""
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
log() { echo "h3-loss: $*" >&2; }
command -v nft >/dev/null || { log "needs nft (package nftables)"; exit 2; }
ip link set lo up
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$tmp/key.pem" \
  -out "$tmp/cert.pem" -days 2 -subj /CN=localhost -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
  >/dev/null 2>&1

set_loss() {
  nft flush ruleset
  [ "$1" = 0 ] && return
  nft add table inet loss
  nft add chain inet loss in '{ type filter hook input priority 0; }'
  nft add rule inet loss in numgen random mod 100 '<' "$1" drop
}

load=(fanout --rooms 10 --conns 10 --pubs 1 --rate "$RATE" --size 64 --duration "$DURATION" --warmup 1
      --drain-timeout 20 --quiet)
for loss in $LOSSES; do
  set_loss 0
  "$WSCHAT" --host 127.0.0.1 --port "$PORT" --db "$tmp/wschat-$loss.db" --log-level warn \
    --tls-port "$TLS_PORT" --tls-cert "$tmp/cert.pem" --tls-key "$tmp/key.pem" --h3-port "$TLS_PORT" \
    >"$tmp/server.log" 2>&1 &
  pid=$!
  for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.05; done
  set_loss "$loss"
  for c in http1 h3; do
    log "loss $loss% $c"
    if [ $c = h3 ]; then args=(--url "ws://127.0.0.1:$TLS_PORT" --h3 10); else args=(--url "ws://127.0.0.1:$PORT"); fi
    "$BENCH" "${load[@]}" "${args[@]}" --server-pid "$pid" --room-prefix "l$loss$c" 2>/dev/null | grep '^RESULT' \
      | sed "s/^RESULT/RESULT loss=$loss carrier=$c/" | tee -a "$tmp/results" >&2
  done
  set_loss 0
  kill "$pid"; wait "$pid" 2>/dev/null; pid=""
done
python3 - "$tmp/results" <<'PY'
import sys
print('| loss | carrier | deliveries/s | p50 ms | p90 ms | p99 ms | max ms | lost/errors |')
print('|---:|---|---:|---:|---:|---:|---:|---:|')
for line in open(sys.argv[1]):
    kv = dict(p.split('=', 1) for p in line.split()[1:] if '=' in p)
    print(f"| {kv['loss']}% | {kv['carrier']} | {float(kv['deliveries_per_s']):,.0f} | {float(kv['p50_ms']):.2f} | "
          f"{float(kv['p90_ms']):.2f} | {float(kv['p99_ms']):.2f} | {float(kv['max_ms']):.2f} | "
          f"{int(kv['lost'])}/{int(kv['errors'])} |")
PY
