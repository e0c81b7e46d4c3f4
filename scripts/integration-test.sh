#!/usr/bin/env bash
# End-to-end test of a running stack: distribution, failover, ejection and re-admission.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
    cat <<EOF
usage: scripts/integration-test.sh [-h]

Runs against a stack that is already up (scripts/local-up.sh, or docker compose up with
RRLB_STACK=compose) and checks, with bounded waits:
  1. GET /healthz and /readyz answer 200, GET /admin/health is "ok" with every backend healthy;
  2. a POST is echoed unchanged through rrlb, with x-rrlb-backend and x-request-id set;
  3. N requests are spread evenly over the backends (round robin; GET /admin/metrics request_counts);
  4. VICTIM is killed (scripts/kill.sh) while N requests are flowing: they keep succeeding (retry
     on another backend), rrlb marks it unhealthy, and it then gets no requests while the others
     share them evenly;
  5. VICTIM is restored (scripts/restore.sh): rrlb marks it healthy and sends it requests again.
Exits non-zero if any check fails; VICTIM is restored on every exit.

Environment (defaults in brackets):
  RRLB_STACK     local | compose                 [local]
  RRLB_URL       proxy base URL                  [http://127.0.0.1:\$RRLB_PORT]  (RRLB_PORT 8080)
  ADMIN_URL      admin base URL                  [http://127.0.0.1:\$ADMIN_PORT] (ADMIN_PORT 9901)
  N              requests per phase              [200]
  VICTIM         service to kill                 [echo-go]
  TOLERANCE      allowed deviation from an even share, in percent [20]
  WAIT_SECONDS   bound on each wait for a health change [60]
  MAX_FAILURES   failed requests allowed while VICTIM dies [1]: the request in flight on it
                 when it is killed reached it, so with retries.on = ["connect-failure"] it is
                 answered 502, not retried (requests are sent one at a time)
EOF
}

case "${1:-}" in
    -h | --help) usage; exit 0 ;;
    "") ;;
    *) usage >&2; exit 2 ;;
esac

need curl jq
require_loopback "$RRLB_URL"
require_loopback "$ADMIN_URL"
N="${N:-200}"
VICTIM="$(service_name "${VICTIM:-echo-go}")"
TOLERANCE="${TOLERANCE:-20}"
WAIT_SECONDS="${WAIT_SECONDS:-60}"
MAX_FAILURES="${MAX_FAILURES:-1}"
work="$(mktemp -d)"
passed=0
failed=0
victim_down=0

finish() {
    local rc=$?
    if [[ "$victim_down" -eq 1 ]]; then
        log "restoring $VICTIM"
        "$RRLB_ROOT/scripts/restore.sh" "$VICTIM" || true
    fi
    rm -rf "$work"
    printf '%d passed, %d failed\n' "$passed" "$failed"
    if [[ "$failed" -gt 0 && "$rc" -eq 0 ]]; then rc=1; fi
    exit "$rc"
}
trap finish EXIT

ok() {
    passed=$((passed + 1))
    printf 'ok   %s\n' "$*"
}
not_ok() {
    failed=$((failed + 1))
    printf 'FAIL %s\n' "$*"
}
check() { # check DESCRIPTION COMMAND...
    local desc="$1"
    shift
    if "$@"; then ok "$desc"; else not_ok "$desc"; fi
}

# send N TAG: N POSTs through rrlb over one keep-alive connection; writes "code backend" lines
# to $work/TAG.out.
send() {
    local n="$1" tag="$2" i
    : >"$work/$tag.cfg"
    for ((i = 0; i < n; i++)); do
        printf 'url = "%s/integration/%s/%d"\noutput = "/dev/null"\n' "$RRLB_URL" "$tag" "$i" >>"$work/$tag.cfg"
    done
    curl -s --max-time 120 -X POST -H 'content-type: application/json' --data '{"probe":true}' \
        -w '%{http_code} %header{x-rrlb-backend}\n' -K "$work/$tag.cfg" >"$work/$tag.out" || true
}
count_ok() { grep -c '^200 ' "$work/$1.out" || true; }

metrics() { admin_get /admin/metrics >"$work/$1.json"; }
retries_total() {
    admin_get /metrics 2>/dev/null | awk '$1 == "rrlb_retries_total" { v = $2 } END { printf "%d\n", v + 0 }'
}
# delta NAME BEFORE AFTER: growth of request_counts[NAME] between two snapshots.
delta() {
    jq -n --arg n "$1" --slurpfile a "$work/$2.json" --slurpfile b "$work/$3.json" \
        '($b[0].request_counts[$n] // 0) - ($a[0].request_counts[$n] // 0)'
}

