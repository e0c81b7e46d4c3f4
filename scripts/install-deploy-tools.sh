#!/usr/bin/env bash
# Installs, idempotently, every tool that scripts/check-deploy.sh (and scripts/check-api.sh,
# scripts/load-test.sh) needs on a Debian 12 machine. Safe to run twice: anything already
# present is skipped. Needs root (or sudo) for apt-get.
#
#   apt:  the shellcheck linter, docker-compose (v1, for `config -q` only: no engine is
#         needed), wrk, curl, jq
#   promtool, extracted from Debian's prometheus package: no server is installed or started
#   pip:  kubernetes-validate, openapi-spec-validator, schemathesis, PyYAML, pyflakes (the linter of
#         scripts/checks/*.py; from pip rather than Debian's python3-pyflakes so that it is importable by
#         whichever python3 runs the checks, a pyenv one included)
#   kubectl (for `kubectl kustomize`) is used when present, never installed: check-deploy.sh
#   falls back to validating each file listed in kustomization.yaml.
set -euo pipefail

usage() {
    cat <<'USAGE'
usage: scripts/install-deploy-tools.sh [-h]

Installs what scripts/check-deploy.sh needs (shellcheck, docker-compose, promtool, wrk,
kubernetes-validate, openapi-spec-validator, schemathesis, pyflakes). Skips whatever is present.
Environment:
  PROMTOOL_DIR   where promtool is installed (default /usr/local/bin)
USAGE
}

if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then
    usage
    exit 0
fi

log() { printf 'install-deploy-tools: %s\n' "$*" >&2; }

SUDO=""
if [[ "$(id -u)" -ne 0 ]]; then
    SUDO="sudo"
fi

PROMTOOL_DIR="${PROMTOOL_DIR:-/usr/local/bin}"
apt_updated=0
apt_update_once() {
    if [[ "$apt_updated" -eq 0 ]]; then
        $SUDO apt-get update -qq
        apt_updated=1
    fi
}

# --- apt packages -----------------------------------------------------------------------
apt_missing=()
command -v shellcheck >/dev/null 2>&1 || apt_missing+=(shellcheck)
command -v docker-compose >/dev/null 2>&1 || apt_missing+=(docker-compose)
command -v wrk >/dev/null 2>&1 || apt_missing+=(wrk)
command -v curl >/dev/null 2>&1 || apt_missing+=(curl)
command -v jq >/dev/null 2>&1 || apt_missing+=(jq)
command -v column >/dev/null 2>&1 || apt_missing+=(bsdextrautils)
if [[ "${#apt_missing[@]}" -gt 0 ]]; then
    log "apt-get install ${apt_missing[*]}"
    apt_update_once
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${apt_missing[@]}" >/dev/null
else
    log "shellcheck, docker-compose, wrk, curl, jq, column: present"
fi

# --- promtool ---------------------------------------------------------------------------
# Debian ships promtool only inside the `prometheus` package, whose postinst creates a user and
# starts a server. We only want the static checker, so we download the .deb and extract the one
# binary: nothing is configured, enabled or started.
if command -v promtool >/dev/null 2>&1; then
    log "promtool: present ($(command -v promtool))"
else
    log "extracting promtool from Debian's prometheus package"
    apt_update_once
    tmp="$(mktemp -d)"
    chmod 0755 "$tmp" # apt-get download runs as _apt and must be able to write here
    trap 'rm -rf "$tmp"' EXIT
    (cd "$tmp" && apt-get download -qq prometheus >/dev/null)
    dpkg-deb -x "$tmp"/prometheus_*.deb "$tmp/root"
    $SUDO install -m 0755 "$tmp/root/usr/bin/promtool" "$PROMTOOL_DIR/promtool"
    rm -rf "$tmp"
    trap - EXIT
    log "promtool installed at $PROMTOOL_DIR/promtool"
fi

# --- Python tools -----------------------------------------------------------------------
PY="${PYTHON:-python3}"
if ! command -v "$PY" >/dev/null 2>&1; then
    log "installing python3 and pip"
    apt_update_once
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends python3 python3-pip >/dev/null
fi

pip_missing=()
"$PY" -c 'import kubernetes_validate' >/dev/null 2>&1 || pip_missing+=(kubernetes-validate)
"$PY" -c 'import openapi_spec_validator' >/dev/null 2>&1 || pip_missing+=(openapi-spec-validator)
command -v schemathesis >/dev/null 2>&1 || command -v st >/dev/null 2>&1 || pip_missing+=(schemathesis)
"$PY" -c 'import yaml' >/dev/null 2>&1 || pip_missing+=(PyYAML)
"$PY" -c 'import pyflakes' >/dev/null 2>&1 || pip_missing+=(pyflakes)
if [[ "${#pip_missing[@]}" -gt 0 ]]; then
    log "pip install ${pip_missing[*]}"
    # Debian's own python3 is "externally managed" (PEP 668); pyenv/venv pythons are not.
    if ! "$PY" -m pip install -q --disable-pip-version-check "${pip_missing[@]}"; then
        "$PY" -m pip install -q --disable-pip-version-check --break-system-packages "${pip_missing[@]}"
    fi
else
    log "kubernetes-validate, openapi-spec-validator, schemathesis, PyYAML, pyflakes: present"
fi

if command -v kubectl >/dev/null 2>&1; then
    log "kubectl: present (kustomize rendering available)"
else
    log "kubectl: absent (check-deploy.sh validates each kustomization resource file instead)"
fi
log "done"
