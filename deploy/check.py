"""Static checks of the Kubernetes deployment, without a cluster (`make deploy-check`).

Renders every overlay of deploy/kubernetes/overlays, alone and with each optional component of
deploy/kubernetes/components, with kustomize (`kubectl kustomize`), then checks each rendering:

1. schemas: every resource against the Kubernetes JSON schemas (kubernetes-validate, strict: unknown
   fields fail), for the oldest and the newest Kubernetes version the manifests support; KEDA's
   ScaledObject against the subset of its CRD that the component uses;
2. settings: every ConfigMap key, Secret key and container variable is a setting of .env.example or
   a process variable of entrypoint.sh, and no secret setting sits in a ConfigMap;
3. rules of this service: beat has exactly one replica and is never autoscaled, grace periods are
   longer than uvicorn's and Celery's shutdowns, the readiness timeout is above the health checks',
   pods run as non-root on a read-only root filesystem with /tmp writable, and the worst-case number
   of PostgreSQL connections fits the database's max_connections;
4. policy: checkov's Kubernetes checks (skips, with reasons, in deploy/kubernetes/checkov.yaml).

Runs with the tool virtualenv that make deploy-check creates (deploy/requirements.txt).
Exit status 0 when everything passes; every finding is printed.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml

ROOT = Path(__file__).resolve().parent.parent
KUSTOMIZE_ROOT = ROOT / "deploy" / "kubernetes"
OLDEST_KUBERNETES = "1.29.0"
# Settings whose values are secrets: they belong in the Secret, never in a ConfigMap.
SECRET_SETTINGS = {"DB_PASSWORD", "REDIS_PASSWORD", "JWT_SECRET", "SENTRY_DSN"}
# Variables read by entrypoint.sh (process sizing and the migration URL), not by the app.
PROCESS_VARIABLES = {"PORT", "WEB_CONCURRENCY", "GRACEFUL_SHUTDOWN_SECONDS", "CELERY_CONCURRENCY", "DB_SSLMODE"}
# PostgreSQL's default max_connections, when an overlay does not say what its database allows.
DEFAULT_MAX_CONNECTIONS = 100
MAX_CONNECTIONS_ANNOTATION = "fastapi-postgres-stack/db-max-connections"
# superuser_reserved_connections: not available to the application.
RESERVED_CONNECTIONS = 3

# The part of KEDA's ScaledObject CRD (keda.sh/v1alpha1) that the keda-worker component uses.
SCALED_OBJECT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "keda.sh/v1alpha1"},
        "kind": {"const": "ScaledObject"},
        "metadata": {"type": "object", "required": ["name"]},
        "spec": {
            "type": "object",
            "additionalProperties": False,
            "required": ["scaleTargetRef", "triggers"],
            "properties": {
                "scaleTargetRef": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["name"],
                    "properties": {
                        "name": {"type": "string"},
                        "apiVersion": {"type": "string"},
                        "kind": {"type": "string"},
                        "envSourceContainerName": {"type": "string"},
                    },
                },
                "pollingInterval": {"type": "integer", "minimum": 1},
                "cooldownPeriod": {"type": "integer", "minimum": 0},
                "initialCooldownPeriod": {"type": "integer", "minimum": 0},
                "idleReplicaCount": {"type": "integer", "minimum": 0},
                "minReplicaCount": {"type": "integer", "minimum": 0},
                "maxReplicaCount": {"type": "integer", "minimum": 1},
                "advanced": {"type": "object"},
                "fallback": {"type": "object"},
                "triggers": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["type", "metadata"],
                        "properties": {
                            "type": {"type": "string"},
                            "name": {"type": "string"},
                            "metricType": {"enum": ["AverageValue", "Value", "Utilization"]},
                            "useCachedMetrics": {"type": "boolean"},
                            # KEDA reads every trigger parameter as a string.
                            "metadata": {"type": "object", "additionalProperties": {"type": "string"}},
                            "authenticationRef": {"type": "object", "required": ["name"]},
                        },
                    },
                },
            },
        },
    },
}
REDIS_LIST_REQUIRED = {"listName", "listLength"}


@dataclass
class Rendering:
    name: str
    path: Path
    resources: list[dict[str, Any]] = field(default_factory=list)
    findings: list[str] = field(default_factory=list)

    def fail(self, text: str) -> None:
        self.findings.append(text)

    def of_kind(self, kind: str) -> Iterator[dict[str, Any]]:
        return (r for r in self.resources if r.get("kind") == kind)

    def get(self, kind: str, name: str) -> dict[str, Any] | None:
        return next((r for r in self.of_kind(kind) if r["metadata"]["name"] == name), None)


def say(text: str = "") -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


# --- rendering ---------------------------------------------------------------------------------


def kustomize(kubectl: str, directory: Path) -> str:
    result = subprocess.run(  # noqa: S603 - our own command
        [kubectl, "kustomize", str(directory)], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise SystemExit(f"kustomize failed for {directory}:\n{result.stderr.strip()}")
    return result.stdout


def render_all(kubectl: str, out: Path, scratch: Path) -> list[Rendering]:
    """Each overlay, then each overlay with each component (in a scratch kustomization beside it)."""
    renderings: list[Rendering] = []
    overlays = sorted(p.parent for p in (KUSTOMIZE_ROOT / "overlays").glob("*/kustomization.yaml"))
    components = sorted(p.parent for p in (KUSTOMIZE_ROOT / "components").glob("*/kustomization.yaml"))
    targets: list[tuple[str, Path]] = [("base", KUSTOMIZE_ROOT / "base")]
    targets += [(f"overlays/{o.name}", o) for o in overlays]
    for overlay in overlays:
        namespace = yaml.safe_load((overlay / "kustomization.yaml").read_text()).get("namespace")
        for component in components:
            directory = scratch / f"{overlay.name}+{component.name}"
            directory.mkdir()
            document = {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "resources": [os.path.relpath(overlay, directory)],
                "components": [os.path.relpath(component, directory)],
            }
            if namespace:
                document["namespace"] = namespace
            (directory / "kustomization.yaml").write_text(yaml.safe_dump(document))
            targets.append((f"overlays/{overlay.name} + components/{component.name}", directory))
    for name, directory in targets:
        text = kustomize(kubectl, directory)
        path = out / (re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") + ".yaml")
        path.write_text(text)
        renderings.append(Rendering(name, path, [r for r in yaml.safe_load_all(text) if r]))
    return renderings


# --- 1. schemas --------------------------------------------------------------------------------


def check_schemas(rendering: Rendering, versions: list[str]) -> None:
    for resource in rendering.resources:
        label = f"{resource.get('kind')}/{resource.get('metadata', {}).get('name')}"
        if resource.get("kind") == "ScaledObject":
            check_scaled_object(rendering, resource, label)
            continue
        for version in versions:
            try:
                kubernetes_validate.validate(resource, version, strict=True)
            except kubernetes_validate.SchemaNotFoundError:
                rendering.fail(f"{label}: no Kubernetes {version} schema for {resource.get('apiVersion')}")
            except kubernetes_validate.ValidationError as error:
                path = ".".join(str(p) for p in error.path)
                rendering.fail(f"{label}: invalid for Kubernetes {version} at {path or '(root)'}: {error.message}")


def check_scaled_object(rendering: Rendering, resource: dict[str, Any], label: str) -> None:
    for error in jsonschema.Draft7Validator(SCALED_OBJECT_SCHEMA).iter_errors(resource):
        path = ".".join(str(p) for p in error.path)
        rendering.fail(f"{label}: invalid at {path or '(root)'}: {error.message}")
    spec = resource.get("spec", {})
    target = spec.get("scaleTargetRef", {}).get("name")
    if rendering.get("Deployment", target) is None:
        rendering.fail(f"{label}: scales Deployment {target!r}, which is not in the rendering")
    for trigger in spec.get("triggers", []):
        metadata = trigger.get("metadata", {})
        if trigger.get("type") == "redis" and not metadata.keys() >= REDIS_LIST_REQUIRED:
            rendering.fail(f"{label}: a redis trigger needs {sorted(REDIS_LIST_REQUIRED)}")


# --- 2. settings -------------------------------------------------------------------------------


def documented_settings() -> set[str]:
    """Every setting .env.example names, the commented-out optional ones included."""
    text = (ROOT / ".env.example").read_text()
    return set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]*)=", text, re.MULTILINE))


def env_file_keys(path: Path) -> set[str]:
    return set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]*)=", path.read_text(), re.MULTILINE))


def pod_specs(rendering: Rendering) -> Iterator[tuple[str, dict[str, Any], dict[str, Any]]]:
    for resource in rendering.resources:
        if resource.get("kind") in ("Deployment", "Job", "StatefulSet", "DaemonSet"):
            yield f"{resource['kind']}/{resource['metadata']['name']}", resource, resource["spec"]["template"]["spec"]


def check_settings(rendering: Rendering, settings: set[str]) -> None:
    known = settings | PROCESS_VARIABLES
    for config_map in rendering.of_kind("ConfigMap"):
        name = config_map["metadata"]["name"]
        for key in config_map.get("data", {}):
            if key in SECRET_SETTINGS:
                rendering.fail(f"ConfigMap/{name}: {key} is a secret; it belongs in the Secret")
            elif key not in known:
                rendering.fail(f"ConfigMap/{name}: {key} is not a setting of .env.example nor of entrypoint.sh")
    for label, _, spec in pod_specs(rendering):
        for container in spec.get("containers", []):
            for variable in container.get("env", []):
                if variable["name"] not in known:
                    rendering.fail(f"{label}: variable {variable['name']} is not a setting nor of entrypoint.sh")


def check_static_settings(settings: set[str]) -> list[str]:
    findings = []
    secrets_example = KUSTOMIZE_ROOT / "base" / "secrets.env.example"
    secret_keys = env_file_keys(secrets_example)
    findings += [f"{secrets_example.name}: {k} is not a setting of .env.example" for k in secret_keys - settings]
    findings += [f"{secrets_example.name}: {k} is not a secret setting" for k in secret_keys - SECRET_SETTINGS]
    findings += [f"{secrets_example.name}: {k} is missing" for k in SECRET_SETTINGS - secret_keys]
    findings += [f".env.example: the secret setting {k} is missing" for k in SECRET_SETTINGS - settings]
    entrypoint = (ROOT / "entrypoint.sh").read_text()
    findings += [f"entrypoint.sh no longer reads {v}" for v in sorted(PROCESS_VARIABLES) if v not in entrypoint]
    return findings


# --- 3. rules of this service ------------------------------------------------------------------


def container_env(rendering: Rendering, container: dict[str, Any]) -> dict[str, str]:
    """What the container's environment holds: its ConfigMaps (envFrom), then its own `env`."""
    values: dict[str, str] = {}
    for source in container.get("envFrom", []):
        ref = source.get("configMapRef")
        if ref:
            config_map = rendering.get("ConfigMap", ref["name"])
            values.update((config_map or {}).get("data", {}))
    values.update({v["name"]: v["value"] for v in container.get("env", []) if "value" in v})
    return values


