#!/usr/bin/env bash
# Where wschat's time goes, per delivered message (docs/PERFORMANCE.md).
#
#   bench/profile.sh [fanout|echo]...     (default: both)
#
# Runs the release build pinned to CPU 0 under a load from wschat-bench on
# CPU 1, and over one measured window counts, in the server process:
#   CPU ns          utime+stime from /proc/PID/stat
#   syscalls        perf's raw_syscalls:sys_enter tracepoint, and the main ones by name
#   allocations     an LD_PRELOAD counter of malloc/calloc/realloc (bench/tools/malloc_count.c)
#   bytes           wschat's own /metrics byte counters
# divided by the deliveries the server queued in that window (/metrics).
# A second window is sampled with perf record -g and drawn as a flame graph
# (docs/flame-SCENARIO.svg). Writes bench/results/profile-SCENARIO.txt.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
BIN="$root/build/wschat"
BENCH="$root/build/tools/wschat-bench/wschat-bench"
out="$root/bench/results"
mkdir -p "$out"
tmp="$(mktemp -d)"
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$tmp"' EXIT
WINDOW=${WINDOW:-5}
PORT=${PORT:-18300}

[ -x "$BIN" ] && [ -x "$BENCH" ] || { echo "build first: make build" >&2; exit 1; }
cc -O2 -shared -fPIC -o "$tmp/malloc_count.so" "$root/bench/tools/malloc_count.c" -ldl

metric() { curl -s "http://127.0.0.1:$PORT/metrics" | awk -v k="$1" '$1==k {printf "%.0f\n", $2}'; }
cpu_ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
mallocs() { kill -USR2 "$1"; sleep 0.2; tail -n 1 "$tmp/malloc.txt" | awk '{split($1,a,"=");split($2,b,"=");split($3,c,"=");print a[2]+b[2]+c[2]}'; }

profile() {
  local scn=$1 load counter
  case $scn in
    fanout) load=(fanout --rooms 1 --conns 100 --size 64 --window 1); counter=wschat_chat_messages_out_total ;;
    echo)   load=(echo --conns 100 --inflight 16 --size 64); counter=wschat_messages_out_total ;;
    *) echo "unknown scenario $scn" >&2; return 1 ;;
  esac
  rm -f "$tmp/malloc.txt" "$tmp/bench.db"*
  MALLOC_COUNT_OUT="$tmp/malloc.txt" LD_PRELOAD="$tmp/malloc_count.so" \
    taskset -c 0 "$BIN" --host 127.0.0.1 --port "$PORT" --db "$tmp/bench.db" --echo --log-level warn &
  local pid=$!
  for _ in $(seq 50); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.1; done
  taskset -c 1 "$BENCH" "${load[@]}" --url "ws://127.0.0.1:$PORT" --warmup 2 \
    --duration $((WINDOW * 2 + 6)) --server-pid "$pid" --quiet > "$tmp/bench.out" 2>&1 &
  local bench=$!
  sleep 4
  local d0 b0 bi0 c0 m0
  d0=$(metric "$counter"); b0=$(metric wschat_bytes_out_total); bi0=$(metric wschat_bytes_in_total)
  c0=$(cpu_ticks "$pid"); m0=$(mallocs "$pid")
  perf stat -x, -e raw_syscalls:sys_enter,syscalls:sys_enter_writev,syscalls:sys_enter_write,syscalls:sys_enter_read,syscalls:sys_enter_epoll_wait,syscalls:sys_enter_futex \
    -p "$pid" -o "$tmp/stat.csv" -- sleep "$WINDOW"
  local d1 b1 bi1 c1 m1
  d1=$(metric "$counter"); b1=$(metric wschat_bytes_out_total); bi1=$(metric wschat_bytes_in_total)
  c1=$(cpu_ticks "$pid"); m1=$(mallocs "$pid")
  perf record -F 499 --call-graph dwarf,16384 -p "$pid" -o "$tmp/perf.data" -- sleep "$WINDOW" 2>/dev/null
  wait "$bench" || true
  kill -TERM "$pid"; wait "$pid" || true

  local n=$((d1 - d0)) hz; hz=$(getconf CLK_TCK)
  {
    echo "scenario: $scn (${load[*]}), window ${WINDOW}s"
    echo "deliveries: $n ($((n / WINDOW))/s)"
    awk -v n="$n" -v ticks=$((c1 - c0)) -v hz="$hz" 'BEGIN {printf "server CPU: %.0f ns per delivery\n", ticks / hz * 1e9 / n}'
    awk -F, -v n="$n" '$3 ~ /sys_enter/ {printf "%-32s %12d  %.4f per delivery\n", $3, $1, $1 / n}' "$tmp/stat.csv"
    awk -v n="$n" -v m=$((m1 - m0)) 'BEGIN {printf "allocations: %d  %.4f per delivery\n", m, m / n}'
    awk -v n="$n" -v b=$((b1 - b0)) -v bi=$((bi1 - bi0)) 'BEGIN {printf "bytes out: %.1f per delivery; bytes in: %.1f per delivery\n", b / n, bi / n}'
    grep '^RESULT' "$tmp/bench.out" || true
  } | tee "$out/profile-$scn.txt"
  perf script -i "$tmp/perf.data" 2>/dev/null |
    python3 "$root/bench/flamegraph.py" --comm wschat --title "wschat $scn: ${load[*]}" --top 15 \
      > "$root/docs/flame-$scn.svg" 2> "$out/profile-$scn-top.txt"
  # A PNG of it too, for viewers that do not show SVG (Chromium is a test dependency).
  if command -v chromium >/dev/null; then
    chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
      --disable-background-networking --disable-component-update --disable-sync \
      --user-data-dir="$tmp/chromium" --window-size=1220,820 \
      --screenshot="$root/docs/flame-$scn.png" "file://$root/docs/flame-$scn.svg" >/dev/null 2>&1 || true
  fi
  echo "flame graph: docs/flame-$scn.svg"
}

for s in "${@:-fanout echo}"; do for x in $s; do profile "$x"; done; done
