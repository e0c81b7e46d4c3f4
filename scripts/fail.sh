#!/usr/bin/env bash
# Make one service answer a share of its echoes with 500, through its chaos route.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
    cat <<EOF
usage: scripts/fail.sh [-h] SERVICE RATE

Makes SERVICE answer the share RATE (0 to 1, e.g. 0.25) of its echoes with 500. Its /health
stays 200, so only rrlb's passive circuit breaker can eject it (watch rrlb_circuit_state and
the "Circuit breaker state" panel). RATE 0 stops the failures. Works on both stacks:
POST /_chaos on 127.0.0.1. Undo with scripts/restore.sh SERVICE.
EOF
}

case "${1:-}" in
    -h | --help) usage; exit 0 ;;
esac
[[ $# -eq 2 ]] || { usage >&2; exit 2; }
svc="$(service_name "$1")"
[[ "$svc" != rrlb ]] || die "fail.sh works on echo services"
rate="$2"
[[ "$rate" =~ ^(0|0?\.[0-9]+|1|1\.0*)$ ]] || die "bad RATE '$rate' (a number from 0 to 1, e.g. 0.25)"
if [[ "$rate" == .* ]]; then rate="0$rate"; fi
chaos "$svc" POST "{\"fail_rate\":$rate}"
log "$svc now fails a share $rate of its echoes with 500"
