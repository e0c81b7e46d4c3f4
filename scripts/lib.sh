# shellcheck shell=bash
# Shared helpers for the operations scripts. Source it; do not run it.
#
# Two stacks are supported, chosen by RRLB_STACK:
#   local    (default) rrlb and the echo services as processes on 127.0.0.1 (scripts/local-up.sh)
#   compose  the compose.yaml stack (docker compose up -d)
# Every address used here is on the loopback interface; require_loopback refuses anything else.

# --- locations and defaults -------------------------------------------------------------------
RRLB_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RRLB_STACK="${RRLB_STACK:-local}"
STATE_DIR="${RRLB_STATE_DIR:-$RRLB_ROOT/.tmp/local}"
CARGO_TARGET="${CARGO_TARGET_DIR:-$RRLB_ROOT/target}"

RRLB_PORT="${RRLB_PORT:-8080}"
ADMIN_PORT="${ADMIN_PORT:-9901}"
ECHO_GO_PORT="${ECHO_GO_PORT:-8081}"
ECHO_NODE_PORT="${ECHO_NODE_PORT:-8082}"
ECHO_JAVA_PORT="${ECHO_JAVA_PORT:-8083}"
ECHO_RS_PORT="${ECHO_RS_PORT:-8084}"
RRLB_URL="${RRLB_URL:-http://127.0.0.1:$RRLB_PORT}"
ADMIN_URL="${ADMIN_URL:-http://127.0.0.1:$ADMIN_PORT}"
# Same demo-only default as compose.yaml; set your own for anything but a local demo.
RRLB_ADMIN_TOKEN="${RRLB_ADMIN_TOKEN:-demo-only-insecure-token}"

ALL_SERVICES=(echo-go echo-node echo-java echo-rs)
SCRIPT_NAME="$(basename "$0")"

# --- messages ---------------------------------------------------------------------------------
log() { printf '%s: %s\n' "$SCRIPT_NAME" "$*" >&2; }
die() {
    printf '%s: error: %s\n' "$SCRIPT_NAME" "$*" >&2
    exit 1
}
need() {
    local tool
    for tool in "$@"; do
        command -v "$tool" >/dev/null 2>&1 || die "'$tool' is required but not installed (see scripts/install-deploy-tools.sh)"
    done
}

# --- services ---------------------------------------------------------------------------------
# service_name go|echo-go|... -> echo-go; dies on an unknown name.
service_name() {
    local s="${1:-}"
    case "$s" in
        go | echo-go) echo echo-go ;;
        node | echo-node) echo echo-node ;;
        java | echo-java) echo echo-java ;;
        rs | rust | echo-rs) echo echo-rs ;;
        rrlb) echo rrlb ;;
        *) die "unknown service '$s' (expected one of: ${ALL_SERVICES[*]}, rrlb)" ;;
    esac
}

service_port() {
    case "$1" in
        echo-go) echo "$ECHO_GO_PORT" ;;
        echo-node) echo "$ECHO_NODE_PORT" ;;
        echo-java) echo "$ECHO_JAVA_PORT" ;;
        echo-rs) echo "$ECHO_RS_PORT" ;;
        rrlb) echo "$RRLB_PORT" ;;
        *) die "no port for '$1'" ;;
    esac
}

# The echo services are published on 127.0.0.1 in compose.yaml too, with the same ports.
service_url() { echo "http://127.0.0.1:$(service_port "$1")"; }

# --- HTTP -------------------------------------------------------------------------------------
# require_loopback URL: refuse to send traffic anywhere but this machine.
require_loopback() {
    local url="$1" rest host
    rest="${url#*://}"
    rest="${rest%%/*}"
    if [[ "$rest" == \[* ]]; then
        host="${rest%%]*}]"
    else
        host="${rest%%:*}"
    fi
    case "$host" in
        127.* | localhost | "[::1]") return 0 ;;
        *) die "refusing to send traffic to '$url': only loopback addresses (127.0.0.0/8, localhost, [::1]) are allowed" ;;
    esac
}

# http_code URL: the status code of a GET (000 when nothing answers).
http_code() {
    curl -s -o /dev/null -w '%{http_code}' --max-time "${HTTP_TIMEOUT:-3}" "$1" 2>/dev/null || true
}

