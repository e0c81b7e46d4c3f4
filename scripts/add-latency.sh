#!/usr/bin/env bash
# Add latency to every echo of one service, through its chaos route.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
    cat <<EOF
usage: scripts/add-latency.sh [-h] SERVICE DELAY

Makes every echo answered by SERVICE wait DELAY first (500ms, 2s, 1.5s, or a number of
milliseconds; 0 or off removes it). /health is not delayed, so the service stays healthy:
watch rrlb's p99 and its slow-call circuit breaker instead (a delay above the request timeout,
2s, makes rrlb answer 504). Works on both stacks: POST /_chaos on 127.0.0.1 (compose.yaml
publishes the echo ports on loopback). Undo with scripts/restore.sh SERVICE.
EOF
}

case "${1:-}" in
    -h | --help) usage; exit 0 ;;
esac
[[ $# -eq 2 ]] || { usage >&2; exit 2; }
svc="$(service_name "$1")"
[[ "$svc" != rrlb ]] || die "add-latency.sh works on echo services"
ms="$(parse_ms "$2")" || die "bad DELAY '$2' (examples: 500ms, 2s, 250)"
((ms <= 600000)) || die "DELAY must be at most 600s"
chaos "$svc" POST "{\"delay_ms\":$ms}"
log "$svc now delays each echo by ${ms}ms"
