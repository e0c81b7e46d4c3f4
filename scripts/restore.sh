#!/usr/bin/env bash
# Undo kill.sh, add-latency.sh and fail.sh: start the service if it is down, reset its chaos settings.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
    cat <<EOF
usage: scripts/restore.sh [-h] SERVICE

Brings SERVICE back to normal: starts it if it is not running (local: the same command as
scripts/local-up.sh; compose: docker compose start SERVICE), waits (bounded by START_TIMEOUT,
default 90s) for GET /health to answer 200, then resets its chaos settings (DELETE /_chaos:
no added latency, no injected failures, healthy).
EOF
}

case "${1:-}" in
    -h | --help) usage; exit 0 ;;
    "") usage >&2; exit 2 ;;
esac
[[ $# -eq 1 ]] || { usage >&2; exit 2; }
svc="$(service_name "$1")"
[[ "$svc" != rrlb ]] || die "restore.sh handles the echo services; restart rrlb with local-up.sh or docker compose"
url="$(service_url "$svc")"
require_loopback "$url"

case "$RRLB_STACK" in
    local)
        if [[ -z "$(local_pid "$svc")" ]]; then
            start_local "$svc"
        fi
        ;;
    compose)
        compose start "$svc"
        ;;
    *) die "unknown RRLB_STACK '$RRLB_STACK' (local or compose)" ;;
esac

# A service made unhealthy through chaos answers /health with 503: reset it first if it is up.
if [[ "$(http_code "$url/_chaos")" == 200 ]]; then
    chaos "$svc" DELETE >/dev/null
fi
wait_http "$url/health" 200 "${START_TIMEOUT:-90}" || die "$svc did not become healthy"
chaos "$svc" DELETE >/dev/null
log "$svc restored: healthy, chaos reset; rrlb re-admits it after healthy_threshold passing checks"