# wait_http URL EXPECTED_CODE TIMEOUT_SECONDS: poll until URL answers EXPECTED_CODE.
wait_http() {
    local url="$1" want="$2" timeout="$3" deadline code=""
    deadline=$((SECONDS + timeout))
    while ((SECONDS < deadline)); do
        code="$(http_code "$url")"
        [[ "$code" == "$want" ]] && return 0
        sleep 0.5
    done
    log "timed out after ${timeout}s waiting for $url to answer $want (last: ${code:-none})"
    return 1
}

# admin_get PATH: GET on the admin API (no token needed), body on stdout.
admin_get() {
    curl -sS --fail --max-time "${HTTP_TIMEOUT:-3}" "$ADMIN_URL$1"
}

# admin_call METHOD PATH [JSON]: a mutating admin call with the bearer token; prints the body,
# fails on a non-2xx answer.
admin_call() {
    local method="$1" path="$2" body="${3:-}"
    local args=(-sS --fail-with-body --max-time "${HTTP_TIMEOUT:-5}" -X "$method"
        -H "authorization: Bearer $RRLB_ADMIN_TOKEN")
    if [[ -n "$body" ]]; then
        args+=(-H 'content-type: application/json' --data "$body")
    fi
    curl "${args[@]}" "$ADMIN_URL$path"
}

# chaos SERVICE METHOD [JSON]: call the echo service's chaos route (needs ECHO_CHAOS=1).
chaos() {
    local svc="$1" method="$2" body="${3:-}" url
    url="$(service_url "$svc")/_chaos"
    require_loopback "$url"
    local args=(-sS --fail-with-body --max-time "${HTTP_TIMEOUT:-5}" -X "$method")
    if [[ -n "$body" ]]; then
        args+=(-H 'content-type: application/json' --data "$body")
    fi
    curl "${args[@]}" "$url" || die "chaos call to $url failed (is $svc running with ECHO_CHAOS=1?)"
    echo
}

# parse_ms 500ms|2s|1.5s|250 -> milliseconds (a bare number is milliseconds).
parse_ms() {
    local v="$1"
    case "$v" in
        off) echo 0 ;;
        *ms) [[ "${v%ms}" =~ ^[0-9]+$ ]] || return 1; echo "${v%ms}" ;;
        *s) [[ "${v%s}" =~ ^[0-9]+(\.[0-9]+)?$ ]] || return 1; awk -v s="${v%s}" 'BEGIN { printf "%d\n", s * 1000 }' ;;
        *) [[ "$v" =~ ^[0-9]+$ ]] || return 1; echo "$v" ;;
    esac
}

# backend_field NAME FIELD: a field of backend NAME in GET /admin/health ("" if absent).
backend_field() {
    admin_get /admin/health 2>/dev/null |
        jq -r --arg n "$1" --arg f "$2" '.backends[]? | select(.name == $n) | .[$f] | tostring' 2>/dev/null || true
}

# wait_backend_healthy NAME true|false TIMEOUT: poll /admin/health until the backend's "healthy"
# field has the wanted value.
wait_backend_healthy() {
    local name="$1" want="$2" timeout="$3" deadline got=""
    deadline=$((SECONDS + timeout))
    while ((SECONDS < deadline)); do
        got="$(backend_field "$name" healthy)"
        [[ "$got" == "$want" ]] && return 0
        sleep 0.5
    done
    log "timed out after ${timeout}s waiting for backend $name healthy=$want (last: ${got:-unknown})"
    return 1
}

