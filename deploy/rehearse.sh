#!/usr/bin/env bash
# The staging rehearsal (issue #14, item 7): one API process and two workers with
# ECHO_ENV=staging on a database of the local PostgreSQL server, then a worker stopped mid-run,
# an expand-only migration under the old binary, and a PostgreSQL restart mid-run.
#
# Usage (as root: it restarts the local Debian cluster with pg_ctlcluster):
#   cargo build -p echo-server-example --bin echoai
#   deploy/rehearse.sh
# Environment: ECHOAI_BIN (default target/debug/echoai), DATABASE_URL (an admin URL of the local
# server; default postgres://postgres:postgres@127.0.0.1:5432/postgres).
#
# It creates and finally drops the database echo_staging only; every other file lives in a
# temporary directory. A failure exits 1 naming the step and prints the tail of every log.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN="${ECHOAI_BIN:-target/debug/echoai}"
ADMIN_URL="${DATABASE_URL:-postgres://postgres:postgres@127.0.0.1:5432/postgres}"
DB_NAME=echo_staging
DB_URL="${ADMIN_URL%/*}/${DB_NAME}"
RUN_ITERATIONS=40

START=$(date +%s.%N)
STEP="setup"
STEP_START=$START
TMP=$(mktemp -d -t echo-rehearsal.XXXXXX)
declare -A PIDS=()

elapsed() { printf '%.1f' "$(echo "$(date +%s.%N) - $1" | bc)"; }
log() { printf '[%6ss] %s\n' "$(elapsed "$START")" "$*"; }
step() {
  [ "$STEP" = setup ] || log "ok: $STEP ($(elapsed "$STEP_START") s)"
  STEP="$1"
  STEP_START=$(date +%s.%N)
  log "== $STEP"
}
fail() {
  log "FAILED in step '$STEP': $*" >&2
  exit 1
}

