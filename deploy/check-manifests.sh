#!/usr/bin/env bash
# Renders the staging and production overlays (kubectl kustomize, offline) and checks what a
# review could miss: every container's hardening, the API's probes, the isolation of the two
# environments (namespace, database, Secrets), and that the kubelet waits longer than a worker
# drains. Prints every violation and exits 1 if there is any.
#
#   deploy/check-manifests.sh                  # render deploy/k8s/overlays/{staging,production}
#   deploy/check-manifests.sh --rendered DIR   # check DIR/staging.yaml and DIR/production.yaml
#   deploy/check-manifests.sh --render-to DIR  # only render into DIR (for the self-test)
#
# Needs bash, python3 with PyYAML, and kubectl (or kustomize) to render.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
overlays=(staging production)

render() {
  local out="$1" env
  mkdir -p "$out"
  for env in "${overlays[@]}"; do
    if command -v kubectl >/dev/null 2>&1; then
      kubectl kustomize "$here/k8s/overlays/$env" >"$out/$env.yaml"
    elif command -v kustomize >/dev/null 2>&1; then
      kustomize build "$here/k8s/overlays/$env" >"$out/$env.yaml"
    else
      echo "check-manifests: neither kubectl nor kustomize is installed" >&2
      exit 2
    fi
  done
}

case "${1:-}" in
  --rendered)
    dir="${2:?--rendered needs a directory}"
    ;;
  --render-to)
    render "${2:?--render-to needs a directory}"
    exit 0
    ;;
  "")
    dir="$(mktemp -d)"
    trap 'rm -rf "$dir"' EXIT
    render "$dir"
    ;;
  *)
    echo "usage: $0 [--rendered DIR | --render-to DIR]" >&2
    exit 2
    ;;
esac

python3 - "$dir" "${overlays[@]}" <<'PY'
import re
import sys
from pathlib import Path

import yaml

WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob", "Pod"}
# The server's and workers' default drain on SIGTERM (ECHO_SHUTDOWN_GRACE_SECS).
DEFAULT_SHUTDOWN_GRACE = 30
# Kubernetes' default when a pod spec sets no terminationGracePeriodSeconds.
DEFAULT_TERMINATION_GRACE = 30

rendered, envs = Path(sys.argv[1]), sys.argv[2:]
errors = []


def fail(env, where, message):
    errors.append(f"{env}: {where}: {message}")


def pod_spec(doc):
    if doc["kind"] == "Pod":
        return doc.get("spec") or {}
    if doc["kind"] == "CronJob":
        return doc["spec"]["jobTemplate"]["spec"]["template"].get("spec") or {}
    return doc["spec"]["template"].get("spec") or {}


def containers(spec):
    return (spec.get("initContainers") or []) + (spec.get("containers") or [])


def env_value(env, docs, container, name):
    """A variable's literal value: the container's own env first, then envFrom ConfigMaps."""
    for var in container.get("env") or []:
        if var.get("name") == name and "value" in var:
            return var["value"]
    for source in container.get("envFrom") or []:
        ref = (source.get("configMapRef") or {}).get("name")
        data = configmaps(docs).get(ref)
        if ref and data is None:
            fail(env, container["name"], f"envFrom names ConfigMap {ref!r}, which is not rendered")
        elif data and name in data:
            return data[name]
    return None


def configmaps(docs):
    return {
        d["metadata"]["name"]: d.get("data") or {}
        for d in docs
        if d["kind"] == "ConfigMap"
    }


def check_security(env, where, pod_ctx, container):
    ctx = container.get("securityContext") or {}

    def effective(key):
        return ctx.get(key, pod_ctx.get(key))

    if effective("runAsNonRoot") is not True:
        fail(env, where, "securityContext.runAsNonRoot must be true")
    if effective("runAsUser") == 0:
        fail(env, where, "securityContext.runAsUser must not be 0 (root)")
    if ctx.get("readOnlyRootFilesystem") is not True:
        fail(env, where, "securityContext.readOnlyRootFilesystem must be true")
    if ctx.get("allowPrivilegeEscalation") is not False:
        fail(env, where, "securityContext.allowPrivilegeEscalation must be false")
    if ctx.get("privileged"):
        fail(env, where, "securityContext.privileged must not be set")
    caps = ctx.get("capabilities") or {}
    if "ALL" not in (caps.get("drop") or []):
        fail(env, where, "securityContext.capabilities.drop must include ALL")
    if caps.get("add"):
        fail(env, where, f"securityContext.capabilities.add must be empty, not {caps['add']}")
    seccomp = (effective("seccompProfile") or {}).get("type")
    if seccomp != "RuntimeDefault":
        fail(env, where, f"securityContext.seccompProfile.type must be RuntimeDefault, not {seccomp}")
    resources = container.get("resources") or {}
    for kind in ("requests", "limits"):
        have = resources.get(kind) or {}
        if "cpu" not in have or "memory" not in have:
            fail(env, where, f"resources.{kind} must set cpu and memory")


def check_references(env, where, docs, container):
    """Kubernetes expands $(NAME) only from variables defined before it, and silently leaves
    the text as it is otherwise: an ECHO_DATABASE of "postgres://$(DATABASE_USER)..." would
    reach echoai literally."""
    defined = set()
    for source in container.get("envFrom") or []:
        ref = (source.get("configMapRef") or {}).get("name")
        defined.update(configmaps(docs).get(ref) or {})
    for var in container.get("env") or []:
        for name in re.findall(r"(?<!\$)\$\(([A-Za-z_][A-Za-z0-9_]*)\)", var.get("value") or ""):
            if name not in defined:
                fail(env, where, f"{var['name']} refers to $({name}), which is not defined before it")
        defined.add(var["name"])


