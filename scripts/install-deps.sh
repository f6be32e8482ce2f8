#!/usr/bin/env bash
# Installs what wschat needs on Debian 12, and nothing that is already there.
# Idempotent: a second run does no apt-get at all.
#
#   scripts/install-deps.sh            what building and running need (make run)
#   scripts/install-deps.sh --test     also what the tests need (make test)
#   scripts/install-deps.sh --bench    also the benchmark peers and tools (make bench)
#   scripts/install-deps.sh --cluster  also redis-server and curl (make cluster)
#   (--test includes what `make deb` needs: dpkg-dev, debhelper, fakeroot, lintian;
#    tmux drives wschat-cli, socat plays systemd's notify socket, systemd-analyze
#    verifies the unit)
set -euo pipefail

BUILD_PKGS=(build-essential cmake pkg-config
            libuv1-dev libhttp-parser-dev libssl-dev openssl
            libjansson-dev libsqlite3-dev libhiredis-dev zlib1g-dev libnghttp2-dev
            libngtcp2-dev libngtcp2-crypto-gnutls-dev libnghttp3-dev libgnutls28-dev)
TEST_PKGS=(libcmocka-dev clang libclang-rt-14-dev nodejs npm chromium
           sqlite3 procps curl redis-server ngtcp2-client haproxy
           tmux socat openssl systemd dpkg-dev debhelper fakeroot lintian)
BENCH_PKGS=(python3-fastapi python3-uvicorn python3-websockets libwebsockets-dev
            gnuplot-nox linux-perf util-linux nftables)

want=("${BUILD_PKGS[@]}")
case "${1:-}" in
  --test) want+=("${TEST_PKGS[@]}") ;;
  --bench) want+=("${TEST_PKGS[@]}" "${BENCH_PKGS[@]}") ;;
  --cluster) want+=(redis-server curl) ;;
  "") ;;
  *) echo "usage: $0 [--test|--bench]" >&2; exit 2 ;;
esac

missing=()
for p in "${want[@]}"; do
  # node/npm may come from outside Debian (e.g. a NodeSource build): accept
  # the commands when they already work.
  case "$p" in
    nodejs) command -v node >/dev/null 2>&1 && continue ;;
    npm)    command -v npm  >/dev/null 2>&1 && continue ;;
  esac
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -q
  $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
else
  echo "install-deps: system packages present"
fi

# Test-only JavaScript packages (independent WebSocket client, browser driver).
[ "${1:-}" = "" ] || [ "${1:-}" = "--cluster" ] && exit 0
root="$(cd "$(dirname "$0")/.." && pwd)"
if [ -f "$root/tests/package.json" ] && [ ! -d "$root/tests/node_modules/ws" -o ! -d "$root/tests/node_modules/playwright-core" ]; then
  echo "install-deps: npm install in tests/"
  (cd "$root/tests" && npm install --no-audit --no-fund --loglevel=error)
fi
