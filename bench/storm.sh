#!/usr/bin/env bash
# The reconnect storm (docs/RELIABILITY.md): CONNS chat clients in ROOMS
# rooms on a release wschat; once all have joined and messages flow, the
# server is stopped (SIGTERM) and started again on the same database and
# port; wschat-bench storm reconnects every client with the web page's
# backoff and jitter, resumes with `since`, and checks nothing was lost or
# duplicated.
#
#   bash bench/storm.sh [CONNS=15000] [ROOMS=150] [RATE=200] [FLOW=5]
#
# FLOW: seconds of traffic before the restart. Prints wschat-bench's report;
# exits with its status. Writes bench/results/storm.json.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
CONNS=${CONNS:-15000}
ROOMS=${ROOMS:-150}
RATE=${RATE:-200}
FLOW=${FLOW:-5}
BIN=${WSCHAT_BIN:-$root/build/wschat}
BENCH=${WSCHAT_BENCH:-$root/build/tools/wschat-bench/wschat-bench}
[ -x "$BIN" ] && [ -x "$BENCH" ] || { echo "storm: build first (make build)" >&2; exit 2; }
mkdir -p "$root/bench/results"
dir=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
spid=""; bpid=""
cleanup() {
  [ -n "$bpid" ] && kill "$bpid" 2>/dev/null || true
  [ -n "$spid" ] && kill "$spid" 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT
ulimit -n "$(ulimit -Hn)"

start_server() {
  "$BIN" --host 127.0.0.1 --port "$port" --db "$dir/storm.db" --log-level warn >>"$dir/server.log" 2>&1 &
  spid=$!
  for _ in $(seq 200); do
    curl -sf "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && return 0
    sleep 0.05
  done
  echo "storm: server did not start" >&2; cat "$dir/server.log" >&2; exit 2
}

start_server
"$BENCH" storm --url "ws://127.0.0.1:$port" --conns "$CONNS" --rooms "$ROOMS" --rate "$RATE" \
  --json "$root/bench/results/storm.json" >"$dir/bench.out" 2>&1 &
bpid=$!
for _ in $(seq 1200); do
  grep -q "storm: ready" "$dir/bench.out" && break
  kill -0 "$bpid" 2>/dev/null || break
  sleep 0.1
done
cat "$dir/bench.out"
sleep "$FLOW"
t0=$(date +%s%N)
kill -TERM "$spid"
wait "$spid" || true
t1=$(date +%s%N)
start_server
t2=$(date +%s%N)
echo "storm: server stopped in $(( (t1 - t0) / 1000000 )) ms, restarted and healthy in $(( (t2 - t1) / 1000000 )) ms"
rc=0
wait "$bpid" || rc=$?
bpid=""
cat "$dir/bench.out" | grep -v "storm: ready"
grep -E "^(error|fatal)" "$dir/server.log" | head -5 || true
kill -TERM "$spid"; wait "$spid" || true; spid=""
exit $rc
