#!/usr/bin/env bash
# The dashboard's browser journey: builds `echoai`, serves it on a free loopback port over a
# fresh SQLite file with the simulated provider, and drives Debian's Chromium through it with
# playwright-core. Simulated answers take 1.5 s, so a run stays in flight long enough for the
# journey to watch its live progress. Screenshots land in tests/browser/screenshots/ (git-ignored).
#
#   echo-server-example/tests/browser/run.sh
#
# Needs: node + npm (the pinned playwright-core is installed from package-lock.json when
# missing) and /usr/bin/chromium (`apt-get install -y chromium`), or CHROME_PATH.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
cd "$here"
[ -d node_modules/playwright-core ] || npm ci --no-audit --no-fund
export CHROME_PATH="${CHROME_PATH:-/usr/bin/chromium}"
[ -x "$CHROME_PATH" ] || { echo "no Chromium at $CHROME_PATH (apt-get install -y chromium)" >&2; exit 1; }

(cd "$root" && cargo build -q -p echo-server-example --bin echoai)
work="$(mktemp -d)"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
ECHO_LISTEN="127.0.0.1:$port" ECHO_DATABASE="$work/echo.db" ECHO_DEV_INSECURE_COOKIES=true \
  ECHO_SIMULATED_LATENCY_MS=1500 ECHO_OUTBOX_DIR="$work/outbox" ECHO_LOG=warn \
  "$root/target/debug/echoai" serve > "$work/server.log" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$port/healthz" > /dev/null 2>&1 && break
  sleep 0.1
done
mkdir -p screenshots
BASE_URL="http://127.0.0.1:$port" node journey.mjs || { cat "$work/server.log" >&2; exit 1; }