def env_default(name: str, fallback: str) -> str:
    """A setting's default as .env.example documents it."""
    match = re.search(rf"^{name}=(.*)$", (ROOT / ".env.example").read_text(), re.MULTILINE)
    return match.group(1).strip() if match and match.group(1).strip() else fallback


def max_replicas(rendering: Rendering, deployment: dict[str, Any]) -> int:
    name = deployment["metadata"]["name"]
    for hpa in rendering.of_kind("HorizontalPodAutoscaler"):
        if hpa["spec"]["scaleTargetRef"]["name"] == name:
            return int(hpa["spec"]["maxReplicas"])
    for scaled in rendering.of_kind("ScaledObject"):
        if scaled["spec"]["scaleTargetRef"]["name"] == name:
            return int(scaled["spec"].get("maxReplicaCount", 100))
    return int(deployment["spec"].get("replicas", 1))


def autoscaled(rendering: Rendering, name: str) -> bool:
    targets = [h["spec"]["scaleTargetRef"]["name"] for h in rendering.of_kind("HorizontalPodAutoscaler")]
    targets += [s["spec"]["scaleTargetRef"]["name"] for s in rendering.of_kind("ScaledObject")]
    return name in targets


def check_pod_security(rendering: Rendering) -> None:
    for label, _, spec in pod_specs(rendering):
        pod = spec.get("securityContext", {})
        if not pod.get("runAsNonRoot"):
            rendering.fail(f"{label}: securityContext.runAsNonRoot is not true")
        if spec.get("automountServiceAccountToken") is not False:
            rendering.fail(f"{label}: automountServiceAccountToken is not false")
        for container in spec.get("containers", []):
            context = container.get("securityContext", {})
            if not context.get("readOnlyRootFilesystem"):
                rendering.fail(f"{label}: {container['name']} has a writable root filesystem")
            if context.get("allowPrivilegeEscalation") is not False:
                rendering.fail(f"{label}: {container['name']} allows privilege escalation")
            if "ALL" not in context.get("capabilities", {}).get("drop", []):
                rendering.fail(f"{label}: {container['name']} keeps capabilities (drop ALL)")
            if not any(m.get("mountPath") == "/tmp" for m in container.get("volumeMounts", [])):  # noqa: S108
                rendering.fail(f"{label}: {container['name']} has no writable /tmp (the image writes there)")
            if not container.get("resources", {}).get("limits", {}).get("memory"):
                rendering.fail(f"{label}: {container['name']} has no memory limit")


