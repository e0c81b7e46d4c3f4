#!/usr/bin/env bash
# Static checks of the deployment and operations files. Needs no Docker engine, no cluster and
# no network; install its tools with scripts/install-deploy-tools.sh.
set -euo pipefail

usage() {
    cat <<'EOF'
usage: scripts/check-deploy.sh [-h]

Runs every static check of the deployment files and exits non-zero if any fails:
  shell      shellcheck on scripts/*.sh (and benches/**/*.sh), `-h` answers of the operations scripts
  compose    docker-compose config -q, and every service has a build context with a Dockerfile
             (or a pinned image), deploy.resources limits, a healthcheck; rrlb depends on each
             echo with condition service_healthy
  docker     the root Dockerfile: multi-stage, --locked release build, non-root, HEALTHCHECK
  k8s        kubectl kustomize deploy/k8s (or each resource file) through kubernetes-validate
             --strict, against the newest bundled Kubernetes and 1.30
  prometheus promtool check config, check rules, test rules
  grafana    the dashboard JSON parses and its queries use only SPEC's metric names
  openapi    openapi-spec-validator docs/api-spec.yml, and every admin path of SPEC is there
  rrlb       `rrlb --check` on deploy/compose/rrlb.toml and deploy/k8s/rrlb.toml, when a built
             rrlb binary exists (RRLB_BIN, or target/{release,debug}/rrlb); skipped otherwise

Environment: RRLB_BIN  path of an rrlb binary for the `rrlb` check;
             KUBECTL  the kubectl to render the kustomization with (default kubectl).
EOF
}

case "${1:-}" in
    -h | --help) usage; exit 0 ;;
    "") ;;
    *) usage >&2; exit 2 ;;
esac

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY="${PYTHON:-python3}"
failures=()
passes=0
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

section() { printf '\n== %s\n' "$*"; }
pass() {
    passes=$((passes + 1))
    printf 'ok   %s\n' "$*"
}
fail() {
    failures+=("$*")
    printf 'FAIL %s\n' "$*"
}
# run NAME COMMAND...: run a check, show its output only when it fails.
run() {
    local name="$1"
    shift
    if "$@" >"$tmp/out" 2>&1; then
        pass "$name"
    else
        sed 's/^/     /' "$tmp/out" | tail -n 40
        fail "$name"
    fi
}
have() {
    if command -v "$1" >/dev/null 2>&1; then return 0; fi
    fail "$1 is not installed (run scripts/install-deploy-tools.sh)"
    return 1
}

# --- shell -------------------------------------------------------------------------------------
section shell
if have shellcheck; then
    mapfile -t shell_files < <(find scripts benches -name '*.sh' -type f 2>/dev/null | sort)
    run "shellcheck (${#shell_files[@]} files)" shellcheck -x "${shell_files[@]}"
fi
# The operations scripts, and only those: running another script with -h could run it for real.
OPS_SCRIPTS=(local-up local-down integration-test load-test add-latency fail kill restore cpu-stress
    check-deploy check-api install-deploy-tools)
usage_ok() {
    local name s rc=0
    for name in "${OPS_SCRIPTS[@]}"; do
        s="scripts/$name.sh"
        [[ -f "$s" ]] || { echo "$s is missing"; rc=1; continue; }
        [[ -x "$s" ]] || { echo "$s is not executable"; rc=1; }
        if ! bash "$s" -h >"$tmp/usage" 2>&1 || ! grep -qi '^usage:' "$tmp/usage"; then
            echo "$s -h: no usage text or non-zero exit"
            rc=1
        fi
    done
    return "$rc"
}
run "every operations script answers -h with its usage" usage_ok

# --- compose ----------------------------------------------------------------------------------
section compose
if docker compose version >/dev/null 2>&1; then
    run "docker compose config -q" docker compose -f compose.yaml --profile monitoring config -q
elif have docker-compose; then
    run "docker-compose config -q" docker-compose -f compose.yaml --profile monitoring config -q
