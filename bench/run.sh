#!/usr/bin/env bash
# bench/run.sh — the benchmark matrix behind `make bench` (docs/BENCHMARKS.md).
#
# For each server (wschat and its peers in bench/peers/) and each scenario it
# starts a fresh server pinned to CPU 0, runs wschat-bench pinned to CPU 1,
# and keeps the JSON of every run under bench/results/<stamp>/. Then
# bench/report.py writes docs/BENCHMARKS.md and the charts from the medians.
#
#   bash bench/run.sh                  the full matrix, 3 runs per figure
#   QUICK=1 bash bench/run.sh          smoke pass: 1 run, short, small connect
#   SERVERS="wschat node" SCENARIOS="fanout_1x100 echo" bash bench/run.sh
#   RUNS=5 DURATION=20 ... ; BUILD_DIR=/path/to/build ; NO_REPORT=1
set -uo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
BUILD_DIR="${BUILD_DIR:-$root/build}"
BENCH="$BUILD_DIR/tools/wschat-bench/wschat-bench"
WSCHAT="$BUILD_DIR/wschat"
PEERS="$root/bench/peers"
PYTHON=/usr/bin/python3          # Debian's python3 (fastapi, uvicorn), not a pyenv shim
SERVER_CPU="${SERVER_CPU:-0}"
BENCH_CPU="${BENCH_CPU:-1}"
PORT_BASE="${PORT_BASE:-18100}"

if [ "${QUICK:-0}" = 1 ]; then
  RUNS="${RUNS:-1}"; DURATION="${DURATION:-2}"; WARMUP="${WARMUP:-0.5}"
  CONNECT_CONNS="${CONNECT_CONNS:-2000}"
else
  RUNS="${RUNS:-3}"; DURATION="${DURATION:-10}"; WARMUP="${WARMUP:-2}"
  CONNECT_CONNS="${CONNECT_CONNS:-15000}"
fi
# uWebSockets is built outside the tree (bench/peers/README.md); UWS_SERVER
# names the binary, and the peer joins the default matrix when it exists.
UWS_SERVER="${UWS_SERVER:-/work/peers/build/uws_server}"
if [ -x "$UWS_SERVER" ]; then SERVERS="${SERVERS:-wschat uws lws node fastapi}"; fi
SERVERS="${SERVERS:-wschat lws node fastapi}"
SCENARIOS="${SCENARIOS:-fanout_1x100 fanout_1x1000_rate fanout_100x10 echo connect connect_echo}"
DRAIN="${DRAIN:-60}"

stamp="$(date -u +%Y%m%dT%H%M%SZ)"
OUT="${OUT:-$root/bench/results/$stamp}"
mkdir -p "$OUT"
tmp="$(mktemp -d /tmp/wschat-bench.XXXXXX)"
trap 'stop_server; rm -rf "$tmp"' EXIT

log() { echo "bench: $*" >&2; }

# --- prerequisites --------------------------------------------------------------
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
[ -x "$BENCH" ] || { log "missing $BENCH (build first: make build)"; exit 2; }
case " $SERVERS " in *" wschat "*) [ -x "$WSCHAT" ] || { log "missing $WSCHAT"; exit 2; } ;; esac
case " $SERVERS " in *" lws "*)
  mkdir -p "$PEERS/build"
  if [ ! -x "$PEERS/build/lws_server" ] || [ "$PEERS/lws_server.c" -nt "$PEERS/build/lws_server" ]; then
    log "building the libwebsockets peer"
    cc -O2 -Wall -Wextra -o "$PEERS/build/lws_server" "$PEERS/lws_server.c" \
      $(pkg-config --cflags --libs libwebsockets) || exit 2
  fi ;;
esac
case " $SERVERS " in *" node "*)
  if [ ! -d "$PEERS/node_modules/ws" ]; then
    log "npm install in bench/peers"
    (cd "$PEERS" && npm install --no-audit --no-fund --loglevel=error) || exit 2
  fi ;;
esac

# --- servers ----------------------------------------------------------------------
SERVER_PID=""
server_cmd() { # name port -> the command line (also recorded in the report)
  case "$1" in
    wschat)  echo "$WSCHAT --host 127.0.0.1 --port $2 --db $tmp/bench.db --echo" ;;
    lws)     echo "$PEERS/build/lws_server $2" ;;
    uws)     echo "$UWS_SERVER $2" ;;
    node)    echo "node $PEERS/node_ws.mjs $2" ;;
    fastapi) echo "$PYTHON $PEERS/fastapi_demo.py $2" ;;
    *) log "unknown server $1"; exit 2 ;;
  esac
}

