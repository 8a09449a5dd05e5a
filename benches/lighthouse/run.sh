#!/usr/bin/env bash
# Lighthouse 12 on the dashboard: builds `echoai`, serves it on a free loopback port over a
# fresh SQLite file with the simulated provider, signs up and logs in a user, runs one
# experiment to the end, then runs Lighthouse (performance, accessibility, best practices)
# RUNS times (default 3) on the home, experiment detail, answers and new-experiment pages and
# prints the median of each category per page. The session cookie reaches Lighthouse through
# --extra-headers. Exits non-zero when a median is below MIN (default 95).
#
#   benches/lighthouse/run.sh
#
# Needs: node 20 + npm (the pinned lighthouse is installed from package-lock.json when
# missing) and Debian's Chromium (`apt-get install -y chromium`), or CHROME_PATH.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
runs="${RUNS:-3}"
min="${MIN:-95}"
cd "$here"
[ -d node_modules/lighthouse ] || npm ci --no-audit --no-fund
export CHROME_PATH="${CHROME_PATH:-/usr/bin/chromium}"
[ -x "$CHROME_PATH" ] || { echo "no Chromium at $CHROME_PATH (apt-get install -y chromium)" >&2; exit 1; }

(cd "$root" && cargo build -q -p echo-server-example --bin echoai)
work="$(mktemp -d)"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
base="http://127.0.0.1:$port"
ECHO_LISTEN="127.0.0.1:$port" ECHO_DATABASE="$work/echo.db" ECHO_DEV_INSECURE_COOKIES=true \
  ECHO_OUTBOX_DIR="$work/outbox" ECHO_LOG=warn "$root/target/debug/echoai" serve > "$work/server.log" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 1 100); do curl -fsS "$base/healthz" > /dev/null 2>&1 && break; sleep 0.1; done

# Sign up, log in, and run one experiment (the simulated provider finishes it in seconds). Each
# form's CSRF token is read from the form itself, as a browser would send it.
jar="$work/cookies"
token() { curl -fsS -b "$jar" -c "$jar" "$base$1" | grep -o 'name="csrf_token" value="[^"]*"' | head -n 1 | cut -d'"' -f4; }
post() {
  local form="$1" action="$2"
  shift 2
  curl -fsS -b "$jar" -c "$jar" -o /dev/null -w '%{redirect_url}' -H "sec-fetch-site: same-origin" \
    --data-urlencode "csrf_token=$(token "$form")" "$@" "$base$action"
}
post /signup /signup --data-urlencode "email=lighthouse@example.com" \
  --data-urlencode "password=correct horse battery" --data-urlencode "accept_policy=yes" > /dev/null
post /login /login --data-urlencode "email=lighthouse@example.com" \
  --data-urlencode "password=correct horse battery" > /dev/null
location="$(post /experiments/new /experiments --data-urlencode "prompt=Which CRM should a startup pick?" \
  --data-urlencode "target=HubSpot" --data-urlencode "target_aliases=HubSpot CRM" \
  --data-urlencode "competitors=Salesforce
Pipedrive
Zoho CRM" --data-urlencode "providers=simulated" --data-urlencode "iterations=50")"
experiment="${location%%\?*}"
experiment="/experiments/${experiment##*/experiments/}"
answers=""
for _ in $(seq 1 100); do
  page="$(curl -fsS -b "$jar" "$base$experiment")"
  if ! grep -q 'id="live"' <<< "$page"; then
    answers="$(grep -o "$experiment/runs/[0-9a-f-]*/answers" <<< "$page" | head -n 1)"
    [ -n "$answers" ] && break
  fi
  sleep 0.3
done
[ -n "$answers" ] || { echo "the experiment did not finish" >&2; cat "$work/server.log" >&2; exit 1; }
cookie="$(awk '$6 ~ /^echo_/ {printf "%s%s=%s", sep, $6, $7; sep="; "}' "$jar")"

chrome_flags="--headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
--disable-background-networking --disable-component-update --disable-sync"
mkdir -p "$work/reports"
echo "Lighthouse $(node_modules/.bin/lighthouse --version), $("$CHROME_PATH" --version 2>/dev/null), $runs runs per page: median (min-max)"
printf '%-16s %14s %14s %15s\n' page performance accessibility best-practices
status=0
for entry in "home=/" "experiment=$experiment" "answers=$answers" "new-experiment=/experiments/new"; do
  name="${entry%%=*}"
  path="${entry#*=}"
  for i in $(seq 1 "$runs"); do
    node_modules/.bin/lighthouse "$base$path" --quiet --output=json \
      --output-path="$work/reports/$name-$i.json" \
      --only-categories=performance,accessibility,best-practices \
      --extra-headers="{\"Cookie\": \"$cookie\"}" \
      --chrome-flags="$chrome_flags --user-data-dir=$work/profile-$name-$i"
  done
  line="$(node -e '
    const fs = require("fs");
    const [dir, name, runs, min] = process.argv.slice(1);
    const cats = ["performance", "accessibility", "best-practices"];
    const reports = [];
    for (let i = 1; i <= Number(runs); i++) reports.push(JSON.parse(fs.readFileSync(`${dir}/${name}-${i}.json`)));
    const median = (xs) => { xs.sort((a, b) => a - b); return xs[Math.floor(xs.length / 2)]; };
    const all = cats.map((c) => reports.map((r) => Math.round(100 * r.categories[c].score)));
    const scores = all.map((xs) => median([...xs]));
    for (const r of reports) {
      // A lost session would send Lighthouse to the log-in page and score that instead.
      if (r.finalDisplayedUrl !== r.requestedUrl || r.runtimeError) {
        console.error(`${name}: audited ${r.finalDisplayedUrl} for ${r.requestedUrl} ${JSON.stringify(r.runtimeError || "")}`);
        process.exit(1);
      }
    }
    const failing = new Set();
    for (const r of reports) for (const c of cats) for (const ref of r.categories[c].auditRefs) {
      const a = r.audits[ref.id];
      if (ref.weight > 0 && a.score !== null && a.score < 0.9) failing.add(`${c}: ${ref.id} (${a.score})`);
    }
    const shown = all.map((xs, i) => `${scores[i]} (${Math.min(...xs)}-${Math.max(...xs)})`);
    console.log([name, ...shown, scores.every((s) => s >= Number(min)) ? "ok" : "LOW", [...failing].join("; ")].join("\t"));
  ' "$work/reports" "$name" "$runs" "$min")"
  IFS=$'\t' read -r n perf a11y bp verdict failing <<< "$line"
  printf '%-16s %14s %14s %15s\n' "$n" "$perf" "$a11y" "$bp"
  [ -n "$failing" ] && echo "  below 0.9: $failing"
  [ "$verdict" = ok ] || status=1
done
exit "$status"
