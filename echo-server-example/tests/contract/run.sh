#!/usr/bin/env bash
# The API contract check (issue #16, "An exact contract"): schemathesis runs every check it has
# (`--checks all`) against a real `echoai serve` on a fresh SQLite database, once authenticated
# with an API key and once with a cookie session plus its CSRF token. Any failure exits non-zero.
#
# Usage: echo-server-example/tests/contract/run.sh   (from anywhere; needs the pinned
# schemathesis of requirements.txt on PATH, and builds the debug echoai when it is missing).
# Environment: CONTRACT_EXAMPLES (test cases per operation and phase, default 10), CONTRACT_SEED (default 16).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
cd "$root"

examples="${CONTRACT_EXAMPLES:-10}"
seed="${CONTRACT_SEED:-16}"
pinned="$(sed -n 's/^schemathesis==//p' "$here/requirements.txt")"
if [ "$(schemathesis --version 2>/dev/null | awk '{print $NF}')" != "$pinned" ]; then
  echo "schemathesis $pinned is required: pip install -r $here/requirements.txt" >&2
  exit 1
fi

cargo build -q -p echo-server-example --bin echoai
echoai="$root/target/debug/echoai"

tmp="$(mktemp -d)"
server_pid=""
cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT

port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
base="http://127.0.0.1:$port"
env_for_server=(
  ECHO_ENV=development
  ECHO_DATABASE="$tmp/echo.db"
  ECHO_LISTEN="127.0.0.1:$port"
  ECHO_PEPPER="$(head -c 32 /dev/urandom | base64 | tr -d '\n')"
  # Plain HTTP on loopback: the cookies lose `__Host-` and `Secure` (named echo_session, echo_csrf).
  ECHO_DEV_INSECURE_COOKIES=true
  ECHO_HSTS=false
  ECHO_OUTBOX_DIR="$tmp/outbox"
  ECHO_AUDIT_ARCHIVE_DIR="$tmp/audit"
  ECHO_LOG_FORMAT=json
  ECHO_LOG=warn
  ECHO_AUDIT_SIGNING_KEY="$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')"
  # schemathesis sends thousands of requests a minute, many deliberately unauthenticated: the
  # limits are raised so the run tests the operations rather than the limiter (whose 429s are
  # documented on every operation and tested in tests/integration).
  ECHO_RATE_LIMIT_FREE=1000000
  ECHO_RATE_LIMIT_PRO=1000000
  ECHO_RATE_LIMIT_ENTERPRISE=1000000
  ECHO_RATE_LIMIT_EXPERIMENTS=1000000
  ECHO_RATE_LIMIT_AUTH_FAILURES=1000000
  ECHO_SIMULATED_LATENCY_MS=0
)
unset ECHO_CONFIG
export "${env_for_server[@]}"

email="contract@example.com"
password="contract-check-password-1"
"$echoai" migrate >/dev/null
"$echoai" user create --email "$email" --admin --password-stdin <<<"$password" >/dev/null
key="$("$echoai" user key --email "$email" --label contract | grep -Eo 'echo1_[A-Za-z0-9_]+' | head -n1)"
[ -n "$key" ] || { echo "echoai user key printed no key" >&2; exit 1; }

"$echoai" serve >"$tmp/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 100); do
  curl -fsS "$base/healthz" >/dev/null 2>&1 && break
  kill -0 "$server_pid" 2>/dev/null || { cat "$tmp/server.log" >&2; exit 1; }
  sleep 0.1
done

json() { python3 -c "import json, sys; print(json.load(sys.stdin)[sys.argv[1]])" "$1"; }
policy="$(curl -fsS "$base/api/v1/privacy-policy" | json version)"
# Experiments need data-processing consent; the run may withdraw it later, which then answers
# the documented 403 consent-required.
curl -fsS -X POST "$base/api/v1/user/consent" -H "Authorization: Bearer $key" \
  -H 'Content-Type: application/json' \
  -d "{\"privacy_policy_version\": \"$policy\", \"data_processing\": true}" >/dev/null
login="$(curl -fsS -X POST "$base/api/v1/auth/login" -H 'Content-Type: application/json' \
  -d "{\"email\": \"$email\", \"password\": \"$password\"}")"
session="$(json access_token <<<"$login")"
csrf="$(json csrf_token <<<"$login")"

export SCHEMATHESIS_HOOKS=hooks PYTHONPATH="$here${PYTHONPATH:+:$PYTHONPATH}"
common=(
  "$base/openapi.json"
  --checks all
  --seed "$seed"
  --max-examples "$examples"
  --workers 2
  --generation-database none
  --suppress-health-check all
  # A debug build hashes passwords (argon2) slowly on a busy machine; the timing of requests is
  # measured in benches/, not here.
  --request-timeout 60
  # Deleting the account would leave every later request unauthenticated (it is tested in
  # tests/integration/privacy.rs).
  --exclude-operation-id delete_account
)
# schemathesis keeps a cache in its working directory: the run's own temporary one.
cd "$tmp"
status=0
start=$SECONDS
# Each run names its credential as the value of one security scheme of the document, so
# schemathesis sends that one and generates no values for the others (an X-API-Key it made up
# would take precedence over the session and answer 401 to everything).
with_auth() {
  cat "$here/schemathesis.toml"
  printf '\n[auth.openapi.%s]\n%s = "%s"\n' "$1" "$2" "$3"
}
with_auth bearer bearer "$key" >"$tmp/api-key.toml"
with_auth cookie api_key "$session" >"$tmp/cookie.toml"

echo "== schemathesis $pinned: API key (Authorization: Bearer)"
# Revoking or rotating keys could revoke the key this run authenticates with: those two
# operations are exercised by the cookie-session run below instead.
schemathesis --config-file "$tmp/api-key.toml" run "${common[@]}" \
  --exclude-operation-id revoke --exclude-operation-id rotate || status=1

echo "== schemathesis $pinned: cookie session with X-CSRF-Token"
# Logging out would end the session this run authenticates with: the API-key run covers it.
schemathesis --config-file "$tmp/cookie.toml" run "${common[@]}" \
  --exclude-operation-id logout -H "X-CSRF-Token: $csrf" || status=1

echo "== contract check: $((SECONDS - start)) s for both runs"
if [ "$status" -ne 0 ]; then
  echo "contract check failed; server log: $tmp/server.log" >&2
  tail -n 50 "$tmp/server.log" >&2
fi
exit "$status"
