#!/usr/bin/env bash
# Stop everything scripts/local-up.sh started.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
    cat <<EOF
usage: scripts/local-down.sh [-h]

Stops rrlb first (so that it drains), then the echo services started by scripts/local-up.sh:
SIGTERM to each process group, SIGKILL after STOP_GRACE_SECONDS (default 15). Only processes
recorded in the state directory ($STATE_DIR) are signalled. Logs are kept.
EOF
}

case "${1:-}" in
    -h | --help) usage; exit 0 ;;
    "") ;;
    *) usage >&2; die "unknown argument '$1'" ;;
esac

grace="${STOP_GRACE_SECONDS:-15}"
for name in rrlb "${ALL_SERVICES[@]}"; do
    stop_local "$name" TERM "$grace"
done
log "local stack stopped (logs in $STATE_DIR)"
