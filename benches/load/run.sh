#!/usr/bin/env bash
# Load test of the authenticated, database-backed listing route on SQLite:
#   GET /api/v1/experiments with an API key, against `echoai serve` (release build).
# 1. a fixed rate (default 1,000 requests/s) with oha's coordinated-omission correction,
#    reporting p50 / p99;
# 2. the maximum throughput (wrk, closed loop).
# The load generator shares the machine's cores with the server: figures are pessimistic.
# Usage: benches/load/run.sh [rate] [seconds]    (installs wrk and oha when missing)
# ECHO_LOAD_DATABASE=postgres://…/db runs it on PostgreSQL (the database is created fresh;
# afterwards the pool gauges must show every connection back to idle).
set -euo pipefail
cd "$(dirname "$0")/../.."
RATE="${1:-1000}"
SECS="${2:-30}"
PORT="${ECHO_LOAD_PORT:-18080}"
BASE="http://127.0.0.1:${PORT}"

if ! command -v wrk >/dev/null 2>&1; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk
fi
if ! command -v oha >/dev/null 2>&1; then
  cargo install oha --locked --quiet
fi
command -v jq >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq jq; }

cargo build --release -q -p echo-server-example --bin echoai
BIN=target/release/echoai
WORK="$(mktemp -d)"
DB="${ECHO_LOAD_DATABASE:-${WORK}/echo.db}"
case "${DB}" in
  postgres://*|postgresql://*)
    ADMIN="${DB%/*}/postgres"
    NAME="${DB##*/}"
    psql -q "${ADMIN}" -c "DROP DATABASE IF EXISTS ${NAME} WITH (FORCE)" -c "CREATE DATABASE ${NAME}" ;;
esac
cleanup() { [ -n "${SERVER:-}" ] && kill "${SERVER}" 2>/dev/null; wait 2>/dev/null; rm -rf "${WORK}"; }
trap cleanup EXIT

export ECHO_PEPPER="load-test pepper, not a secret: only for this run"
# One key drives the whole load: lift the per-key limits out of the way (they are per replica
# and in memory, measured separately).
export ECHO_RATE_LIMIT_ENTERPRISE=1000000000 ECHO_RATE_LIMIT_EXPERIMENTS=1000000
export ECHO_LOG=warn
"${BIN}" migrate --database "${DB}" >/dev/null
PASSWORD="$("${BIN}" user create --email load@echo.test --tier enterprise --database "${DB}" | sed -n 's/^password: //p')"
"${BIN}" serve --listen "127.0.0.1:${PORT}" --database "${DB}" --no-workers --no-scheduler 2>"${WORK}/server.log" &
SERVER=$!
for _ in $(seq 1 100); do curl -fsS "${BASE}/healthz" >/dev/null 2>&1 && break; sleep 0.1; done

TOKEN="$(curl -fsS -H 'content-type: application/json' \
  -d "{\"email\":\"load@echo.test\",\"password\":\"${PASSWORD}\"}" "${BASE}/api/v1/auth/login" | jq -r .access_token)"
KEY="$(curl -fsS -H 'content-type: application/json' -H "authorization: Bearer ${TOKEN}" \
  -d '{"name":"load"}' "${BASE}/api/v1/auth/api-keys" | jq -r .key)"
# 50 experiments to list (queued: no workers run in this server).
for i in $(seq 1 50); do
  curl -fsS -o /dev/null -H 'content-type: application/json' -H "x-api-key: ${KEY}" \
    -d "{\"prompt\":\"Best CRM for startups ${i}\",\"target_brand\":\"HubSpot\",\"competitor_brands\":[\"Salesforce\"],\"iterations\":10}" \
    "${BASE}/api/v1/experiments"
done
URL="${BASE}/api/v1/experiments?limit=20"
curl -fsS -H "x-api-key: ${KEY}" "${URL}" | jq -e '.items | length == 20' >/dev/null

echo "== warm-up"
oha -z 5s -c 16 --no-tui -H "x-api-key: ${KEY}" "${URL}" >/dev/null
echo "== fixed rate: ${RATE} requests/s for ${SECS} s (latency-corrected)"
oha -z "${SECS}s" -q "${RATE}" --latency-correction -c 50 --no-tui --output-format json \
  -H "x-api-key: ${KEY}" "${URL}" > "${WORK}/fixed.json"
jq -r '"rps \(.summary.requestsPerSec | floor)  p50 \(.latencyPercentiles.p50 * 1000 | . * 100 | round / 100) ms  p99 \(.latencyPercentiles.p99 * 1000 | . * 100 | round / 100) ms  p99.9 \(.latencyPercentiles["p99.9"] * 1000 | . * 100 | round / 100) ms  success \(.summary.successRate)  statuses \(.statusCodeDistribution)"' "${WORK}/fixed.json"
echo "== maximum throughput: wrk, 2 threads, 64 connections, ${SECS} s"
wrk -t2 -c64 -d"${SECS}s" --latency -H "x-api-key: ${KEY}" "${URL}"
echo "== server after the load"
sleep 2
curl -fsS "${BASE}/metrics" | grep -E '^echo_http_requests_total\{route="/api/v1/experiments",method="GET"|^echo_db_pool_connections' || true