# print_distribution BEFORE_JSON AFTER_JSON: a table of /admin/metrics deltas per backend.
print_distribution() {
    jq -r --slurpfile before "$1" '
        (($before[0].backends // []) | map({key: .name, value: .}) | from_entries) as $prev
        | [.backends[] | {name, healthy, circuit,
                          requests: (.requests - ($prev[.name].requests // 0)),
                          failures: (.failures - ($prev[.name].failures // 0)),
                          p99: (.latency_ms.p99 // 0)}] as $rows
        | ($rows | map(.requests) | add // 0) as $total
        | (["backend", "requests", "share", "failures", "p99_ms", "healthy", "circuit"] | @tsv),
          ($rows[] | [.name, .requests,
                      (if $total > 0 then ((.requests * 1000 / $total | floor) / 10 | tostring) + "%" else "-" end),
                      .failures, (.p99 * 10 | floor / 10), .healthy, .circuit] | @tsv),
          (["total", $total, "", "", "", "", ""] | @tsv)
    ' "$2" | column -t -s $'\t'
}

# --- docker compose ---------------------------------------------------------------------------
compose() {
    if docker compose version >/dev/null 2>&1; then
        docker compose -f "$RRLB_ROOT/compose.yaml" "$@"
    elif command -v docker-compose >/dev/null 2>&1; then
        docker-compose -f "$RRLB_ROOT/compose.yaml" "$@"
    else
        die "neither 'docker compose' nor 'docker-compose' is available"
    fi
}

compose_container() {
    local id
    id="$(compose ps -q "$1")"
    [[ -n "$id" ]] || die "no container for compose service '$1' (is the stack up?)"
    echo "$id"
}

# --- local processes --------------------------------------------------------------------------
pidfile() { echo "$STATE_DIR/$1.pid"; }

# local_pid NAME: the pid of a running local service, or nothing.
local_pid() {
    local f pid
    f="$(pidfile "$1")"
    [[ -f "$f" ]] || return 0
    pid="$(cat "$f")"
    if [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null; then
        echo "$pid"
    fi
}

# local_command NAME: prints the command (one word per line) that runs a local service.
local_command() {
    case "$1" in
        echo-go) echo "$STATE_DIR/bin/echo-go" ;;
        echo-node) printf '%s\n' node "$RRLB_ROOT/echo-node/server.js" ;;
        echo-java) printf '%s\n' java -Xmx256m -XX:+UseSerialGC -jar "$RRLB_ROOT/echo-java/target/echo-java.jar" ;;
        echo-rs) echo "$CARGO_TARGET/release/echo-rs" ;;
        rrlb) echo "$CARGO_TARGET/release/rrlb" ;;
        *) die "no local command for '$1'" ;;
    esac
}

# start_local NAME: start one service in its own process group (so that stopping it also stops
# anything it spawned), log to $STATE_DIR/NAME.log, record its pid.
start_local() {
    local name="$1" pid cmd=()
    mapfile -t cmd < <(local_command "$name")
    mkdir -p "$STATE_DIR"
    if [[ -n "$(local_pid "$name")" ]]; then
        log "$name is already running (pid $(local_pid "$name"))"
        return 0
    fi
    if [[ "$name" == rrlb ]]; then
        RRLB_CONFIG="$STATE_DIR/rrlb.toml" RRLB_ADMIN_TOKEN="$RRLB_ADMIN_TOKEN" RRLB_LOG="${RRLB_LOG:-info}" \
            setsid "${cmd[@]}" >>"$STATE_DIR/$name.log" 2>&1 </dev/null &
    else
        PORT="$(service_port "$name")" HOST=127.0.0.1 SERVICE_NAME="$name" ECHO_CHAOS=1 ECHO_DELAY_MS=0 \
            setsid "${cmd[@]}" >>"$STATE_DIR/$name.log" 2>&1 </dev/null &
    fi
    pid=$!
    echo "$pid" >"$(pidfile "$name")"
    log "started $name (pid $pid, log $STATE_DIR/$name.log)"
}

# stop_local NAME [SIGNAL] [GRACE_SECONDS]: signal the service's process group, then SIGKILL it
# after the grace period. SIGNAL KILL stops at once (a crash, for kill.sh).
stop_local() {
    local name="$1" sig="${2:-TERM}" grace="${3:-${STOP_GRACE_SECONDS:-10}}" pid deadline
    pid="$(local_pid "$name")"
    if [[ -z "$pid" ]]; then
        rm -f "$(pidfile "$name")"
        return 0
    fi
    kill "-$sig" -- "-$pid" 2>/dev/null || kill "-$sig" "$pid" 2>/dev/null || true
    deadline=$((SECONDS + grace))
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do
        sleep 0.2
    done
    if kill -0 "$pid" 2>/dev/null; then
        log "$name (pid $pid) still running after ${grace}s: SIGKILL"
        kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$(pidfile "$name")"
    log "stopped $name (pid $pid, SIG$sig)"
}

# port_busy PORT: true when something accepts connections on 127.0.0.1:PORT.
port_busy() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}
