#!/usr/bin/env bash
# Starve one service of CPU for a bounded time, then give it back.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
    cat <<EOF
usage: scripts/cpu-stress.sh [-h] SERVICE [SECONDS]

Starves SERVICE of CPU for SECONDS (default 30, at most 600), then restores it, also on Ctrl-C.
  RRLB_STACK=compose  docker update --cpus \$STRESS_CPUS (default 0.05) on its container, then
                      back to the container's own limit (deploy.resources.limits.cpus)
  RRLB_STACK=local    (default) pauses the service's process group for STRESS_DUTY percent
                      (default 90) of every 100ms with SIGSTOP/SIGCONT: a CPU quota without a
                      container, and without loading the machine's other cores
Either way the service's latency rises and its health checks may time out: watch the p99 and
health panels, and rrlb's slow-call circuit breaker.
EOF
}

case "${1:-}" in
    -h | --help) usage; exit 0 ;;
esac
[[ $# -ge 1 && $# -le 2 ]] || { usage >&2; exit 2; }
svc="$(service_name "$1")"
seconds="${2:-30}"
if ! [[ "$seconds" =~ ^[0-9]+$ ]] || ((seconds < 1 || seconds > 600)); then
    die "SECONDS must be 1..600"
fi

case "$RRLB_STACK" in
    compose)
        need docker
        cid="$(compose_container "$svc")"
        nano="$(docker inspect -f '{{.HostConfig.NanoCpus}}' "$cid")"
        original="$(awk -v n="$nano" 'BEGIN { printf "%.2f\n", n / 1e9 }')"
        restore_cpus() {
            docker update --cpus "$original" "$cid" >/dev/null && log "$svc back to --cpus $original"
        }
        trap restore_cpus EXIT
        trap 'exit 130' INT TERM
        docker update --cpus "${STRESS_CPUS:-0.05}" "$cid" >/dev/null
        log "$svc limited to ${STRESS_CPUS:-0.05} CPU for ${seconds}s (was $original)"
        sleep "$seconds"
        ;;
    local)
        pid="$(local_pid "$svc")"
        [[ -n "$pid" ]] || die "$svc is not running on the local stack"
        duty="${STRESS_DUTY:-90}"
        if ! [[ "$duty" =~ ^[0-9]+$ ]] || ((duty < 1 || duty > 99)); then
            die "STRESS_DUTY must be 1..99"
        fi
        stop_s="$(awk -v d="$duty" 'BEGIN { printf "%.3f\n", d / 1000 }')"
        run_s="$(awk -v d="$duty" 'BEGIN { printf "%.3f\n", (100 - d) / 1000 }')"
        resume() { kill -CONT -- "-$pid" 2>/dev/null || true; }
        trap resume EXIT
        trap 'exit 130' INT TERM
        log "$svc (pid $pid) paused ${duty}% of the time for ${seconds}s"
        deadline=$((SECONDS + seconds))
        while ((SECONDS < deadline)); do
            kill -STOP -- "-$pid" 2>/dev/null || die "$svc (pid $pid) is gone"
            sleep "$stop_s"
            kill -CONT -- "-$pid" 2>/dev/null || true
            sleep "$run_s"
        done
        ;;
    *) die "unknown RRLB_STACK '$RRLB_STACK' (local or compose)" ;;
esac
log "$svc has its CPU back"
