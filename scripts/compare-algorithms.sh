#!/usr/bin/env bash
# Load the local fleet with wrk once per balancing algorithm, switched by POST /admin/reload.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
    cat <<EOF
usage: scripts/compare-algorithms.sh [-h]

On the local stack (scripts/local-up.sh), for each algorithm in turn: writes it into rrlb's
configuration file, POST /admin/reload, warms up, runs wrk (POSTs of a small JSON body), and
prints wrk's p50/p99 and requests/s, the p99 of the same requests as rrlb timed them (from
/metrics; wrk's own p99 is corrected for coordinated omission, so a rare slow answer weighs as
much as the requests a fixed-rate client would have queued behind it), and the per-backend
distribution from /admin/metrics.
Ends with a summary table, and puts the original algorithm back (also on Ctrl-C or an error).

Optionally slows one member first (and restores it at the end): SLOW_SERVICE=echo-java with
SLOW_DELAY=20ms adds latency through its chaos route (scripts/add-latency.sh), or with
SLOW_CPU=1 starves it of CPU during each run (scripts/cpu-stress.sh).

Environment (defaults in brackets):
  ALGORITHMS    algorithms to compare   [round-robin least-request random peak-ewma weighted-round-robin]
  DURATION      wrk seconds per run     [10]  (at most 300)
  WARMUP        warm-up seconds         [2]
  CONNECTIONS   open connections        [32]
  THREADS       wrk threads             [1]
  SLOW_SERVICE  a member to slow down   [none]
  SLOW_DELAY    its added latency       [20ms]
  SLOW_CPU      1: CPU-starve it instead of adding latency [0]
  RRLB_STATE_DIR  where local-up.sh keeps rrlb.toml [.tmp/local]
EOF
}

case "${1:-}" in
    -h | --help) usage; exit 0 ;;
    "") ;;
    *) usage >&2; exit 2 ;;
esac

[[ "$RRLB_STACK" == local ]] || die "compare-algorithms.sh edits the local stack's rrlb.toml (RRLB_STACK=local)"
need wrk curl jq column sed awk
require_loopback "$RRLB_URL"
require_loopback "$ADMIN_URL"
read -r -a algorithms <<<"${ALGORITHMS:-round-robin least-request random peak-ewma weighted-round-robin}"
DURATION="${DURATION:-10}"
DURATION="${DURATION%s}"
WARMUP="${WARMUP:-2}"
WARMUP="${WARMUP%s}"
for n in "$DURATION" "$WARMUP"; do
    if ! [[ "$n" =~ ^[0-9]+$ ]] || ((n > 300)); then die "DURATION and WARMUP must be 0..300 seconds"; fi
done
((DURATION >= 1)) || die "DURATION must be at least 1 second"
CONNECTIONS="${CONNECTIONS:-32}"
THREADS="${THREADS:-1}"
SLOW_SERVICE="${SLOW_SERVICE:-}"
SLOW_DELAY="${SLOW_DELAY:-20ms}"
SLOW_CPU="${SLOW_CPU:-0}"

config="$STATE_DIR/rrlb.toml"
[[ -f "$config" ]] || die "$config not found: start the stack with scripts/local-up.sh"
grep -Eq '^algorithm = "[a-z-]+"$' "$config" || die "$config has no 'algorithm = \"...\"' line"
admin_get /admin/metrics >/dev/null || die "cannot reach $ADMIN_URL (is the stack up?)"
original="$(sed -n -E 's/^algorithm = "([a-z-]+)"$/\1/p' "$config")"

work="$(mktemp -d)"
stress_pid=""
cleanup() {
    if [[ -n "$stress_pid" ]]; then kill "$stress_pid" 2>/dev/null || true; wait "$stress_pid" 2>/dev/null || true; fi
    if [[ -n "$SLOW_SERVICE" && "$SLOW_CPU" != 1 ]]; then
        chaos "$(service_name "$SLOW_SERVICE")" DELETE >/dev/null || true
    fi
    set_algorithm "$original" >/dev/null 2>&1 || log "could not restore algorithm $original"
    rm -rf "$work"
}
trap cleanup EXIT

# set_algorithm NAME: write it into the file and reload; fails if rrlb refuses the file.
set_algorithm() {
    sed -i -E "s/^algorithm = \"[a-z-]+\"$/algorithm = \"$1\"/" "$config"
    admin_call POST /admin/reload >"$work/reload.json" || die "reload to $1 refused: $(cat "$work/reload.json")"
    [[ "$(jq -r .algorithm "$work/reload.json")" == "$1" ]] || die "rrlb did not switch to $1"
}

if [[ -n "$SLOW_SERVICE" ]]; then
    SLOW_SERVICE="$(service_name "$SLOW_SERVICE")"
    if [[ "$SLOW_CPU" != 1 ]]; then
        "$RRLB_ROOT/scripts/add-latency.sh" "$SLOW_SERVICE" "$SLOW_DELAY" >/dev/null
    fi