fi
run "compose services: build/Dockerfile, limits, healthchecks, depends_on" "$PY" - <<'EOF'
import os, sys, yaml
doc = yaml.safe_load(open("compose.yaml"))
errors = []
if "version" in doc:
    errors.append("top-level 'version' key is obsolete in the compose spec")
services = doc.get("services", {})
echoes = ["echo-go", "echo-node", "echo-java", "echo-rs"]
for name in ["rrlb"] + echoes:
    if name not in services:
        errors.append(f"service {name} missing")
for name, svc in services.items():
    build = svc.get("build")
    if build is not None:
        if isinstance(build, str):
            build = {"context": build}
        ctx = build.get("context", ".")
        dockerfile = os.path.join(ctx, build.get("dockerfile", "Dockerfile"))
        if not os.path.isdir(ctx):
            errors.append(f"{name}: build context {ctx}/ does not exist")
        elif not os.path.isfile(dockerfile):
            errors.append(f"{name}: {dockerfile} does not exist")
    else:
        image = svc.get("image", "")
        tag = image.rsplit(":", 1)[1] if ":" in image.split("/")[-1] else ""
        if not image or tag in ("", "latest"):
            errors.append(f"{name}: no build and no pinned image tag ({image!r})")
    limits = (((svc.get("deploy") or {}).get("resources") or {}).get("limits") or {})
    if not limits.get("cpus") or not limits.get("memory"):
        errors.append(f"{name}: deploy.resources.limits needs cpus and memory")
    hc = svc.get("healthcheck") or {}
    if not hc.get("test") or hc.get("disable"):
        errors.append(f"{name}: no healthcheck")
    if not svc.get("restart"):
        errors.append(f"{name}: no restart policy")
deps = services.get("rrlb", {}).get("depends_on") or {}
for e in echoes:
    if not isinstance(deps, dict) or (deps.get(e) or {}).get("condition") != "service_healthy":
        errors.append(f"rrlb: depends_on {e} with condition service_healthy missing")
ports = services.get("rrlb", {}).get("ports") or []
if not any(str(p).startswith("127.0.0.1:9901:") for p in ports):
    errors.append("rrlb: admin port must be published as 127.0.0.1:9901:9901")
if any(str(p).split(":")[-2:] == ["9901", "9901"] and not str(p).startswith("127.0.0.1:") for p in ports):
    errors.append("rrlb: admin port published on a non-loopback address")
env = services.get("rrlb", {}).get("environment") or {}
if "RRLB_ADMIN_TOKEN" not in env:
    errors.append("rrlb: RRLB_ADMIN_TOKEN must be set (admin listens on 0.0.0.0 in the container)")
for e in errors:
    print(e)
sys.exit(1 if errors else 0)
EOF

# --- Dockerfile -------------------------------------------------------------------------------
section docker
run "Dockerfile: multi-stage, locked release build, non-root, HEALTHCHECK, EXPOSE" "$PY" - <<'EOF'
import re, sys
text = open("Dockerfile").read()
errors = []
if len(re.findall(r"(?im)^FROM\s", text)) < 2:
    errors.append("not multi-stage")
if not re.search(r"cargo build --release --locked -p rrlb-bin", text):
    errors.append("missing `cargo build --release --locked -p rrlb-bin`")
if not re.search(r"(?im)^USER\s+(?!root\b|0\b)\S+", text):
    errors.append("no non-root USER")
if not re.search(r'(?im)^\s*CMD \["/usr/local/bin/rrlb", "--healthcheck"\]', text):
    errors.append("no exec-form HEALTHCHECK with rrlb --healthcheck")
if not re.search(r"(?im)^EXPOSE\s+8080\s+9901", text):
    errors.append("EXPOSE 8080 9901 missing")
for img in re.findall(r"(?im)^FROM\s+(\S+)", text):
    if ":" not in img.split("/")[-1] and "$" not in img and not re.match(r"^[a-z]+$", img):
        errors.append(f"unpinned base image {img}")
