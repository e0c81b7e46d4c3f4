"""The Kubernetes manifests: each Deployment has its Service, non-root pods, requests and limits, probes and no
privilege escalation; rrlb probes /healthz and /readyz, reads its admin token from a Secret and its config from
a mounted directory, runs 2+ replicas with a 1/1 rolling update, a PodDisruptionBudget and an HPA, and keeps
its admin port inside the cluster.

Usage: python3 scripts/checks/k8s.py FILE...  (rendered manifests, or each resource file). Exits 1 on a problem.
"""
import sys

import yaml

DEPLOYMENTS = ["rrlb", "echo-go", "echo-node", "echo-java", "echo-rs"]


def check_container(name, c, errors):
    res = c.get("resources") or {}
    if not (res.get("limits") and res.get("requests")):
        errors.append(f"{name}: resources requests and limits needed")
    sc = c.get("securityContext") or {}
    if sc.get("allowPrivilegeEscalation") is not False:
        errors.append(f"{name}: allowPrivilegeEscalation must be false")
    if not c.get("livenessProbe") or not c.get("readinessProbe"):
        errors.append(f"{name}: liveness and readiness probes needed")
        return
    if name == "rrlb":
        if c["livenessProbe"].get("httpGet", {}).get("path") != "/healthz":
            errors.append("rrlb: liveness must be httpGet /healthz")
        if c["readinessProbe"].get("httpGet", {}).get("path") != "/readyz":
            errors.append("rrlb: readiness must be httpGet /readyz")
        env = {e["name"]: e for e in c.get("env", [])}
        if "secretKeyRef" not in (env.get("RRLB_ADMIN_TOKEN", {}).get("valueFrom") or {}):
            errors.append("rrlb: RRLB_ADMIN_TOKEN must come from a Secret")
        if "RRLB_CONFIG" not in env:
            errors.append("rrlb: RRLB_CONFIG missing")
        if any(m.get("subPath") for m in c.get("volumeMounts", [])):
            errors.append("rrlb: config must be mounted as a directory (no subPath)")
    elif c["readinessProbe"].get("httpGet", {}).get("path") != "/health":
        errors.append(f"{name}: readiness must be httpGet /health")


def check(docs):
    errors = []
    kinds = {}
    for d in docs:
        kinds.setdefault(d["kind"], {})[d["metadata"]["name"]] = d
    for name in DEPLOYMENTS:
        dep = kinds.get("Deployment", {}).get(name)
        if not dep:
            errors.append(f"Deployment {name} missing")
            continue
        if name not in kinds.get("Service", {}):
            errors.append(f"Service {name} missing")
        pod = dep["spec"]["template"]["spec"]
        if not (pod.get("securityContext") or {}).get("runAsNonRoot"):
            errors.append(f"{name}: runAsNonRoot not set")
        for c in pod["containers"]:
            check_container(name, c, errors)
        if name == "rrlb":
            if dep["spec"].get("replicas", 1) < 2:
                errors.append("rrlb: at least 2 replicas")
            ru = dep["spec"].get("strategy", {}).get("rollingUpdate", {})
            if ru.get("maxUnavailable") != 1 or ru.get("maxSurge") != 1:
                errors.append("rrlb: RollingUpdate maxUnavailable 1 / maxSurge 1")
    if "rrlb" not in kinds.get("PodDisruptionBudget", {}):
        errors.append("PodDisruptionBudget rrlb missing")
    if "rrlb" not in kinds.get("HorizontalPodAutoscaler", {}):
        errors.append("HorizontalPodAutoscaler rrlb missing")
    svc = kinds.get("Service", {}).get("rrlb")
    if svc:
        ports = svc["spec"]["ports"]
        if svc["spec"].get("type", "ClusterIP") != "ClusterIP" and any(p.get("port") == 9901 for p in ports):
            errors.append("rrlb: admin port exposed outside the cluster")
        if not any(p.get("port") == 80 for p in ports):
            errors.append("Service rrlb: port 80 -> 8080 missing")
    return errors


def main(files):
    docs = []
    for path in files:
        with open(path) as f:
            docs.extend(d for d in yaml.safe_load_all(f) if d)
    errors = check(docs)
    for e in errors:
        print(e)
    return 1 if errors else 0


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    sys.exit(main(sys.argv[1:]))
