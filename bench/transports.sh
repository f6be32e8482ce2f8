#!/usr/bin/env bash
# bench/transports.sh — `make bench-transports`: the talk's road from polling
# to WebSocket, measured side by side (docs/TRANSPORTS.md).
#
# Starts a fresh release wschat pinned to CPU 0, runs `wschat-bench
# transports` pinned to CPU 1 (one chat workload over polling at 1 s and at
# 250 ms, long polling and WebSocket; every delivery verified), then a fresh
# server again for `--held 10000` (server RSS per held long poll). Keeps the
# JSON lines under bench/results/transports-<stamp>/ and writes
# docs/TRANSPORTS.md and docs/transports.png from them.
#
#   bash bench/transports.sh
#   CLIENTS=50 RATE=10 DURATION=30 HELD=10000 bash bench/transports.sh
#   QUICK=1 bash bench/transports.sh       smoke pass: 10 clients, 5 s, 1000 held
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
BUILD_DIR="${BUILD_DIR:-$root/build}"
BENCH="$BUILD_DIR/tools/wschat-bench/wschat-bench"
WSCHAT="$BUILD_DIR/wschat"
if [ "${QUICK:-0}" = 1 ]; then
  CLIENTS="${CLIENTS:-10}"; RATE="${RATE:-10}"; DURATION="${DURATION:-5}"; HELD="${HELD:-1000}"
else
  CLIENTS="${CLIENTS:-50}"; RATE="${RATE:-10}"; DURATION="${DURATION:-30}"; HELD="${HELD:-10000}"
fi
TRANSPORTS="${TRANSPORTS:-poll:1000,poll:250,longpoll,ws}"
LOW_RATE="${LOW_RATE:-1}"        # a second, quiet workload: where polling's empty answers show
PORT="${PORT:-18190}"
stamp="$(date -u +%Y%m%dT%H%M%SZ)"
OUT="${OUT:-$root/bench/results/transports-$stamp}"
mkdir -p "$OUT"
tmp="$(mktemp -d /tmp/wschat-transports.XXXXXX)"
pid=""
stop_server() { if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; pid=""; fi; }
trap 'stop_server; rm -rf "$tmp"' EXIT

# taskset execs the program, so $! is the server's own pid (for /proc)
TASKSET0=(); TASKSET1=()
if command -v taskset >/dev/null 2>&1; then TASKSET0=(taskset -c 0); TASKSET1=(taskset -c 1); fi

start_server() {
  rm -f "$tmp"/wschat.db*
  "${TASKSET0[@]}" "$WSCHAT" --host 127.0.0.1 --port "$PORT" --db "$tmp/wschat.db" --max-held $((HELD + 100)) \
    --log-level warn >>"$OUT/server.log" 2>&1 &
  pid=$!
  for _ in $(seq 100); do
    curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "transports.sh: the server did not start" >&2
  exit 1
}

cmd1=(wschat-bench transports --url "http://127.0.0.1:$PORT" --pid PID --clients "$CLIENTS" --rate "$RATE"
      --duration "$DURATION" --transport "$TRANSPORTS")
cmd2=(wschat-bench transports --url "http://127.0.0.1:$PORT" --pid PID --held "$HELD")

start_server
"${TASKSET1[@]}" "$BENCH" "${cmd1[@]:1}" --pid "$pid" --json "$OUT/results.jsonl" | tee "$OUT/transports.txt"
stop_server
cmd3=("${cmd1[@]}"); cmd3[9]="$LOW_RATE"
start_server
"${TASKSET1[@]}" "$BENCH" "${cmd3[@]:1}" --pid "$pid" --json "$OUT/results.jsonl" | tee -a "$OUT/transports.txt"
stop_server
start_server
"${TASKSET1[@]}" "$BENCH" "${cmd2[@]:1}" --pid "$pid" --json "$OUT/results.jsonl" | tee -a "$OUT/transports.txt"
stop_server

server_cmd="wschat --host 127.0.0.1 --port $PORT --db DB --max-held $((HELD + 100)) --log-level warn"
/usr/bin/python3 "$root/bench/transports_report.py" "$OUT/results.jsonl" "$root/docs" \
  "$server_cmd" "${cmd1[*]}"$'\n'"${cmd3[*]}" "${cmd2[*]}" "$(nproc) CPUs, $(uname -sr), server on CPU 0, client on CPU 1"
echo "transports.sh: wrote docs/TRANSPORTS.md and docs/transports.png (raw: $OUT)"