fi

# histogram_p99 BEFORE AFTER: the 99th percentile (ms) of the requests answered between two scrapes of
# /metrics, from rrlb_request_duration_seconds summed over backends, interpolated inside its bucket as
# Prometheus' histogram_quantile does. Unlike wrk's percentiles, which wrk corrects for coordinated omission
# (each slow answer also counts the requests a fixed-rate client would have sent meanwhile), this counts each
# request once.
histogram_p99() {
    awk '
        function le_of(line) { match(line, /le="[^"]*"/); return substr(line, RSTART + 4, RLENGTH - 5) }
        /^rrlb_request_duration_seconds_bucket/ {
            le = le_of($0)
            if (FILENAME == ARGV[1]) before[le] += $NF; else after[le] += $NF
        }
        END {
            n = 0
            for (le in after) if (le != "+Inf") { les[++n] = le + 0 }
            # insertion sort: a few dozen buckets
            for (i = 2; i <= n; i++) { v = les[i]; for (j = i - 1; j >= 1 && les[j] > v; j--) les[j + 1] = les[j]; les[j + 1] = v }
            total = after["+Inf"] - before["+Inf"]
            if (total <= 0) { print "-"; exit }
            want = 0.99 * total; prev_le = 0; prev_c = 0
            for (i = 1; i <= n; i++) {
                key = ""; for (k in after) if (k != "+Inf" && k + 0 == les[i]) key = k
                c = after[key] - before[key]
                if (c >= want) { printf "%.2fms\n", 1000 * (prev_le + (les[i] - prev_le) * (want - prev_c) / (c - prev_c)); exit }
                prev_le = les[i]; prev_c = c
            }
            printf ">%.0fms\n", 1000 * prev_le
        }' "$1" "$2"
}

printf 'algorithm\treq/s\tp50\tp99\tp99 at rrlb\tshares\n' >"$work/summary.tsv"
for algorithm in "${algorithms[@]}"; do
    log "--- $algorithm"
    set_algorithm "$algorithm"
    if [[ -n "$SLOW_SERVICE" && "$SLOW_CPU" == 1 ]]; then
        "$RRLB_ROOT/scripts/cpu-stress.sh" "$SLOW_SERVICE" "$((WARMUP + DURATION + 2))" >/dev/null 2>&1 &
        stress_pid=$!
    fi
    if ((WARMUP > 0)); then
        wrk -t"$THREADS" -c"$CONNECTIONS" -d"${WARMUP}s" --timeout 5s \
            -s "$RRLB_ROOT/scripts/wrk/post.lua" "$RRLB_URL" >/dev/null
    fi
    admin_get /admin/metrics >"$work/before.json"
    admin_get /metrics >"$work/before.prom"
    wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency --timeout 5s \
        -s "$RRLB_ROOT/scripts/wrk/post.lua" "$RRLB_URL" >"$work/wrk.txt"
    admin_get /admin/metrics >"$work/after.json"
    admin_get /metrics >"$work/after.prom"
    if [[ -n "$stress_pid" ]]; then
        wait "$stress_pid" 2>/dev/null || true
        stress_pid=""
    fi
    p50="$(awk '$1 == "50%" { print $2 }' "$work/wrk.txt")"
    p99="$(awk '$1 == "99%" { print $2 }' "$work/wrk.txt")"
    rps="$(awk '$1 == "Requests/sec:" { printf "%d", $2 }' "$work/wrk.txt")"
    errors="$(awk '/Non-2xx or 3xx responses:/ { print $NF }' "$work/wrk.txt")"
    p99_rrlb="$(histogram_p99 "$work/before.prom" "$work/after.prom")"
    echo "$algorithm: ${rps} req/s, p50 $p50, p99 $p99 (wrk; at rrlb: $p99_rrlb)${errors:+, non-2xx $errors}"
    print_distribution "$work/before.json" "$work/after.json"
    echo
    shares="$(jq -r --slurpfile before "$work/before.json" '
        (($before[0].backends // []) | map({key: .name, value: .requests}) | from_entries) as $prev
        | [.backends[] | {name, n: (.requests - ($prev[.name] // 0))}] as $rows
        | ($rows | map(.n) | add // 0) as $total
        | [$rows[] | "\(.name) \(if $total > 0 then (.n * 1000 / $total | floor) / 10 else 0 end)%"] | join(", ")
    ' "$work/after.json")"
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$algorithm" "$rps" "$p50" "$p99" "$p99_rrlb" "$shares" >>"$work/summary.tsv"
done

echo "Summary (wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s${SLOW_SERVICE:+; $SLOW_SERVICE slowed})"
column -t -s $'\t' "$work/summary.tsv"
