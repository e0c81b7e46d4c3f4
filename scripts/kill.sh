#!/usr/bin/env bash
# Kill one echo service abruptly (a crash), to watch rrlb retry, eject and later re-admit it.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
    cat <<EOF
usage: scripts/kill.sh [-h] SERVICE

Kills SERVICE (echo-go, echo-node, echo-java, echo-rs; or go, node, java, rs) at once.
  RRLB_STACK=local    (default) SIGKILL to the process group started by scripts/local-up.sh
  RRLB_STACK=compose  docker compose stop --timeout 0 SERVICE (no restart: it was stopped by hand)
Bring it back with scripts/restore.sh SERVICE.
EOF
}

case "${1:-}" in
    -h | --help) usage; exit 0 ;;
    "") usage >&2; exit 2 ;;
esac
[[ $# -eq 1 ]] || { usage >&2; exit 2; }
svc="$(service_name "$1")"
[[ "$svc" != rrlb ]] || die "kill.sh kills echo services; stop rrlb with local-down.sh or docker compose"

case "$RRLB_STACK" in
    local)
        [[ -n "$(local_pid "$svc")" ]] || die "$svc is not running on the local stack"
        stop_local "$svc" KILL 5
        ;;
    compose)
        compose stop --timeout 0 "$svc"
        ;;
    *) die "unknown RRLB_STACK '$RRLB_STACK' (local or compose)" ;;
esac
log "$svc killed; rrlb retries its requests elsewhere and ejects it once its health checks fail"
