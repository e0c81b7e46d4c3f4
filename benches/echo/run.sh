#!/usr/bin/env bash
# Measures the four echo services with wrk, one at a time, on 127.0.0.1 only, and prints the
# markdown table recorded in benches/README.md.
#
#   benches/echo/run.sh                  # all four: echo-rs echo-go echo-node echo-java
#   benches/echo/run.sh echo-rs echo-go  # a subset
#   DURATION=30s WARMUP=10s benches/echo/run.sh
#
# Each service is built (release build for echo-rs, `go build`, `mvn package`; node runs
# server.js directly), started with HOST=127.0.0.1 PORT=0 (the port is read from its startup
# line), warmed up, measured with `wrk -t2 -c32 -d10s --latency` and benches/echo/post.lua
# (a ~100-byte JSON POST), then stopped with SIGTERM. A service left running by an error or
# Ctrl-C is stopped by the exit trap. Needs: cargo, go, node, java + mvn, wrk.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
script="$root/benches/echo/post.lua"
duration=${DURATION:-10s}
warmup=${WARMUP:-5s}
threads=2
connections=32
work=$(mktemp -d)
pid=""

stop_service() {
  if [[ -n "$pid" ]]; then
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    pid=""
  fi
}

cleanup() {
  stop_service
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

die() {
  echo "run.sh: $*" >&2
  exit 1
}

need() {
  command -v "$1" >/dev/null 2>&1 || die "$1 is required"
}

# Builds one implementation and sets `command` to what starts it.
prepare() {
  case $1 in
    echo-rs)
      need cargo
      (cd "$root" && cargo build --release --quiet -p echo-rs --bin echo-rs) >&2
      command=("${CARGO_TARGET_DIR:-$root/target}/release/echo-rs")
      ;;
    echo-go)
      need go
      (cd "$root/echo-go" && go build -o "$work/echo-go" .) >&2
      command=("$work/echo-go")
      ;;
    echo-node)
      need node
      command=(node "$root/echo-node/server.js")
      ;;
    echo-java)
      need java
      need mvn
      (cd "$root/echo-java" && mvn -q -B -DskipTests package) >&2
      command=(java -jar "$root/echo-java/target/echo-java.jar")
      ;;
    *)
      die "unknown service $1 (expected echo-rs, echo-go, echo-node or echo-java)"
      ;;
  esac
}

# Starts a service on 127.0.0.1 with an ephemeral port; sets pid and port.
start_service() {
  local name=$1
  shift
  local out="$work/$name.out"
  (cd "$root/$name" &&
    exec env -u SERVICE_NAME -u ECHO_DELAY_MS -u ECHO_CHAOS HOST=127.0.0.1 PORT=0 "$@") \
    >"$out" 2>"$work/$name.err" &
  pid=$!
  port=""
  local attempt
  for attempt in $(seq 1 600); do
    port=$(sed -n 's/^.* listening on 127\.0\.0\.1:\([0-9][0-9]*\)$/\1/p' "$out")
    [[ -n "$port" ]] && return 0
    kill -0 "$pid" 2>/dev/null || die "$name exited before listening: $(cat "$work/$name.err")"
    sleep 0.1
  done
  die "$name printed no startup line after ${attempt} attempts"
}

measure() {
  local name=$1 url report
  prepare "$name"
  start_service "$name" "${command[@]}"
  url="http://127.0.0.1:$port/bench/echo"
  echo "run.sh: $name on 127.0.0.1:$port: warm-up $warmup, then $duration" >&2
  wrk -t"$threads" -c"$connections" -d"$warmup" -s "$script" "$url" >/dev/null
  report="$work/$name.wrk"
  wrk -t"$threads" -c"$connections" -d"$duration" --latency -s "$script" "$url" >"$report"
  stop_service
  cat "$report" >&2

  local rps p50 p99 notes=""
  rps=$(awk '/^Requests\/sec:/ { printf "%d", $2 }' "$report")
  p50=$(awk '/Latency Distribution/ { on = 1 } on && $1 == "50%" { print $2; exit }' "$report")
  p99=$(awk '/Latency Distribution/ { on = 1 } on && $1 == "99%" { print $2; exit }' "$report")
  if grep -q 'Non-2xx or 3xx responses' "$report"; then
    notes="$(grep 'Non-2xx or 3xx responses' "$report" | tr -s ' ')"
  fi
  if grep -q 'Socket errors' "$report"; then
    notes="$notes $(grep 'Socket errors' "$report" | tr -s ' ')"
  fi
  rows+=("| $name | $rps | $p50 | $p99 | ${notes:- } |")
}

need wrk
services=("$@")
if [[ ${#services[@]} -eq 0 ]]; then
  services=(echo-rs echo-go echo-node echo-java)
fi
rows=()
command=()
for service in "${services[@]}"; do
  measure "$service"
done

cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || true)
echo
echo "wrk -t$threads -c$connections -d$duration --latency, ~100-byte JSON POST, after a $warmup warm-up;"
echo "$(nproc) cores${cpu:+ ($cpu)}, $(date -u +%Y-%m-%d)."
echo
echo "| service | requests/s | p50 | p99 | notes |"
echo "| --- | ---: | ---: | ---: | --- |"
printf '%s\n' "${rows[@]}"
