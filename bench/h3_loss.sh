#!/usr/bin/env bash
# bench/h3_loss.sh — latency under packet loss: HTTP/3 against HTTP/2 and
# HTTP/1.1 with several rooms per connection (docs/BENCHMARKS.md, "HTTP/3").
# The talk's head-of-line claim, measured.
#
# Runs itself in a new network namespace (unshare -n: its own loopback,
# nothing outside is touched). The loopback gets a 1500-byte MTU and no
# segmentation offload (gso_max_segs 1), so every packet on it is one
# Ethernet-sized packet, TCP segment or QUIC packet alike; nftables drops
# LOSS % of them at random. For each loss: one server; fan-out ROOMS rooms x
# ROOMS members, one publisher per room, open loop at RATE messages/s in all
# (latency from the scheduled send time), --mix-rooms: each client
# connection carries one member of every room, and the publishers all share
# the first connection.
#   http1  one WebSocket per connection joined to all ROOMS rooms (--mux):
#          a lost segment stalls every room on that connection
#   h2     one TCP connection, one RFC 8441 WebSocket stream per room (--h2)
#   h3     one QUIC connection, one RFC 9220 WebSocket stream per room (--h3):
#          a lost packet stalls only the streams whose data it carried
#   http1-sep  one TCP connection per room member: nothing shared, no
#          head-of-line blocking between rooms (the old comparison)
#   h3-sep one QUIC connection per room member
# Prints latency p50/p90/p99 per carrier and loss.
#
#   sudo bash bench/h3_loss.sh   LOSSES="0 1 5" DURATION=15 RATE=200 ROOMS=10 CARRIERS="http1 http1-sep h2 h3 h3-sep"
set -uo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
if [ "${IN_NETNS:-}" != 1 ]; then
  exec unshare -n env IN_NETNS=1 bash "$0" "$@"
fi
BUILD_DIR="${BUILD_DIR:-$root/build}"
BENCH="$BUILD_DIR/tools/wschat-bench/wschat-bench"
WSCHAT="$BUILD_DIR/wschat"
LOSSES="${LOSSES:-0 1 5}"; DURATION="${DURATION:-15}"; RATE="${RATE:-200}"; ROOMS="${ROOMS:-10}"
CARRIERS="${CARRIERS:-http1 http1-sep h2 h3 h3-sep}"
PORT=18500; TLS_PORT=18501
tmp="$(mktemp -d /tmp/wschat-h3-loss.XXXXXX)"
pid=""
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
log() { echo "h3-loss: $*" >&2; }
command -v nft >/dev/null || { log "needs nft (package nftables)"; exit 2; }
ip link set lo up
# Ethernet-sized packets, each one seen (and maybe dropped) on its own.
ip link set dev lo mtu 1500 gso_max_segs 1 gso_max_size 1500
. "$root/bench/lib.sh"
bench_cert "$tmp" || { echo "openssl could not make a certificate" >&2; exit 2; }

set_loss() {
  nft flush ruleset
  [ "$1" = 0 ] && return
  nft add table inet loss
  nft add chain inet loss in '{ type filter hook input priority 0; }'
  nft add rule inet loss in numgen random mod 100 '<' "$1" drop
}

load=(fanout --rooms "$ROOMS" --conns "$ROOMS" --mix-rooms --pubs 1 --rate "$RATE" --size 64
      --duration "$DURATION" --warmup 1 --drain-timeout 20 --quiet)
for loss in $LOSSES; do
  set_loss 0
  "$WSCHAT" --host 127.0.0.1 --port "$PORT" --db "$tmp/wschat-$loss.db" --log-level warn \
    --tls-port "$TLS_PORT" --tls-cert "$tmp/cert.pem" --tls-key "$tmp/key.pem" --h3-port "$TLS_PORT" \
    >"$tmp/server.log" 2>&1 &
  pid=$!
  for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.05; done
  set_loss "$loss"
  for c in $CARRIERS; do
    log "loss $loss% $c"
    case $c in
      http1) args=(--url "ws://127.0.0.1:$PORT" --mux "$ROOMS") ;;
      http1-sep) args=(--url "ws://127.0.0.1:$PORT") ;;
      h2) args=(--url "ws://127.0.0.1:$PORT" --h2 "$ROOMS") ;;
      h3) args=(--url "ws://127.0.0.1:$TLS_PORT" --h3 "$ROOMS") ;;
      h3-sep) args=(--url "ws://127.0.0.1:$TLS_PORT" --h3 1) ;;
      *) log "unknown carrier $c"; exit 2 ;;
    esac
    timeout $((DURATION + 60)) "$BENCH" "${load[@]}" "${args[@]}" --server-pid "$pid" --room-prefix "l$loss$c" \
      2>/dev/null | grep '^RESULT' | sed "s/^RESULT/RESULT loss=$loss carrier=$c/" | tee -a "$tmp/results" >&2
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