# even_share PHASE BEFORE AFTER TOTAL NAMES...: each named backend got TOTAL/k within TOLERANCE.
even_share() {
    local phase="$1" before="$2" after="$3" total="$4"
    shift 4
    local k=$# name d lo hi expect all=0
    expect=$((total / k))
    lo=$((expect * (100 - TOLERANCE) / 100 - 1))
    hi=$((expect * (100 + TOLERANCE) / 100 + 1))
    for name in "$@"; do
        d="$(delta "$name" "$before" "$after")"
        printf '     %-10s %5s requests (expected %d, %d..%d)\n' "$name" "$d" "$expect" "$lo" "$hi"
        if ((d < lo || d > hi)); then all=1; fi
    done
    check "$phase: $total requests shared evenly by $k backends" test "$all" -eq 0
}

# --- 1. liveness, readiness, health ----------------------------------------------------------
check "GET /healthz answers 200" wait_http "$ADMIN_URL/healthz" 200 30
check "GET /readyz answers 200" wait_http "$ADMIN_URL/readyz" 200 "$WAIT_SECONDS"

all_healthy() {
    admin_get /admin/health 2>/dev/null | jq -e '.status == "ok" and (.backends | length > 0) and all(.backends[]; .healthy == true)' >/dev/null 2>&1
}
wait_all_healthy() {
    local deadline=$((SECONDS + WAIT_SECONDS))
    while ((SECONDS < deadline)); do
        all_healthy && return 0
        sleep 0.5
    done
    return 1
}
check "GET /admin/health is ok with every backend healthy" wait_all_healthy
mapfile -t backends < <(admin_get /admin/health | jq -r '.backends[].name')
((${#backends[@]} >= 2)) || die "need at least two backends, found: ${backends[*]:-none}"
printf '     backends: %s\n' "${backends[*]}"
victim_known=0
for b in "${backends[@]}"; do [[ "$b" == "$VICTIM" ]] && victim_known=1; done
((victim_known == 1)) || die "VICTIM $VICTIM is not one of rrlb's backends (${backends[*]})"
others=()
for b in "${backends[@]}"; do [[ "$b" != "$VICTIM" ]] && others+=("$b"); done

# --- 2. one echo, with headers ---------------------------------------------------------------
body='{"integration":"rrlb","n":12345678901234567890,"s":"\u00e9"}'
curl -s -D "$work/echo.headers" -o "$work/echo.body" --max-time 5 \
    -X POST -H 'content-type: application/json' -H 'x-request-id: integration-test-1' \
    --data "$body" "$RRLB_URL/integration/echo" || true
check "POST is echoed unchanged through rrlb" test "$(cat "$work/echo.body" 2>/dev/null)" = "$body"
echo_backend="$(tr -d '\r' <"$work/echo.headers" | awk -F': *' 'tolower($1) == "x-rrlb-backend" { print $2 }')"
check "response names its backend in x-rrlb-backend ($echo_backend)" test -n "$echo_backend"
check "x-request-id sent by the client is returned" \
    grep -qi '^x-request-id: integration-test-1' "$work/echo.headers"

# --- 3. distribution --------------------------------------------------------------------------
metrics m0
send "$N" all
metrics m1
check "all $N requests answered 200 (got $(count_ok all))" test "$(count_ok all)" -eq "$N"
even_share "all up" m0 m1 "$N" "${backends[@]}"

# --- 4. kill the victim -----------------------------------------------------------------------
# Kill it while requests are flowing, so that some reach it before the health checks eject it
# and have to be retried on another backend.
retries_before="$(retries_total)"
send "$N" dying &
sender=$!
sleep 0.2
"$RRLB_ROOT/scripts/kill.sh" "$VICTIM"
victim_down=1
wait "$sender"
dying_ok="$(count_ok dying)"
check "$VICTIM killed mid-stream: $dying_ok/$N requests answered 200 (at most $MAX_FAILURES lost in flight)" \
    test $((N - dying_ok)) -le "$MAX_FAILURES"
printf '     rrlb_retries_total grew by %s\n' "$(($(retries_total) - retries_before))"
check "$VICTIM marked unhealthy by active checks" wait_backend_healthy "$VICTIM" false "$WAIT_SECONDS"
check "GET /admin/health still 200 with $VICTIM out" test "$(http_code "$ADMIN_URL/admin/health")" = 200
metrics m2
send "$N" ejected
metrics m3
check "$VICTIM ejected: all $N requests answered 200 (got $(count_ok ejected))" test "$(count_ok ejected)" -eq "$N"
check "$VICTIM got no requests while ejected" test "$(delta "$VICTIM" m2 m3)" -eq 0
even_share "$VICTIM ejected" m2 m3 "$N" "${others[@]}"

# --- 5. restore it ----------------------------------------------------------------------------
"$RRLB_ROOT/scripts/restore.sh" "$VICTIM"
victim_down=0
check "$VICTIM marked healthy again" wait_backend_healthy "$VICTIM" true "$WAIT_SECONDS"
metrics m4
send "$N" restored
metrics m5
check "after restore: all $N requests answered 200 (got $(count_ok restored))" test "$(count_ok restored)" -eq "$N"
check "$VICTIM receives requests again" test "$(delta "$VICTIM" m4 m5)" -gt 0
even_share "all up again" m4 m5 "$N" "${backends[@]}"