start_server() { # name port
  rm -f "$tmp"/bench.db*
  local cmd; cmd="$(server_cmd "$1" "$2")"
  # taskset execs the server, so $! is the server's own pid
  taskset -c "$SERVER_CPU" $cmd >>"$OUT/$1.server.log" 2>&1 &
  SERVER_PID=$!
  local i
  for i in $(seq 1 200); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$2") 2>/dev/null; then return 0; fi
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then log "$1 exited at start (see $OUT/$1.server.log)"; return 1; fi
    sleep 0.05
  done
  log "$1 did not listen on $2"; return 1
}

stop_server() {
  [ -n "$SERVER_PID" ] || return 0
  kill "$SERVER_PID" 2>/dev/null
  for _ in $(seq 1 100); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.05; done
  kill -9 "$SERVER_PID" 2>/dev/null
  wait "$SERVER_PID" 2>/dev/null
  SERVER_PID=""
}

# --- scenarios --------------------------------------------------------------------
scenario_args() {
  local common="--duration $DURATION --warmup $WARMUP --drain-timeout $DRAIN"
  case "$1" in
    fanout_1x100)       echo "fanout --rooms 1 --conns 100 --pubs all --window 1 --size 64 $common" ;;
    fanout_1x1000_rate) echo "fanout --rooms 1 --conns 1000 --pubs 1 --rate 100 --size 64 $common" ;;
    fanout_100x10)      echo "fanout --rooms 100 --conns 10 --pubs all --window 1 --size 64 $common" ;;
    echo)               echo "echo --conns 100 --inflight 16 --size 64 $common" ;;
    connect)            echo "connect --conns $CONNECT_CONNS --rooms $(( (CONNECT_CONNS + 99) / 100 )) --concurrency 256 --settle 2" ;;
    # The same on /echo: the connection and WebSocket alone, with no chat
    # work (wschat's joins send welcome, joined and presence; peers send nothing).
    connect_echo)       echo "connect --conns $CONNECT_CONNS --concurrency 256 --settle 2" ;;
    *) log "unknown scenario $1"; exit 2 ;;
  esac
}

{
  echo "stamp=$stamp"
  echo "runs=$RUNS"; echo "duration=$DURATION"; echo "warmup=$WARMUP"
  echo "connect_conns=$CONNECT_CONNS"; echo "quick=${QUICK:-0}"
  echo "server_cpu=$SERVER_CPU"; echo "bench_cpu=$BENCH_CPU"
  echo "loadavg_start=$(cut -d' ' -f1-3 /proc/loadavg)"
  # the commit the measured binary was built from (WSCHAT_COMMIT when it was built elsewhere)
  c="${WSCHAT_COMMIT:-$(git -C "$root" rev-parse --short HEAD 2>/dev/null)}"
  if [ -z "${WSCHAT_COMMIT:-}" ] && [ -n "$(git -C "$root" status --porcelain -- src 2>/dev/null)" ]; then c="$c + uncommitted src/ changes"; fi
  echo "wschat_commit=$c"
  for s in $SERVERS; do echo "server.$s=taskset -c $SERVER_CPU $(server_cmd "$s" PORT | sed "s#$root/##g; s#$tmp#TMP#g")"; done
  for sc in $SCENARIOS; do echo "scenario.$sc=taskset -c $BENCH_CPU wschat-bench $(scenario_args "$sc") --url ws://127.0.0.1:PORT --server-pid PID --json FILE"; done
} >"$OUT/meta.txt"

port=$PORT_BASE
failures=0
for sc in $SCENARIOS; do
  for s in $SERVERS; do
    for run in $(seq 1 "$RUNS"); do
      port=$((port + 1))
      if ! start_server "$s" "$port"; then failures=$((failures + 1)); stop_server; continue; fi
      sleep 0.3
      args="$(scenario_args "$sc")"
      json="$OUT/$s.$sc.$run.json"
      log "$s $sc run $run/$RUNS"
      timeout 600 taskset -c "$BENCH_CPU" "$BENCH" $args --url "ws://127.0.0.1:$port" \
        --server-pid "$SERVER_PID" --json "$json" --quiet >"$OUT/$s.$sc.$run.out" 2>"$OUT/$s.$sc.$run.err"
      rc=$?
      grep '^RESULT' "$OUT/$s.$sc.$run.out" | sed "s/^/bench: $s $sc: /" >&2
      if [ $rc -ne 0 ]; then
        failures=$((failures + 1))
        log "$s $sc run $run exited $rc (see $OUT/$s.$sc.$run.err)"
        head -5 "$OUT/$s.$sc.$run.err" >&2
      fi
      stop_server
      sleep 0.5
    done
  done
done

echo "loadavg_end=$(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT/meta.txt"
echo "failed_runs=$failures" >>"$OUT/meta.txt"
log "results in $OUT ($failures failed runs)"
if [ "${NO_REPORT:-0}" != 1 ]; then
  "$PYTHON" "$root/bench/report.py" "$OUT" --wschat "$WSCHAT" || exit 1
fi
exit 0