ignore = open(".dockerignore").read().split()
for needed in ("target", ".git"):
    if not any(p.strip("*/") == needed for p in ignore):
        errors.append(f".dockerignore does not exclude {needed}")
for e in errors:
    print(e)
sys.exit(1 if errors else 0)
EOF

if command -v cargo >/dev/null 2>&1; then
    run "docker build contexts at the repository root hold the whole cargo workspace" "$PY" - "$tmp/ctx" <<'EOF'
# For each compose service built from `.`, copy what its ignore file (Dockerfile.dockerignore, else
# .dockerignore) lets into the build context, and check that cargo can load the workspace there.
import os, re, shutil, subprocess, sys, yaml
out = sys.argv[1]
def rx(pattern):
    p = pattern.strip().lstrip("/").rstrip("/")
    r, i = "", 0
    while i < len(p):
        if p.startswith("**/", i):
            r, i = r + "(?:.*/)?", i + 3
        elif p.startswith("**", i):
            r, i = r + ".*", i + 2
        elif p[i] == "*":
            r, i = r + "[^/]*", i + 1
        elif p[i] == "?":
            r, i = r + "[^/]", i + 1
        else:
            r, i = r + re.escape(p[i]), i + 1
    return re.compile(r + "(?:/.*)?$")
def patterns(path):
    rules = []
    for line in open(path):
        line = line.strip()
        if line and not line.startswith("#"):
            neg = line.startswith("!")
            rules.append((neg, rx(line[1:] if neg else line)))
    return rules
def ignored(rel, rules):
    hit = False
    for neg, r in rules:
        if r.match(rel):
            hit = not neg
    return hit
services = yaml.safe_load(open("compose.yaml"))["services"]
errors = []
for name, svc in services.items():
    b = svc.get("build")
    if not isinstance(b, dict) or b.get("context") != ".":
        continue
    dockerfile = b.get("dockerfile", "Dockerfile")
    ignore = dockerfile + ".dockerignore" if os.path.exists(dockerfile + ".dockerignore") else ".dockerignore"
    rules = patterns(ignore)
    dest = os.path.join(out, name)
    for root, dirs, files in os.walk("."):
        rel_root = os.path.relpath(root, ".")
        dirs[:] = [d for d in dirs if d not in (".git", "target")
                   and not ignored(os.path.normpath(os.path.join(rel_root, d)), rules)]
        for f in files:
            rel = os.path.normpath(os.path.join(rel_root, f))
            if not ignored(rel, rules):
                os.makedirs(os.path.join(dest, os.path.dirname(rel)), exist_ok=True)
                shutil.copy2(rel, os.path.join(dest, rel))
    r = subprocess.run(["cargo", "metadata", "--no-deps", "--format-version", "1", "--offline"],
                       cwd=dest, capture_output=True, text=True)
    if r.returncode != 0:
        errors.append(f"{name} ({ignore}): cargo cannot load the workspace from its build context:\n{r.stderr.strip()}")
    else:
        print(f"{name}: the context left by {ignore} loads the workspace")
for e in errors:
    print(e)
sys.exit(1 if errors else 0)
EOF
fi

