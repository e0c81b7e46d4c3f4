#!/usr/bin/env bash
# Property-based test of a running rrlb admin API against docs/api-spec.yml (schemathesis).
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
    cat <<EOF
usage: scripts/check-api.sh [-h] [ADMIN_URL] [-- EXTRA_SCHEMATHESIS_ARGS...]

Runs schemathesis against the admin API at ADMIN_URL (default \$ADMIN_URL or
http://127.0.0.1:9901) with the operations of docs/api-spec.yml, sending the bearer token
RRLB_ADMIN_TOKEN on every request. Checks: not_a_server_error, status_code_conformance,
content_type_conformance, response_schema_conformance. The proxy operations (tag "proxy") are
left out: they are served on the other listener; so is the endless event stream GET /admin/events.

The test ADDS, DRAINS and REMOVES backends (the configured ones too: schemathesis reuses names
from earlier answers) and reloads the configuration: point it only at a throwaway rrlb started
with a configuration file (e.g. scripts/local-up.sh), and run it after other tests. At the end it
calls POST /admin/reload, which restores the file's backend set. Loopback only.

Environment (defaults in brackets):
  RRLB_ADMIN_TOKEN   bearer token                          [demo-only-insecure-token]
  MAX_EXAMPLES       test cases per operation               [25]
  SEED               random seed, for a reproducible run    [0]
  PHASES             schemathesis phases                    [examples,coverage,fuzzing]
  REPORT_DIR         where a JUnit report is written         [.tmp/schemathesis]
  RELOAD_AFTER       1: POST /admin/reload at the end; 0: leave the state as the test left it [1]
EOF
}

extra=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        -h | --help) usage; exit 0 ;;
        --) shift; extra=("$@"); break ;;
        http://* | https://*) ADMIN_URL="${1%/}" ;;
        *) usage >&2; die "unknown argument '$1'" ;;
    esac
    shift
done

require_loopback "$ADMIN_URL"
if command -v schemathesis >/dev/null 2>&1; then
    st=(schemathesis)
elif command -v st >/dev/null 2>&1; then
    st=(st)
else
    die "schemathesis is not installed (scripts/install-deploy-tools.sh)"
fi
wait_http "$ADMIN_URL/healthz" 200 "${WAIT_SECONDS:-30}" || die "no rrlb admin API answers at $ADMIN_URL"

report_dir="${REPORT_DIR:-$RRLB_ROOT/.tmp/schemathesis}"
mkdir -p "$report_dir"
report_dir="$(cd "$report_dir" && pwd)"
log "schemathesis against $ADMIN_URL (report in $report_dir)"
# Run from the report directory: schemathesis and hypothesis keep their caches (.hypothesis/,
# .schemathesis/) in the working directory.
cd "$report_dir"
rc=0
# GET /admin/events (operation streamEvents) is left out: a Server-Sent Events stream never ends by
# itself, so every generated case would wait out --request-timeout for the whole body and fail.
# tests/dashboard.rs covers it.
"${st[@]}" run "$RRLB_ROOT/docs/api-spec.yml" \
    --url "$ADMIN_URL" \
    --header "Authorization: Bearer $RRLB_ADMIN_TOKEN" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
    --exclude-tag proxy \
    --exclude-operation-id streamEvents \
    --phases "${PHASES:-examples,coverage,fuzzing}" \
    --max-examples "${MAX_EXAMPLES:-25}" \
    --seed "${SEED:-0}" \
    --workers 1 \
    --request-timeout 5 \
    --report junit --report-dir "$report_dir" \
    ${extra[@]+"${extra[@]}"} || rc=$?

# schemathesis reuses names from earlier answers, so it drains and deletes the real backends too.
# A reload puts the configuration file's backend set back.
if [[ "${RELOAD_AFTER:-1}" == 1 ]]; then
    if admin_call POST /admin/reload >/dev/null; then
        log "backend set restored from the configuration file (POST /admin/reload)"
    else
        log "warning: POST /admin/reload failed: the backend set may be left changed"
    fi
fi
exit "$rc"