def args_of(deployment: dict[str, Any]) -> str:
    return " ".join(deployment["spec"]["template"]["spec"]["containers"][0].get("args", []))


def check_rules(rendering: Rendering) -> list[tuple[str, int, int, int]]:
    """The service's own rules; returns the connection budget rows (role, pods, processes, pool)."""
    check_pod_security(rendering)
    budget: list[tuple[str, int, int, int]] = []
    roles = {args_of(d): d for d in rendering.of_kind("Deployment")}
    for role in ("api", "worker", "beat"):
        if role not in roles:
            rendering.fail(f"no Deployment runs the {role!r} role")
    if not any(
        j["spec"]["template"]["spec"]["containers"][0].get("args") == ["migrate"] for j in rendering.of_kind("Job")
    ):
        rendering.fail("no Job runs the 'migrate' role")

    beat = roles.get("beat")
    if beat is not None:
        name = beat["metadata"]["name"]
        if beat["spec"].get("replicas") != 1:
            rendering.fail(f"Deployment/{name}: beat must have exactly one replica")
        if beat["spec"].get("strategy", {}).get("type") != "Recreate":
            rendering.fail(f"Deployment/{name}: beat must use the Recreate strategy (never two at once)")
        if autoscaled(rendering, name):
            rendering.fail(f"Deployment/{name}: beat must never be autoscaled")

    api = roles.get("api")
    if api is not None:
        spec = api["spec"]["template"]["spec"]
        container = spec["containers"][0]
        env = container_env(rendering, container)
        graceful = int(env.get("GRACEFUL_SHUTDOWN_SECONDS", "20"))
        pre_stop = container.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command", [])
        sleep = int(pre_stop[1]) if len(pre_stop) == 2 and pre_stop[0] == "sleep" else 0
        period = int(spec.get("terminationGracePeriodSeconds", 30))
        if period <= graceful + sleep:
            rendering.fail(
                f"Deployment/{api['metadata']['name']}: terminationGracePeriodSeconds {period} is not longer than "
                f"preStop {sleep} s + uvicorn's graceful shutdown {graceful} s"
            )
        readiness = container.get("readinessProbe", {})
        health_timeout = float(
            env.get("HEALTH_CHECK_TIMEOUT_SECONDS", env_default("HEALTH_CHECK_TIMEOUT_SECONDS", "2"))
        )
        if readiness.get("httpGet", {}).get("path") != "/health/ready":
            rendering.fail(f"Deployment/{api['metadata']['name']}: the readiness probe must GET /health/ready")
        if container.get("livenessProbe", {}).get("httpGet", {}).get("path") != "/health/live":
            rendering.fail(f"Deployment/{api['metadata']['name']}: the liveness probe must GET /health/live")
        if float(readiness.get("timeoutSeconds", 1)) <= health_timeout:
            rendering.fail(
                f"Deployment/{api['metadata']['name']}: readiness timeoutSeconds must exceed "
                f"HEALTH_CHECK_TIMEOUT_SECONDS ({health_timeout:g})"
            )
        budget.append(budget_row("api", rendering, api, env, "WEB_CONCURRENCY"))

    worker = roles.get("worker")
    if worker is not None:
        spec = worker["spec"]["template"]["spec"]
        env = container_env(rendering, spec["containers"][0])
        limit = int(env.get("CELERY_TASK_TIME_LIMIT_SECONDS", env_default("CELERY_TASK_TIME_LIMIT_SECONDS", "120")))
        period = int(spec.get("terminationGracePeriodSeconds", 30))
        if period <= limit:
            rendering.fail(
                f"Deployment/{worker['metadata']['name']}: terminationGracePeriodSeconds {period} is not longer "
                f"than a task's time limit ({limit} s): warm shutdown would be cut short"
            )
        # One process per pod: CELERY_CONCURRENCY is the threads of its pool, which share the process's engine.
        budget.append(budget_row("worker", rendering, worker, env, None))
        for scaled in rendering.of_kind("ScaledObject"):
            for trigger in scaled["spec"].get("triggers", []):
                index = trigger.get("metadata", {}).get("databaseIndex", "0")
                if trigger.get("type") == "redis" and index != env.get("REDIS_DB", "0"):
                    rendering.fail(
                        f"ScaledObject/{scaled['metadata']['name']}: databaseIndex {index} is not REDIS_DB "
                        f"{env.get('REDIS_DB', '0')}"
                    )
    budget.append(("migrate Job", 1, 1, 1))
    return budget


