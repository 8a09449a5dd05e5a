#!/usr/bin/env bash
# Self-test of deploy/check-manifests.sh: the committed overlays pass, and each mistake below,
# made in a rendered copy, fails with the message that names it. A check that never fails
# would otherwise look the same as one that passes.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
check="$here/check-manifests.sh"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

"$check" --render-to "$work/clean"
"$check" --rendered "$work/clean" >/dev/null

passed=0
failed=0

# mutate NAME EXPECTED PYTHON: copy the clean render, run PYTHON on it (`docs` maps each
# environment to its documents; find/container/pod/var/configmap below pick one out), then
# expect the check to fail with EXPECTED in its output.
mutate() {
  local name="$1" expected="$2" code="$3" dir="$work/$1" out
  cp -r "$work/clean" "$dir"
  python3 - "$dir" "$code" <<'PY'
import sys
from pathlib import Path

import yaml

dir, code = Path(sys.argv[1]), sys.argv[2]
docs = {e: list(yaml.safe_load_all((dir / f"{e}.yaml").read_text())) for e in ("staging", "production")}


def find(env, kind, name):
    return next(d for d in docs[env] if d["kind"] == kind and d["metadata"]["name"] == name)


def container(env, kind, name):
    return find(env, kind, name)["spec"]["template"]["spec"]["containers"][0]


def pod(env, kind, name):
    return find(env, kind, name)["spec"]["template"]["spec"]


def var(c, name):
    return next(v for v in c["env"] if v["name"] == name)


def configmap(env):
    return next(d for d in docs[env] if d["kind"] == "ConfigMap")


exec(code)
for env, ds in docs.items():
    (dir / f"{env}.yaml").write_text(yaml.safe_dump_all(ds, sort_keys=False))
PY
  if out="$("$check" --rendered "$dir" 2>&1)"; then
    echo "FAIL $name: the check passed, expected: $expected"
    failed=$((failed + 1))
  elif ! grep -qF -- "$expected" <<<"$out"; then
    echo "FAIL $name: the check failed without naming it ($expected); it said:"
    echo "$out"
    failed=$((failed + 1))
  else
    echo "ok   $name"
    passed=$((passed + 1))
  fi
}

mutate writable-root "readOnlyRootFilesystem must be true" \
  'del container("staging", "Deployment", "echo-api")["securityContext"]["readOnlyRootFilesystem"]'
mutate escalation-in-job "allowPrivilegeEscalation must be false" \
  'container("production", "Job", "echo-migrate")["securityContext"]["allowPrivilegeEscalation"] = True'
mutate caps-kept "capabilities.drop must include ALL" \
  'container("production", "Deployment", "echo-worker")["securityContext"]["capabilities"]["drop"] = ["NET_RAW"]'
mutate caps-added "capabilities.add must be empty" \
  'container("staging", "Deployment", "echo-worker")["securityContext"]["capabilities"]["add"] = ["NET_ADMIN"]'
mutate root-pod "runAsNonRoot must be true" \
  'pod("staging", "Deployment", "echo-worker")["securityContext"]["runAsNonRoot"] = False; del container("staging", "Deployment", "echo-worker")["securityContext"]["runAsNonRoot"]'
mutate no-seccomp "seccompProfile.type must be RuntimeDefault" \
  'del pod("production", "Deployment", "echo-api")["securityContext"]["seccompProfile"]; del container("production", "Deployment", "echo-api")["securityContext"]["seccompProfile"]'
mutate no-limits "resources.limits must set cpu and memory" \
  'del container("staging", "Job", "echo-migrate")["resources"]["limits"]'
mutate added-sidecar "container sidecar: securityContext.readOnlyRootFilesystem must be true" \
  'pod("production", "Deployment", "echo-api")["containers"].append({"name": "sidecar", "image": "busybox"})'
mutate no-readiness "readinessProbe must be an HTTP GET of /readyz" \
  'del container("production", "Deployment", "echo-api")["readinessProbe"]'
mutate liveness-on-readyz "livenessProbe must be an HTTP GET of /healthz" \
  'container("staging", "Deployment", "echo-api")["livenessProbe"]["httpGet"]["path"] = "/readyz"'
mutate shared-secret "staging and production share a secret: echo-production-app" \
  'var(container("staging", "Deployment", "echo-api"), "ECHO_PEPPER")["valueFrom"]["secretKeyRef"]["name"] = "echo-production-app"'
mutate shared-namespace "staging and production share a namespace: echo-production" \
  '[d["metadata"].__setitem__("namespace", "echo-production") for d in docs["staging"] if d["kind"] != "Namespace"]'
mutate two-namespaces "must use exactly one namespace" \
  'find("staging", "Deployment", "echo-worker")["metadata"]["namespace"] = "default"'
mutate shared-database "staging and production share a database: echo_production" \
  'configmap("staging")["data"]["DATABASE_NAME"] = "echo_production"'
mutate literal-database-url "staging and production share a database: echo_production" \
  'container("staging", "Deployment", "echo-worker")["env"].append({"name": "ECHO_DATABASE", "value": "postgres://u@db/echo_production?sslmode=require"})'
mutate short-worker-grace "terminationGracePeriodSeconds (30) must be greater than ECHO_SHUTDOWN_GRACE_SECS (30)" \
  'pod("production", "Deployment", "echo-worker")["terminationGracePeriodSeconds"] = 30'
mutate long-shutdown-grace "terminationGracePeriodSeconds (60) must be greater than ECHO_SHUTDOWN_GRACE_SECS (90)" \
  'configmap("staging")["data"]["ECHO_SHUTDOWN_GRACE_SECS"] = "90"'
# shellcheck disable=SC2016 # the message quotes $(...) literally
mutate url-before-its-parts 'ECHO_DATABASE refers to $(DATABASE_USER), which is not defined before it' \
  'c = container("staging", "Deployment", "echo-worker"); c["env"].insert(0, c["env"].pop(c["env"].index(var(c, "ECHO_DATABASE"))))'
# shellcheck disable=SC2016 # the message quotes $(...) literally
mutate undefined-part 'ECHO_DATABASE refers to $(DATABASE_NAME), which is not defined before it' \
  'del configmap("production")["data"]["DATABASE_NAME"]'
mutate wrong-env "ECHO_ENV must be 'production', found 'staging'" \
  'configmap("production")["data"]["ECHO_ENV"] = "staging"'

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