# --- Kubernetes -------------------------------------------------------------------------------
section k8s
if have kubernetes-validate; then
    k8s_files=()
    kubectl="${KUBECTL:-kubectl}"
    if command -v "$kubectl" >/dev/null 2>&1 && "$kubectl" kustomize deploy/k8s >"$tmp/k8s.yaml" 2>"$tmp/kustomize.err"; then
        pass "kubectl kustomize deploy/k8s renders"
        k8s_files=("$tmp/k8s.yaml")
    else
        if command -v "$kubectl" >/dev/null 2>&1; then
            cat "$tmp/kustomize.err"
            fail "kubectl kustomize deploy/k8s"
        fi
        echo "     (no kustomize rendering: validating each resource of kustomization.yaml)"
        mapfile -t k8s_files < <("$PY" -c '
import yaml
k = yaml.safe_load(open("deploy/k8s/kustomization.yaml"))
for r in k.get("resources", []):
    print("deploy/k8s/" + r)')
    fi
    run "kubernetes-validate --strict (latest bundled version)" kubernetes-validate --strict --quiet "${k8s_files[@]}"
    run "kubernetes-validate --strict -k 1.30.0" kubernetes-validate --strict --quiet -k 1.30.0 "${k8s_files[@]}"
    run "k8s: probes, resources, non-root, admin token from a Secret, PDB, HPA" "$PY" - "${k8s_files[@]}" <<'EOF'
import sys, yaml
docs = [d for f in sys.argv[1:] for d in yaml.safe_load_all(open(f)) if d]
errors = []
kinds = {}
for d in docs:
    kinds.setdefault(d["kind"], {})[d["metadata"]["name"]] = d
for name in ["rrlb", "echo-go", "echo-node", "echo-java", "echo-rs"]:
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
        res = c.get("resources") or {}
        if not (res.get("limits") and res.get("requests")):
            errors.append(f"{name}: resources requests and limits needed")
        if not c.get("livenessProbe") or not c.get("readinessProbe"):
            errors.append(f"{name}: liveness and readiness probes needed")
        sc = c.get("securityContext") or {}
        if sc.get("allowPrivilegeEscalation") is not False:
            errors.append(f"{name}: allowPrivilegeEscalation must be false")
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
        else:
            if c["readinessProbe"].get("httpGet", {}).get("path") != "/health":
                errors.append(f"{name}: readiness must be httpGet /health")
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
    if svc["spec"].get("type", "ClusterIP") != "ClusterIP" and any(p.get("port") == 9901 for p in svc["spec"]["ports"]):
        errors.append("rrlb: admin port exposed outside the cluster")
    if not any(p.get("port") == 80 for p in svc["spec"]["ports"]):
        errors.append("Service rrlb: port 80 -> 8080 missing")
for e in errors:
    print(e)
sys.exit(1 if errors else 0)
EOF
fi

# --- Prometheus -------------------------------------------------------------------------------
section prometheus
if have promtool; then
    run "promtool check config" promtool check config monitoring/prometheus/prometheus.yml
    run "promtool check rules" promtool check rules monitoring/prometheus/alerts.yml
    run "promtool test rules" promtool test rules monitoring/prometheus/alerts.test.yml
fi

# --- metric names in alerts and dashboard -----------------------------------------------------
section grafana
run "dashboard JSON and alert rules use SPEC's metric names, and cover them all" "$PY" - <<'EOF'
import json, re, sys, yaml
spec = {"rrlb_requests_total", "rrlb_request_duration_seconds", "rrlb_backend_healthy",
        "rrlb_circuit_state", "rrlb_in_flight", "rrlb_retries_total", "rrlb_rejected_total"}
allowed = spec | {"rrlb_request_duration_seconds_" + s for s in ("bucket", "sum", "count")}
def base(m):
    return re.sub(r"_(bucket|sum|count)$", "", m) if m.startswith("rrlb_request_duration_seconds") else m
errors = []
dash = json.load(open("monitoring/grafana/dashboards/rrlb.json"))
exprs = []
def walk(panels):
    for p in panels:
        for t in p.get("targets", []):
            exprs.append((p.get("title"), t.get("expr", "")))
        walk(p.get("panels", []))
walk(dash.get("panels", []))
if not dash.get("uid") or not dash.get("title"):
    errors.append("dashboard needs uid and title")
ds_uid = yaml.safe_load(open("monitoring/grafana/provisioning/datasources/prometheus.yml"))["datasources"][0]["uid"]
for p in dash["panels"]:
    if (p.get("datasource") or {}).get("uid") not in (ds_uid, None):
        errors.append(f"panel {p.get('title')}: unknown datasource uid")
used_dash = set()
for title, e in exprs:
    for m in re.findall(r"\brrlb_[a-z_]+", e):
        if m not in allowed:
            errors.append(f"dashboard panel {title!r}: unknown metric {m}")
        used_dash.add(base(m))
for m in sorted(spec - used_dash):
    errors.append(f"dashboard: no panel shows {m}")
rules = yaml.safe_load(open("monitoring/prometheus/alerts.yml"))
used_rules = set()
for g in rules["groups"]:
    for r in g["rules"]:
        for m in re.findall(r"\brrlb_[a-z_]+", r["expr"]):
            if m not in allowed:
                errors.append(f"alert {r.get('alert')}: unknown metric {m}")
            used_rules.add(base(m))
for m in sorted(spec - used_rules - {"rrlb_in_flight"}):
    errors.append(f"alerts: no rule uses {m}")
for e in errors:
    print(e)
print(f"{len(exprs)} dashboard queries checked")
sys.exit(1 if errors else 0)
EOF

# --- OpenAPI ----------------------------------------------------------------------------------
section openapi
if have openapi-spec-validator; then
    run "openapi-spec-validator docs/api-spec.yml" openapi-spec-validator docs/api-spec.yml
fi
run "api-spec covers every admin call of SPEC" "$PY" - <<'EOF'
import sys, yaml
spec = yaml.safe_load(open("docs/api-spec.yml"))
want = {
    "/admin/health": {"get"}, "/admin/metrics": {"get"}, "/admin/backends": {"get", "post"},
    "/admin/backends/{name}": {"patch", "delete"}, "/admin/reload": {"post"},
    "/metrics": {"get"}, "/healthz": {"get"}, "/readyz": {"get"},
}
errors = []
paths = spec.get("paths", {})
for path, methods in want.items():
    have = set(paths.get(path, {})) & {"get", "post", "put", "patch", "delete"}
    if not methods <= have:
        errors.append(f"{path}: missing {sorted(methods - have)}")
    for m in methods & have:
        op = paths[path][m]
        mutating = m in ("post", "patch", "delete")
        if mutating and not op.get("security"):
            errors.append(f"{m.upper()} {path}: needs bearerAuth security")
        if mutating and "401" not in op.get("responses", {}):
            errors.append(f"{m.upper()} {path}: needs a 401 answer")
for e in errors:
    print(e)
sys.exit(1 if errors else 0)
EOF

# --- rrlb --check on the shipped configurations -----------------------------------------------
section rrlb
rrlb_bin="${RRLB_BIN:-}"
if [[ -z "$rrlb_bin" ]]; then
    for candidate in "${CARGO_TARGET_DIR:-target}/release/rrlb" "${CARGO_TARGET_DIR:-target}/debug/rrlb"; do
        if [[ -x "$candidate" ]]; then
            rrlb_bin="$candidate"
            break
        fi
    done
fi
if [[ -n "$rrlb_bin" ]]; then
    for cfg in deploy/compose/rrlb.toml deploy/k8s/rrlb.toml; do
        run "rrlb --check -c $cfg ($rrlb_bin)" env RRLB_ADMIN_LISTEN=0.0.0.0:9901 RRLB_ADMIN_TOKEN=check-deploy \
            "$rrlb_bin" --check -c "$cfg"
    done
else
    echo "skip rrlb --check: no rrlb binary (cargo build -p rrlb-bin, or set RRLB_BIN)"
fi

# --- summary ----------------------------------------------------------------------------------
echo
if [[ "${#failures[@]}" -gt 0 ]]; then
    printf 'check-deploy: %d failed:\n' "${#failures[@]}"
    printf '  - %s\n' "${failures[@]}"
    printf '%d passed, %d failed\n' "$passes" "${#failures[@]}"
    exit 1
fi
printf '%d passed, %d failed\n' "$passes" 0