def budget_row(
    role: str, rendering: Rendering, deployment: dict[str, Any], env: dict[str, str], processes_variable: str | None
) -> tuple[str, int, int, int]:
    """`processes_variable` names the variable with the pod's process count (entrypoint.sh's default 2);
    None: one process."""
    processes = int(env.get(processes_variable, "2")) if processes_variable else 1
    pool = int(env.get("DB_POOL_SIZE", env_default("DB_POOL_SIZE", "5")))
    pool += int(env.get("DB_MAX_OVERFLOW", env_default("DB_MAX_OVERFLOW", "10")))
    return (role, max_replicas(rendering, deployment), processes, pool)


def check_budget(rendering: Rendering, rows: list[tuple[str, int, int, int]]) -> None:
    limits = [
        int(c["metadata"].get("annotations", {})[MAX_CONNECTIONS_ANNOTATION])
        for c in rendering.of_kind("ConfigMap")
        if MAX_CONNECTIONS_ANNOTATION in c["metadata"].get("annotations", {})
    ]
    max_connections = min(limits) if limits else DEFAULT_MAX_CONNECTIONS
    available = max_connections - RESERVED_CONNECTIONS
    total = sum(pods * processes * pool for _, pods, processes, pool in rows)
    say("    PostgreSQL connections at most (pods x processes x (DB_POOL_SIZE + DB_MAX_OVERFLOW)):")
    for role, pods, processes, pool in rows:
        say(f"      {role:<12} {pods:>3} x {processes} x {pool:>2} = {pods * processes * pool:>4}")
    source = "annotation" if limits else "PostgreSQL's default"
    say(
        f"      {'total':<12} {total:>20}  of {available} ({max_connections} max_connections from {source}, "
        f"{RESERVED_CONNECTIONS} reserved)"
    )
    if total > available:
        rendering.fail(f"up to {total} PostgreSQL connections, over the {available} the database allows")


