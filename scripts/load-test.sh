#!/usr/bin/env bash
# Load the proxy with wrk and show how the requests were spread over the backends.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
    cat <<EOF
usage: scripts/load-test.sh [-h]

Runs wrk against rrlb with POSTs of a small JSON body (scripts/wrk/post.lua) and prints the
per-backend distribution from GET /admin/metrics taken before and after: requests, share,
failures, p99, health and breaker state. Works on either stack (local or compose).

Environment (defaults in brackets):
  RRLB_URL      proxy base URL, loopback only   [http://127.0.0.1:8080]
  ADMIN_URL     admin base URL, loopback only   [http://127.0.0.1:9901]
  DURATION      wrk duration, seconds           [10]  (at most 300)
  CONNECTIONS   open connections                [32]
  THREADS       wrk threads                     [2]
EOF
}

case "${1:-}" in
    -h | --help) usage; exit 0 ;;
    "") ;;
    *) usage >&2; exit 2 ;;
esac

need wrk curl jq column
require_loopback "$RRLB_URL"
require_loopback "$ADMIN_URL"
DURATION="${DURATION:-10}"
DURATION="${DURATION%s}"
if ! [[ "$DURATION" =~ ^[0-9]+$ ]] || ((DURATION < 1 || DURATION > 300)); then
    die "DURATION must be 1..300 seconds"
fi
CONNECTIONS="${CONNECTIONS:-32}"
THREADS="${THREADS:-2}"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

admin_get /admin/metrics >"$work/before.json" || die "cannot read $ADMIN_URL/admin/metrics (is the stack up?)"
log "wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s POST $RRLB_URL"
wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency --timeout 5s \
    -s "$RRLB_ROOT/scripts/wrk/post.lua" "$RRLB_URL"
admin_get /admin/metrics >"$work/after.json"

echo
echo "Distribution over this run (GET /admin/metrics, after minus before):"
print_distribution "$work/before.json" "$work/after.json"
