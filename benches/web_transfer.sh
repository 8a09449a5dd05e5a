#!/usr/bin/env bash
# Bytes the web dashboard transfers (compressed, as a browser receives them): the home page's
# HTML for a signed-in user with finished experiments (`EXPERIMENTS`, default 8), and every asset it links, with
# brotli (`br`) and with gzip. Serves `echoai` on a free loopback port over a fresh SQLite file.
#
#   bash benches/web_transfer.sh
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
(cd "$root" && cargo build -q -p echo-server-example --bin echoai)
work="$(mktemp -d)"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
base="http://127.0.0.1:$port"
ECHO_LISTEN="127.0.0.1:$port" ECHO_DATABASE="$work/echo.db" ECHO_DEV_INSECURE_COOKIES=true \
  ECHO_OUTBOX_DIR="$work/outbox" ECHO_LOG=warn "$root/target/debug/echoai" serve > "$work/log" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 1 100); do curl -fsS "$base/healthz" > /dev/null 2>&1 && break; sleep 0.1; done
jar="$work/cookies"
form_token() { curl -fsS -b "$jar" -c "$jar" "$base/$1" | grep -o 'name="csrf_token" value="[0-9a-f]*"' | grep -o '[0-9a-f]\{64\}'; }
# Sign-up does not sign in: register, then log in through the form.
curl -fsS -b "$jar" -c "$jar" -o /dev/null \
  -d "email=bench@example.com&password=correct+horse+battery&accept_policy=yes&csrf_token=$(form_token signup)" "$base/signup"
curl -fsS -b "$jar" -c "$jar" -o /dev/null \
  -d "email=bench@example.com&password=correct+horse+battery&csrf_token=$(form_token login)" "$base/login"
csrf="$(awk '$6 ~ /echo_csrf$/ {print $7}' "$jar")"
# Several finished experiments, so the home page carries its charts (a point per run).
for i in $(seq 1 "${EXPERIMENTS:-8}"); do
  curl -fsS -b "$jar" -o /dev/null -H "sec-fetch-site: same-origin" \
    --data-urlencode "csrf_token=$csrf" --data-urlencode "prompt=Best CRM for startups? ($i)" \
    --data-urlencode "target=HubSpot" --data-urlencode "competitors=Salesforce" \
    --data-urlencode "providers=simulated" --data-urlencode "iterations=20" "$base/experiments"
done
sleep 2
size() { curl -fsS -b "$jar" -H "accept-encoding: $1" -o /dev/null -w '%{size_download}' "$base$2"; }
html="$(curl -fsS -b "$jar" "$base/")"
assets="$(grep -o '/assets/[^"]*' <<< "$html" | sort -u)"
for enc in br gzip; do
  total="$(size "$enc" /)"
  line="home HTML $(size "$enc" /) B"
  for a in $assets; do
    n="$(size "$enc" "$a")"
    total=$((total + n))
    line="$line + ${a#/assets/} $n B"
  done
  echo "$enc: $line = $total B"
done