# --- rollout order ------------------------------------------------------------------------------

ROLLOUT_STUB = """#!/usr/bin/env bash
# kubectl stand-in: renders for real, records every other call, and answers as a cluster would.
[ "$1" = kustomize ] && exec "$REAL_KUBECTL" "$@"
shift 2  # --namespace NAME
echo "$*" >> "$CALLS"
case "$1" in
    get) [ "$2" = -f ] && printf 'deployment.apps/api\\ndeployment.apps/worker\\n'; exit 0 ;;
    wait) exit "${WAIT_STATUS:-0}" ;;
esac
"""


def check_rollout(kubectl: str, scratch: Path) -> list[str]:
    """rollout.sh against a recording kubectl: migrations complete before any workload changes."""
    stub, calls = scratch / "kubectl", scratch / "calls"
    stub.write_text(ROLLOUT_STUB)
    stub.chmod(0o755)
    script = KUSTOMIZE_ROOT / "rollout.sh"
    overlay = KUSTOMIZE_ROOT / "overlays" / "production"
    findings: list[str] = []
    for wait_status in (0, 1):
        calls.write_text("")
        env = {**os.environ, "KUBECTL": str(stub), "REAL_KUBECTL": kubectl, "CALLS": str(calls)}
        env["WAIT_STATUS"] = str(wait_status)
        result = subprocess.run([script, overlay], env=env, capture_output=True, text=True, check=False)  # noqa: S603
        lines = calls.read_text().splitlines()
        full_apply = [i for i, line in enumerate(lines) if line.startswith("apply") and "--selector" not in line]
        wait = [i for i, line in enumerate(lines) if line.startswith("wait --for=condition=complete job/migrate")]
        replace = [i for i, line in enumerate(lines) if line.startswith("delete job migrate")]
        if wait_status == 0:
            if result.returncode != 0:
                findings.append(f"rollout.sh failed: {result.stderr.strip()[-500:]}")
            elif not (replace and wait and full_apply and replace[0] < wait[0] < full_apply[0]):
                findings.append("rollout.sh does not replace and await the migration Job before applying the rest")
            elif sum(line.startswith("rollout status") for line in lines) != 2:
                findings.append("rollout.sh does not wait for every Deployment's rollout")
        elif result.returncode == 0 or full_apply:
            findings.append("rollout.sh rolls out although the migrations failed")
    return findings


