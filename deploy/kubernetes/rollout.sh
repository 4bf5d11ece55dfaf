#!/usr/bin/env bash
# Deploy an overlay in the order a release needs: migrations first, then the rollout.
#
#   deploy/kubernetes/rollout.sh deploy/kubernetes/overlays/production
#
# 1. render the overlay (kubectl kustomize);
# 2. apply the configuration the Job needs (ConfigMap, ServiceAccount: component "config");
# 3. replace the migration Job (a Job's pod template is immutable) and wait for it to complete;
#    if it fails, stop here: the running release keeps serving with its own ConfigMap;
# 4. apply everything (Deployments, Services, autoscalers, ...) and wait for each rollout.
#
# The Secret app-secrets must exist (see base/secrets.env.example). KUBECTL picks the kubectl
# (default: kubectl), with its usual context and flags, e.g. KUBECTL="kubectl --context prod".
# MIGRATE_TIMEOUT (default 600s) bounds the wait for the migrations.
set -Eeuo pipefail

overlay=${1:?usage: rollout.sh OVERLAY_DIRECTORY}
read -r -a kubectl <<< "${KUBECTL:-kubectl}"
timeout=${MIGRATE_TIMEOUT:-600s}

rendered=$(mktemp)
trap 'rm -f "$rendered"' EXIT
"${kubectl[@]}" kustomize "$overlay" > "$rendered"
namespace=$(sed -n 's/^  namespace: //p' "$rendered" | sort -u)
[ "$(wc -l <<< "$namespace")" = 1 ] && [ -n "$namespace" ] || {
    echo "rollout: expected every resource in one namespace, found: ${namespace:-none}" >&2
    exit 1
}
k() { "${kubectl[@]}" --namespace "$namespace" "$@"; }

echo "rollout: $overlay into namespace $namespace"
k get secret app-secrets >/dev/null || {
    echo "rollout: the Secret app-secrets is missing (see deploy/kubernetes/base/secrets.env.example)" >&2
    exit 1
}

echo "rollout: configuration"
k apply -f "$rendered" --selector 'app.kubernetes.io/component=config'

echo "rollout: migrations (Job migrate)"
k delete job migrate --ignore-not-found --wait=true
k apply -f "$rendered" --selector 'app.kubernetes.io/component=migrate'
if ! k wait --for=condition=complete job/migrate --timeout="$timeout"; then
    echo "rollout: the migrations did not complete; the running release is untouched. Logs:" >&2
    k logs job/migrate --tail=50 >&2 || true
    exit 1
fi

echo "rollout: workloads"
k apply -f "$rendered"
for deployment in $(k get -f "$rendered" -o name | grep '^deployment'); do
    k rollout status "$deployment" --timeout=10m
done
echo "rollout: done"
