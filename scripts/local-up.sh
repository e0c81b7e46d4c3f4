#!/usr/bin/env bash
# Build and start rrlb and the four echo services as local processes on 127.0.0.1.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
    cat <<EOF
usage: scripts/local-up.sh [-h] [--no-build]

Builds rrlb (cargo, release), echo-rs (cargo), echo-go (go build), echo-java (mvn package) and
starts them, with echo-node (node), as processes on 127.0.0.1 with the chaos routes enabled
(ECHO_CHAOS=1). Waits, bounded, until every echo answers GET /health and rrlb answers /readyz.
Pids and logs are kept in the state directory; stop everything with scripts/local-down.sh.

  --no-build    use what was built before

Environment (defaults in brackets):
  SERVICES            echo services to run      [${ALL_SERVICES[*]}]
  RRLB_PORT           proxy port                [8080]
  ADMIN_PORT          admin API port            [9901]
  ECHO_GO_PORT, ECHO_NODE_PORT, ECHO_JAVA_PORT, ECHO_RS_PORT   [8081, 8082, 8083, 8084]
  RRLB_ADMIN_TOKEN    admin bearer token        [demo-only-insecure-token]
  RRLB_ALGORITHM      balancing algorithm       [round-robin]
  RRLB_STATE_DIR      pids, logs, rrlb.toml     [.tmp/local]
  START_TIMEOUT       seconds to wait for each service to become healthy [90]
EOF
}

build=1
while [[ $# -gt 0 ]]; do
    case "$1" in
        -h | --help) usage; exit 0 ;;
        --no-build) build=0 ;;
        *) usage >&2; die "unknown argument '$1'" ;;
    esac
    shift
done

need curl
read -r -a services <<<"${SERVICES:-${ALL_SERVICES[*]}}"
for i in "${!services[@]}"; do
    services[i]="$(service_name "${services[i]}")"
done
[[ "${#services[@]}" -gt 0 ]] || die "SERVICES is empty"
START_TIMEOUT="${START_TIMEOUT:-90}"

mkdir -p "$STATE_DIR/bin"

for name in rrlb "${services[@]}"; do
    if [[ -n "$(local_pid "$name")" ]]; then
        die "$name is already running (pid $(local_pid "$name")): run scripts/local-down.sh first"
    fi
done
for port in "$RRLB_PORT" "$ADMIN_PORT" "$ECHO_GO_PORT" "$ECHO_NODE_PORT" "$ECHO_JAVA_PORT" "$ECHO_RS_PORT"; do
    if ! [[ "$port" =~ ^[0-9]+$ ]] || ((port < 1 || port > 65535)); then
        die "bad port '$port' (RRLB_PORT, ADMIN_PORT and ECHO_*_PORT must be 1..65535)"
    fi
done
for port in "$RRLB_PORT" "$ADMIN_PORT"; do
    if port_busy "$port"; then die "port $port on 127.0.0.1 is in use (set RRLB_PORT / ADMIN_PORT)"; fi
done
for name in "${services[@]}"; do
    port="$(service_port "$name")"
    if port_busy "$port"; then die "port $port ($name) on 127.0.0.1 is in use (set its ECHO_*_PORT)"; fi
done

has() {
    local s
    for s in "${services[@]}"; do [[ "$s" == "$1" ]] && return 0; done
    return 1
}

# --- build -----------------------------------------------------------------------------------
if [[ "$build" -eq 1 ]]; then
    need cargo
    packages=(-p rrlb-bin)
    has echo-rs && packages+=(-p echo-rs)
    log "cargo build --release ${packages[*]}"
    (cd "$RRLB_ROOT" && cargo build --release --locked "${packages[@]}")
    if has echo-go; then
        need go
        log "go build echo-go"
        (cd "$RRLB_ROOT/echo-go" && go build -o "$STATE_DIR/bin/echo-go" .)
    fi
    if has echo-java; then
        need mvn java
        log "mvn package echo-java"
        (cd "$RRLB_ROOT/echo-java" && mvn -q -B -DskipTests package)
    fi
fi
has echo-node && need node
for name in rrlb "${services[@]}"; do
    bin="$(local_command "$name" | sed -n '$p')"
    case "$name" in
        echo-node | echo-java) [[ -f "$bin" ]] || die "$bin not found (build it, or drop $name from SERVICES)" ;;
        *) [[ -x "$bin" ]] || die "$bin not found (run without --no-build)" ;;
    esac
done

# --- configuration ---------------------------------------------------------------------------
config="$STATE_DIR/rrlb.toml"
{
    cat <<EOF
# Written by scripts/local-up.sh; edit and save to see rrlb reload it.
listen = "127.0.0.1:$RRLB_PORT"
admin_listen = "127.0.0.1:$ADMIN_PORT"
algorithm = "${RRLB_ALGORITHM:-round-robin}"
EOF
    for name in "${services[@]}"; do
        printf '\n[[backends]]\nname = "%s"\nurl = "http://127.0.0.1:%s"\nweight = 1\n' "$name" "$(service_port "$name")"
    done
    cat <<'EOF'

# Faster health checks than the compose defaults, so that the failure scripts show quickly.
[health]
path = "/health"
interval = "1s"
timeout = "500ms"
healthy_threshold = 2
unhealthy_threshold = 2

[timeouts]
request = "2s"
connect = "500ms"
drain = "10s"

[retries]
attempts = 2
on = ["connect-failure"]
EOF
} >"$config"
log "wrote $config"

# --- start -----------------------------------------------------------------------------------
started=()
on_failure() {
    local name
    log "start-up failed; last lines of the logs:"
    for name in "${started[@]}"; do
        printf -- '--- %s\n' "$STATE_DIR/$name.log" >&2
        tail -n 15 "$STATE_DIR/$name.log" >&2 || true
    done
    for name in "${started[@]}"; do
        stop_local "$name" TERM 5
    done
}
trap on_failure ERR

for name in rrlb "${services[@]}"; do
    : >"$STATE_DIR/$name.log" # a fresh log per run (restore.sh appends to it)
done
for name in "${services[@]}"; do
    start_local "$name"
    started+=("$name")
done
for name in "${services[@]}"; do
    url="$(service_url "$name")/health"
    wait_http "$url" 200 "$START_TIMEOUT"
    log "$name healthy at $url"
done

start_local rrlb
started+=(rrlb)
wait_http "$ADMIN_URL/healthz" 200 30
wait_http "$ADMIN_URL/readyz" 200 30
trap - ERR

log "rrlb ready: proxy $RRLB_URL, admin $ADMIN_URL (state in $STATE_DIR)"
cat <<EOF
Try:
  curl -s -X POST -H 'content-type: application/json' -d '{"hello":"rrlb"}' -i $RRLB_URL/echo
  curl -s $ADMIN_URL/admin/metrics | jq .
  scripts/integration-test.sh
  scripts/local-down.sh
EOF