# --- 4. policy ---------------------------------------------------------------------------------


def run_checkov(checkov: str, directory: Path) -> bool:
    command = [
        checkov,
        "--directory",
        str(directory),
        "--framework",
        "kubernetes",
        "--config-file",
        str(KUSTOMIZE_ROOT / "checkov.yaml"),
    ]
    env = {**os.environ, "BC_SKIP_MAPPING": "TRUE", "CHECKOV_NO_OUTPUT_FILE": "1"}
    result = subprocess.run(command, capture_output=True, text=True, env=env, check=False)  # noqa: S603
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    summary = [line for line in lines if line.startswith("Passed checks")]
    failures = [line for line in lines if line.startswith(("Check:", "\tFAILED", "FAILED"))]
    for line in summary or lines[-5:]:
        say(f"    checkov: {line.strip()}")
    for line in failures:
        say(f"    {line.rstrip()}")
    if result.returncode != 0 and result.stderr.strip() and not failures:
        say(result.stderr.strip()[-2000:])
    return result.returncode == 0


# --- main --------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="deploy/check.py", description=__doc__.split("\n\n")[0])
    tools = Path(sys.executable).parent  # the tool virtualenv's bin/, when run from it
    bundled = tools / "kubectl"
    parser.add_argument(
        "--kubectl",
        default=str(bundled) if bundled.exists() else shutil.which("kubectl") or "kubectl",
        help="kubectl with kustomize v5 (default: the tool virtualenv's, else the one on PATH)",
    )
    parser.add_argument(
        "--checkov",
        default=str(tools / "checkov") if (tools / "checkov").exists() else shutil.which("checkov"),
        help="checkov (default: the tool virtualenv's, else the one on PATH)",
    )
    parser.add_argument("--out", type=Path, help="keep the rendered manifests in this directory")
    args = parser.parse_args(argv)

    settings = documented_settings()
    versions = [OLDEST_KUBERNETES, kubernetes_validate.latest_version()]
    failed = False
    with tempfile.TemporaryDirectory(prefix="deploy-check-") as tmp:
        out = args.out or Path(tmp) / "rendered"
        out.mkdir(parents=True, exist_ok=True)
        scratch = Path(tmp) / "scratch"
        scratch.mkdir()
        renderings = render_all(args.kubectl, out, scratch)

        static = check_static_settings(settings)
        say(f"settings: .env.example names {len(settings)} settings; secrets.env.example and entrypoint.sh agree")
        for finding in static:
            say(f"    FAIL {finding}")
        failed |= bool(static)

        for rendering in renderings:
            kinds: dict[str, int] = {}
            for resource in rendering.resources:
                kinds[resource["kind"]] = kinds.get(resource["kind"], 0) + 1
            say(
                f"\n{rendering.name}: {len(rendering.resources)} resources "
                f"({', '.join(f'{n} {k}' for k, n in sorted(kinds.items()))})"
            )
            check_schemas(rendering, versions)
            say(f"    schemas: Kubernetes {' and '.join(v.rsplit('.', 1)[0] for v in versions)}, strict")
            check_settings(rendering, settings)
            rows = check_rules(rendering)
            check_budget(rendering, rows)
            for finding in rendering.findings:
                say(f"    FAIL {finding}")
            say(f"    {'FAIL' if rendering.findings else 'ok'}: schemas, settings, rules")
            failed |= bool(rendering.findings)

        rollout = check_rollout(args.kubectl, scratch)
        say(
            "\nrollout.sh (against a recording kubectl): "
            + (
                "; ".join(rollout)
                if rollout
                else "migration Job replaced and completed before the workloads are applied; stops if it fails"
            )
        )
        failed |= bool(rollout)

        if args.checkov:
            say("\npolicy scan of every rendering:")
            failed |= not run_checkov(args.checkov, out)
        else:
            say("\npolicy scan skipped: no checkov")
            failed = True
        if args.out:
            say(f"\nrendered manifests: {out}")
    say(f"\ndeploy-check: {'FAILED' if failed else 'passed'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
