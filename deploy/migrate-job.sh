#!/usr/bin/env bash
# Runs the migration Job of a rendered overlay and waits for its verdict, before any Deployment
# is rolled (deploy/README.md; CI's staging and production jobs call it).
#
#   kubectl kustomize deploy/k8s/overlays/staging >rendered.yaml
#   deploy/migrate-job.sh rendered.yaml echo-staging
#
# A Job's pod template is immutable, so the previous run is deleted first; migrations are
# idempotent, so running them again is harmless. Exits 1 (with the Job's logs) if it fails.
set -euo pipefail

rendered="${1:?usage: $0 RENDERED.yaml NAMESPACE}"
namespace="${2:?usage: $0 RENDERED.yaml NAMESPACE}"
timeout_secs="${MIGRATE_TIMEOUT_SECS:-600}"

# What the Job needs first: the namespace, the ConfigMap, the service account (everything
# without a component label; the workloads all have one).
kubectl apply -f "$rendered" --selector '!app.kubernetes.io/component'
kubectl -n "$namespace" delete job echo-migrate --ignore-not-found --wait=true
kubectl apply -f "$rendered" --selector 'app.kubernetes.io/component=migrate'

deadline=$((SECONDS + timeout_secs))
while :; do
  succeeded="$(kubectl -n "$namespace" get job echo-migrate -o jsonpath='{.status.succeeded}')"
  failed="$(kubectl -n "$namespace" get job echo-migrate \
    -o jsonpath='{.status.conditions[?(@.type=="Failed")].status}')"
  if [ "${succeeded:-0}" -ge 1 ]; then
    kubectl -n "$namespace" logs job/echo-migrate --tail=50 || true
    echo "migrations applied in $namespace"
    exit 0
  fi
  if [ "$failed" = "True" ] || [ "$SECONDS" -ge "$deadline" ]; then
    kubectl -n "$namespace" describe job echo-migrate || true
    kubectl -n "$namespace" logs job/echo-migrate --tail=200 || true
    echo "migration Job failed or timed out in $namespace; nothing was rolled out" >&2
    exit 1
  fi
  sleep 5
done
