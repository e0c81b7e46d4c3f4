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
  grafana    the dashboard JSON parses and its queries use only the metric names of docs/operations.md
  openapi    openapi-spec-validator docs/api-spec.yml (that it lists exactly the admin route table's
             operations, with the token where the table needs it, is the Rust test
             rrlb-bin/tests/api_spec.rs)
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
# The Python checks (linted by scripts/test.sh with pyflakes); each runs from the repository root.
CHECKS=scripts/checks
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
    check-deploy check-api install-deploy-tools compare-algorithms)
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
run "compose services: build/Dockerfile, limits, healthchecks, depends_on" "$PY" "$CHECKS/compose.py"

# --- Dockerfile -------------------------------------------------------------------------------
section docker
run "Dockerfile: multi-stage, locked release build, non-root, HEALTHCHECK, EXPOSE" "$PY" "$CHECKS/dockerfile.py"

if command -v cargo >/dev/null 2>&1; then
    run "docker build contexts at the repository root hold the whole cargo workspace" "$PY" "$CHECKS/contexts.py" "$tmp/ctx"
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
        mapfile -t k8s_files < <("$PY" "$CHECKS/kustomize_resources.py")
    fi
    run "kubernetes-validate --strict (latest bundled version)" kubernetes-validate --strict --quiet "${k8s_files[@]}"
    run "kubernetes-validate --strict -k 1.30.0" kubernetes-validate --strict --quiet -k 1.30.0 "${k8s_files[@]}"
    run "k8s: probes, resources, non-root, admin token from a Secret, PDB, HPA" "$PY" "$CHECKS/k8s.py" "${k8s_files[@]}"
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
run "dashboard JSON and alert rules use the documented metric names (docs/operations.md), and cover them all" "$PY" "$CHECKS/monitoring.py"

# --- OpenAPI ----------------------------------------------------------------------------------
section openapi
if have openapi-spec-validator; then
    run "openapi-spec-validator docs/api-spec.yml" openapi-spec-validator docs/api-spec.yml
fi

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
        # deploy/k8s uses `discovery = "kubernetes"` and `[state] store = "etcd"`, which a binary built
        # without those (non-default) features refuses: such a binary can only check the other file
        # (scripts/test.sh builds the debug binary with both features before this runs).
        checked="$(env RRLB_ADMIN_LISTEN=0.0.0.0:9901 RRLB_ADMIN_TOKEN=check-deploy \
            "$rrlb_bin" --check -c "$cfg" 2>&1 || true)"
        if [[ "$cfg" == deploy/k8s/* && "$checked" =~ without\ the\ \`(kubernetes|etcd)\`\ feature ]]; then
            echo "skip rrlb --check -c $cfg: $rrlb_bin was built without the ${BASH_REMATCH[1]} feature"
            continue
        fi
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