def check_probes(env, where, container):
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        got = ((container.get(probe) or {}).get("httpGet") or {}).get("path")
        if got != path:
            fail(env, where, f"{probe} must be an HTTP GET of {path}, found {got!r}")


def database_names(docs, workloads):
    names = set()
    for data in configmaps(docs).values():
        if data.get("DATABASE_NAME"):
            names.add(data["DATABASE_NAME"])
    # A literal URL in a container's env (no $(...) parts) names its database too.
    for _, _, container in workloads:
        for var in container.get("env") or []:
            url = var.get("value") or ""
            if var.get("name") == "ECHO_DATABASE" and "$(" not in url and "://" in url:
                names.add(url.split("://", 1)[1].split("/", 1)[-1].split("?", 1)[0])
    return names


def secret_names(docs, workloads):
    names = set()
    for _, spec, container in workloads:
        for var in container.get("env") or []:
            ref = (var.get("valueFrom") or {}).get("secretKeyRef")
            if ref:
                names.add(ref["name"])
        for source in container.get("envFrom") or []:
            if source.get("secretRef"):
                names.add(source["secretRef"]["name"])
        for volume in spec.get("volumes") or []:
            if volume.get("secret"):
                names.add(volume["secret"]["secretName"])
        for pull in spec.get("imagePullSecrets") or []:
            names.add(pull["name"])
    names.update(d["metadata"]["name"] for d in docs if d["kind"] == "Secret")
    return names


seen = {}
for env in envs:
    path = rendered / f"{env}.yaml"
    try:
        docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
    except (OSError, yaml.YAMLError) as e:
        fail(env, str(path), f"cannot read the rendered overlay: {e}")
        continue

    workloads = []
    for doc in docs:
        if doc["kind"] not in WORKLOADS:
            continue
        name = f"{doc['kind']}/{doc['metadata']['name']}"
        spec = pod_spec(doc)
        pod_ctx = spec.get("securityContext") or {}
        for container in containers(spec):
            workloads.append((doc, spec, container))
            check_security(env, f"{name} container {container['name']}", pod_ctx, container)
            check_references(env, f"{name} container {container['name']}", docs, container)
    if not workloads:
        fail(env, str(path), "renders no workload")

    # The API: probes on every serving container.
    api = [w for w in workloads if w[0]["kind"] == "Deployment" and w[0]["metadata"]["name"] == "echo-api"]
    if not api:
        fail(env, "Deployment/echo-api", "is missing")
    for doc, spec, container in api:
        if container in (spec.get("containers") or []):
            check_probes(env, f"Deployment/echo-api container {container['name']}", container)

    # SIGKILL must not come before a process has drained.
    for doc, spec, container in workloads:
        if doc["kind"] != "Deployment" or container not in (spec.get("containers") or []):
            continue
        raw = env_value(env, docs, container, "ECHO_SHUTDOWN_GRACE_SECS")
        try:
            grace = int(raw) if raw is not None else DEFAULT_SHUTDOWN_GRACE
        except ValueError:
            fail(env, f"Deployment/{doc['metadata']['name']}", f"ECHO_SHUTDOWN_GRACE_SECS={raw!r} is not a number")
            continue
        period = spec.get("terminationGracePeriodSeconds", DEFAULT_TERMINATION_GRACE)
        if not period > grace:
            fail(
                env,
                f"Deployment/{doc['metadata']['name']}",
                f"terminationGracePeriodSeconds ({period}) must be greater than "
                f"ECHO_SHUTDOWN_GRACE_SECS ({grace}), or jobs are killed mid-drain",
            )

    # Each environment says which it is, in the one ConfigMap every pod reads.
    for doc, spec, container in workloads:
        declared = env_value(env, docs, container, "ECHO_ENV")
        if declared != env:
            fail(env, f"{doc['kind']}/{doc['metadata']['name']} container {container['name']}",
                 f"ECHO_ENV must be {env!r}, found {declared!r}")

    namespaces = {d["metadata"].get("namespace") for d in docs if d["kind"] != "Namespace"}
    if None in namespaces:
        missing = [f"{d['kind']}/{d['metadata']['name']}" for d in docs
                   if d["kind"] != "Namespace" and not d["metadata"].get("namespace")]
        fail(env, "namespace", f"resources without a namespace: {', '.join(missing)}")
        namespaces.discard(None)
    if len(namespaces) != 1:
        fail(env, "namespace", f"must use exactly one namespace, found {sorted(namespaces)}")

    databases = database_names(docs, workloads)
    if not databases:
        fail(env, "database", "no DATABASE_NAME in any ConfigMap and no literal ECHO_DATABASE")

    seen[env] = {
        "namespace": namespaces,
        "database": databases,
        "secret": secret_names(docs, workloads),
    }

# No two environments may share a namespace, a database or a Secret.
names = list(seen)
for i, a in enumerate(names):
    for b in names[i + 1:]:
        for what in ("namespace", "database", "secret"):
            shared = seen[a][what] & seen[b][what]
            if shared:
                errors.append(f"{a} and {b} share a {what}: {', '.join(sorted(shared))}")

if errors:
    print(f"check-manifests: {len(errors)} problem(s):", file=sys.stderr)
    for e in errors:
        print(f"  - {e}", file=sys.stderr)
    sys.exit(1)
summary = "; ".join(
    f"{env}: namespace {', '.join(sorted(s['namespace']))}, database {', '.join(sorted(s['database']))}, "
    f"{len(s['secret'])} secrets"
    for env, s in seen.items()
)
print(f"check-manifests: ok ({summary})")
PY