cleanup() {
  local code=$?
  set +e
  for name in "${!PIDS[@]}"; do kill -TERM "${PIDS[$name]}" 2>/dev/null; done
  for name in "${!PIDS[@]}"; do wait "${PIDS[$name]}" 2>/dev/null; done
  if [ "$code" -ne 0 ]; then
    for f in "$TMP"/*.log; do
      [ -e "$f" ] || continue
      echo "---- tail of $(basename "$f")" >&2
      tail -n 30 "$f" >&2
    done
  fi
  # The cluster may be down if the outage step failed half-way.
  [ -n "${PG_VERSION:-}" ] && pg_ctlcluster --skip-systemctl-redirect "$PG_VERSION" main start >/dev/null 2>&1
  psql "$ADMIN_URL" -qc "DROP DATABASE IF EXISTS $DB_NAME WITH (FORCE)" >/dev/null 2>&1
  rm -rf "$TMP"
  if [ "$code" -eq 0 ]; then log "rehearsal passed in $(elapsed "$START") s"; fi
  exit "$code"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
sql() { psql "$DB_URL" -XAtqc "$1"; }

# --- configuration shared by every process: staging, with the settings staging demands.
export ECHO_ENV=staging
export ECHO_DATABASE="$DB_URL"
ECHO_PEPPER=$(head -c 48 /dev/urandom | base64 | tr -d '\n')
ECHO_AUDIT_SIGNING_KEY=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
export ECHO_PEPPER ECHO_AUDIT_SIGNING_KEY
export ECHO_OUTBOX_DIR="$TMP/outbox" ECHO_AUDIT_ARCHIVE_DIR="$TMP/audit"
export ECHO_LOG_FORMAT=json
# Runs must take seconds to be "in flight": 40 iterations, 2 at a time, 400 ms each ≈ 8 s.
export ECHO_SIMULATED_LATENCY_MS=400 ECHO_PROVIDER_CONCURRENCY=2
# A stopped worker releases its job after 1 s; a lost lease is taken over after 6 s.
export ECHO_SHUTDOWN_GRACE_SECS=1 ECHO_WORKER_LEASE_SECS=6
export ECHO_PG_POOL_SIZE=2 ECHO_PG_MAX_OVERFLOW=4
unset ECHO_CONFIG ECHO_LISTEN

PORT=$(free_port)
BASE="http://127.0.0.1:$PORT"

start() { # name, args…
  local name=$1
  shift
  "$BIN" "$@" >>"$TMP/$name.log" 2>&1 &
  PIDS[$name]=$!
}
start_api() { start api serve --listen "127.0.0.1:$PORT" --no-workers --no-scheduler; }
stop() { # name: SIGTERM and wait
  kill -TERM "${PIDS[$1]}" && wait "${PIDS[$1]}" || true
  unset "PIDS[$1]"
}
alive() { for name in "$@"; do kill -0 "${PIDS[$name]}" 2>/dev/null || fail "process $name died (see $name.log)"; done; }
wait_ready() { # seconds
  local deadline=$((SECONDS + $1))
  until "$BIN" probe --timeout-secs 2 "$BASE/readyz" >/dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] || fail "/readyz not 200 after $1 s"
    sleep 0.2
  done
}
api() { # method path [json]: prints the body; HTTP status in $TMP/status
  curl -sS -o "$TMP/body" -w '%{http_code} %{content_type} %{time_total}' -X "$1" \
    -H "x-api-key: $KEY" -H 'content-type: application/json' ${3:+--data "$3"} \
    --max-time 20 "$BASE$2" >"$TMP/status" || echo "000 - -" >"$TMP/status"
  cat "$TMP/body" 2>/dev/null || true
}
create_experiment() {
  api POST /api/v1/experiments "{\"prompt\":\"Which CRM should a small team use?\",\"target_brand\":\"HubSpot\",\"competitor_brands\":[\"Salesforce\"],\"iterations\":$RUN_ITERATIONS,\"config\":{\"providers\":[\"simulated\"]}}" \
    | jq -r '.experiment_id // empty'
}
wait_running() { # experiment id: until a worker holds its job (prints the lease owner)
  local deadline=$((SECONDS + 30)) owner=""
  until [ -n "$owner" ]; do
    [ $SECONDS -lt $deadline ] || fail "experiment $1 did not start within 30 s"
    sleep 0.1
    owner=$(sql "SELECT lease_owner FROM jobs WHERE status = 'running' AND kind = 'run_experiment' AND payload::text LIKE '%$1%' LIMIT 1")
  done
  echo "$owner"
}
wait_completed() { # experiment id, seconds
  local deadline=$((SECONDS + $2)) status=""
  while :; do
    status=$(api GET "/api/v1/experiments/$1" | jq -r '.experiment.status // empty' 2>/dev/null || true)
    [ "$status" = completed ] && break
    case "$status" in failed | cancelled) fail "experiment $1 ended $status" ;; esac
    [ $SECONDS -lt $deadline ] || fail "experiment $1 still '$status' after $2 s"
    sleep 0.3
  done
}
check_run_intact() { # experiment id: every iteration stored once, none missing
  local row
  row=$(sql "SELECT count(*), count(DISTINCT i.idx), min(r.iterations_planned), min(r.iterations_recorded), string_agg(DISTINCT r.status, ',')
             FROM batch_runs r JOIN iterations i ON i.batch_run_id = r.id WHERE r.experiment_id = '$1'")
  IFS='|' read -r rows distinct planned recorded statuses <<<"$row"
  [ "$rows" = "$RUN_ITERATIONS" ] && [ "$distinct" = "$RUN_ITERATIONS" ] && [ "$planned" = "$RUN_ITERATIONS" ] &&
    [ "$recorded" = "$RUN_ITERATIONS" ] && [ "$statuses" = completed ] ||
    fail "run of $1: $rows rows, $distinct distinct indexes, planned $planned, recorded $recorded, status $statuses (want $RUN_ITERATIONS, completed)"
  log "run of $1: $rows iterations, each index once, status completed"
}

# ---------------------------------------------------------------------------------------------
step "preflight"
[ -x "$BIN" ] || fail "$BIN not found: cargo build -p echo-server-example --bin echoai (or set ECHOAI_BIN)"
[ "$(id -u)" = 0 ] || fail "run as root: the outage step restarts the local cluster with pg_ctlcluster"
for tool in psql pg_ctlcluster curl jq python3 bc sha384sum; do
  command -v "$tool" >/dev/null || fail "$tool is not installed"
done
# The cluster serving 5432: Debian names clusters by major version (/etc/postgresql/<v>/main).
PG_VERSION=$(pg_lsclusters -h 2>/dev/null | awk '$3 == 5432 && $2 == "main" {print $1; exit}')
[ -n "$PG_VERSION" ] || PG_VERSION=$(find /etc/postgresql -mindepth 1 -maxdepth 1 -printf '%f\n' | sort -V | tail -n 1)
[ -n "$PG_VERSION" ] || fail "no Debian PostgreSQL cluster in /etc/postgresql"
psql "$ADMIN_URL" -XAtqc 'SELECT 1' >/dev/null || fail "cannot connect to $ADMIN_URL"
log "PostgreSQL $PG_VERSION, binary $BIN, state in $TMP, API on $BASE"

step "create and migrate $DB_NAME"
psql "$ADMIN_URL" -qc "DROP DATABASE IF EXISTS $DB_NAME WITH (FORCE)" >/dev/null
psql "$ADMIN_URL" -qc "CREATE DATABASE $DB_NAME" >/dev/null
"$BIN" config check >"$TMP/config-check.log" 2>&1 || fail "config check refused the staging settings"
"$BIN" migrate --check >/dev/null 2>&1 && fail "migrate --check passed on an empty database"
"$BIN" migrate >>"$TMP/migrate.log" 2>&1 || fail "migrate failed"
"$BIN" migrate --check >>"$TMP/migrate.log" 2>&1 || fail "migrate --check: still pending after migrate"

step "start one API and two workers (staging)"
start_api
start worker1 worker --scheduler
start worker2 worker
wait_ready 30
alive api worker1 worker2

step "issue the smoke key and give consent"
"$BIN" user create --email smoke@echo.localhost >/dev/null 2>"$TMP/user.log" || fail "user create"
KEY=$("$BIN" user key --email smoke@echo.localhost --label staging-smoke 2>>"$TMP/user.log") || fail "user key"
case "$KEY" in echo1_test_*) ;; *) fail "staging did not issue a test key" ;; esac
# The smoke account processes experiments: it gives data-processing consent once, as an
# operator provisioning it would.
api POST /api/v1/user/consent '{"data_processing":true}' >/dev/null
read -r CODE _ <"$TMP/status" || true
[ "$CODE" = 200 ] || fail "POST /api/v1/user/consent answered $CODE: $(cat "$TMP/body")"

step "smoke --create"
"$BIN" smoke --base-url "$BASE" --api-key "$KEY" --create --json --timeout-secs 60 >"$TMP/smoke-1.log" 2>&1 ||
  fail "smoke failed: $(tail -c 600 "$TMP/smoke-1.log")"

step "SIGTERM the worker holding an in-flight run"
EXP=$(create_experiment)
[ -n "$EXP" ] || fail "could not create an experiment: $(cat "$TMP/status") $(cat "$TMP/body")"
OWNER=$(wait_running "$EXP")
sleep 1 # a few iterations in
HOLDER=""
for name in worker1 worker2; do [ "${OWNER##*-}" = "${PIDS[$name]}" ] && HOLDER=$name; done
[ -n "$HOLDER" ] || fail "no worker holds the job of $EXP (lease owner '$OWNER')"
DONE_BEFORE=$(sql "SELECT max(iterations_recorded) FROM batch_runs WHERE experiment_id = '$EXP'")
log "$HOLDER (pid ${PIDS[$HOLDER]}) holds the run ($DONE_BEFORE/$RUN_ITERATIONS iterations written so far); SIGTERM"
stop "$HOLDER"
wait_completed "$EXP" 60
check_run_intact "$EXP"
start "$HOLDER" worker
alive api worker1 worker2

step "expand-only migration under the old binary"
# What a newer release would apply: its SQL, recorded in _sqlx_migrations under a version this
# binary does not know, with sqlx's checksum (SHA-384 of the file).
MIGRATION=deploy/rehearsal/99990001_rehearsal_expand.sql
CHECKSUM=$(sha384sum "$MIGRATION" | cut -d' ' -f1)
psql "$DB_URL" -Xq -v ON_ERROR_STOP=1 >>"$TMP/migrate.log" 2>&1 <<SQL || fail "applying $MIGRATION"
BEGIN;
\i $MIGRATION
INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time)
VALUES (99990001, 'rehearsal expand', true, decode('$CHECKSUM', 'hex'), 0);
COMMIT;
SQL
"$BIN" migrate --check >>"$TMP/migrate.log" 2>&1 || fail "migrate --check refuses a database that is ahead"
wait_ready 10
"$BIN" smoke --base-url "$BASE" --api-key "$KEY" --create --json --timeout-secs 60 >"$TMP/smoke-2.log" 2>&1 ||
  fail "the old binary fails against the expanded schema: $(tail -c 600 "$TMP/smoke-2.log")"
# A restarted old API and worker must still start (and migrate, a no-op) against it.
stop api
stop worker2
start_api
start worker2 worker
wait_ready 30
alive api worker1 worker2
"$BIN" migrate >>"$TMP/migrate.log" 2>&1 || fail "the old binary's migrate refuses the newer database"

step "restart PostgreSQL while a run is in flight"
EXP=$(create_experiment)
[ -n "$EXP" ] || fail "could not create an experiment: $(cat "$TMP/status")"
wait_running "$EXP" >/dev/null
sleep 1
PIDS_BEFORE="${PIDS[api]} ${PIDS[worker1]} ${PIDS[worker2]}"
pg_ctlcluster --skip-systemctl-redirect "$PG_VERSION" main stop -m fast || fail "pg_ctlcluster stop"
DOWN_AT=$(date +%s.%N)
log "PostgreSQL stopped"
READYZ=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 "$BASE/readyz" || echo 000)
[ "$READYZ" = 503 ] || fail "/readyz answered $READYZ during the outage (want 503)"
api GET /api/v1/experiments >/dev/null
read -r CODE CTYPE SECS <"$TMP/status" || true
log "during the outage: /readyz 503; GET /api/v1/experiments $CODE $CTYPE in ${SECS}s"
[ "$CODE" = 503 ] || fail "API call answered $CODE during the outage (want 503)"
case "$CTYPE" in application/problem+json*) ;; *) fail "the 503 is $CTYPE, not problem+json" ;; esac
[ "$(echo "$SECS < 5" | bc)" = 1 ] || fail "the 503 took ${SECS}s (want under 5 s)"
pg_ctlcluster --skip-systemctl-redirect "$PG_VERSION" main start || fail "pg_ctlcluster start"
UP_AT=$(date +%s.%N)
log "PostgreSQL back after $(elapsed "$DOWN_AT") s"
wait_ready 60
RECOVERY=$(elapsed "$UP_AT")
log "recovery: /readyz 200 ${RECOVERY} s after PostgreSQL was back"
alive api worker1 worker2
[ "${PIDS[api]} ${PIDS[worker1]} ${PIDS[worker2]}" = "$PIDS_BEFORE" ] || fail "a process was restarted"
wait_completed "$EXP" 90
check_run_intact "$EXP"

step "stop everything and drop $DB_NAME"
for name in api worker1 worker2; do stop "$name"; done
psql "$ADMIN_URL" -qc "DROP DATABASE $DB_NAME WITH (FORCE)" >/dev/null || fail "drop database"
log "ok: $STEP ($(elapsed "$STEP_START") s)"
ELAPSED=$(elapsed "$START")
[ "$(echo "$ELAPSED < 180" | bc)" = 1 ] || fail "took ${ELAPSED}s (budget 180 s)"
log "summary: recovery after the PostgreSQL restart ${RECOVERY} s; total ${ELAPSED} s"
