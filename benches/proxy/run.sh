#!/usr/bin/env bash
# Proxy load benchmark: rrlb against NGINX and HAProxy over the same three backends, with a direct
# run as the baseline, measured with wrk in one interleaved run.
#
# Usage: benches/proxy/run.sh [-h]
#
# Targets, measured in turn in every round (direct rrlb nginx haproxy, direct rrlb nginx haproxy, ...):
#   direct   wrk -> one backend (the baseline)
#   rrlb     wrk -> rrlb (its defaults: round robin, health checks, log level info, access log
#            as LOG says) -> three backends
#   nginx    wrk -> nginx (foreground, worker_processes auto, reuseport, upstream round robin,
#            keepalive 64, HTTP/1.1 to the backends) -> the same three backends
#   haproxy  wrk -> haproxy (foreground -db, nbthread 2, mode http, balance roundrobin,
#            http-reuse always) -> the same three backends
#   rrlb-otel  rrlb as above, exporting spans: [tracing] otlp_endpoint = a local OTLP/HTTP sink
#            (benches/proxy/otlp_sink.py, answers 200 and counts), sample_ratio = 0.01
#
# Logging (LOG), the same for every proxy:
#   off      rrlb [access_log] enabled = false, nginx access_log off, haproxy no log
#   on       one access line per request to a file: rrlb's default access log (text) with
#            path = FILE, nginx's default access_log (combined) to a file, haproxy option httplog
#            to stdout redirected to a file
#
# TLS (TLS), the same for every proxy; the backends stay plain HTTP:
#   off        plain HTTP/1.1 to the proxies (as before)
#   keepalive  HTTPS on keep-alive connections: throughput and latency of HTTP/1.1 over TLS
#   handshake  HTTPS with `Connection: close`: a new connection and a full handshake per request
#              (wrk's session resumption is switched off through an LD_PRELOAD shim built with cc),
#              so req/s = full handshakes per second
#   resume     as handshake, but wrk resumes the session of its previous connection (its own
#              behaviour): req/s = resumed (PSK) handshakes per second
#   With TLS on, the script makes a throwaway CA and one ECDSA P-256 certificate for 127.0.0.1 and
#   localhost with openssl (in the temp dir, removed at exit, never kept in OUT_DIR), and every proxy
#   serves it with TLS 1.3 only, TLS_AES_256_GCM_SHA384, X25519, session tickets on, HTTP/1.1
#   (wrk sends no ALPN): rrlb [tls] cert/key; nginx listen ... ssl, ssl_protocols TLSv1.3,
#   ssl_ecdh_curve X25519, ssl_conf_command Ciphersuites; haproxy bind ... ssl crt, ssl-min-ver
#   TLSv1.3, curves X25519, ciphersuites, alpn http/1.1. Each proxy's negotiated parameters are
#   checked with openssl s_client before the runs and must be the same. `direct` stays plain HTTP
#   (left out of the default TARGETS; if asked for, it is marked as plain in the output).
#
# Backends (BACKEND):
#   echo-rs  the project's echo service (multi-threaded tokio, validates and routes)
#   hyper    echo-rs/examples/hyper_echo.rs: hyper on a current-thread runtime, echoes the body
#
# Environment (defaults in brackets):
#   ROUNDS=3          rounds; each round measures every target once
#   DURATION=10       seconds per measurement (wrk -d)
#   WARMUP=2          seconds of unrecorded load per target before the first round (0: none)
#   CONNECTIONS=64    wrk -c
#   THREADS=1         wrk -t
#   LOG=on            on or off (see above)
#   BACKEND=echo-rs   echo-rs or hyper (see above)
#   TLS=off           off, keepalive, handshake or resume (see above)
#   TARGETS="direct rrlb nginx haproxy"   which targets, in this order ("rrlb nginx haproxy"
#                     when TLS is on)
#   RRLB_LOG_LEVEL=info                   rrlb --log-level (its own events; the access log is LOG)
#   RRLB_ARGS=""      extra arguments for rrlb, split on spaces
#   BUILD=1           cargo build --release rrlb and echo-rs first (0: use the binaries as they are)
#   RRLB_BIN, ECHO_BIN   binaries to use [target/release/rrlb, target/release/echo-rs or
#                     target/release/examples/hyper_echo]
#   IDLE=0            N > 0: after the rounds, per proxy, the memory an idle keep-alive connection
#                     costs: the proxy's RSS, then N connections opened (over TLS when TLS is on, one
#                     POST answered on each) and held idle by benches/proxy/idle_conns.py, then its RSS
#                     again; NGINX worker_connections and HAProxy maxconn are raised to N + 4096
#   PERF_STAT=0       1: also count the proxy's system calls and context switches per request
#                     with `perf stat` (needs perf and the rights to use it; adds a little overhead)
#   OUT_DIR=""        if set, keep the raw results there: results.tsv, every wrk output, the
#                     generated configs and the processes' logs
#
# Every process binds 127.0.0.1 only, on ports picked at run time; the script starts all of them
# itself and always stops them when it exits (also on error or Ctrl-C). It never touches system
# services. Needs wrk, nginx, haproxy, curl, python3 (benches/proxy/install.sh installs them),
# cargo unless BUILD=0, and with TLS on openssl (and cc for TLS=handshake).
#
# Output: progress on stderr; on stdout the summary table (median req/s of the rounds with min-max,
# median p50 and p99, peak RSS of the proxy, ratio to direct), a CPU table (CPU time per request
# of wrk, the proxy and the backends, and how busy the rest of the machine was), rrlb's ratios to
# the better peer taken round by round (min / median / max: how far the host's drift moves one
# comparison) and every round.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)

usage() {
  sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//'
}

case ${1:-} in
  -h | --help)
    usage
    exit 0
    ;;
  "") ;;
  *)
    usage >&2
    exit 2
    ;;
esac

die() {
  echo "run.sh: $*" >&2
  exit 1
}

log() {
  echo "run.sh: $*" >&2
}

positive_int() {
  if ! [[ $2 =~ ^[0-9]+$ ]] || ((10#$2 < $3)); then
    die "$1 must be an integer >= $3 (got '$2')"
  fi
}

rounds=${ROUNDS:-3}
duration=${DURATION:-10}
duration=${duration%s}
warmup=${WARMUP:-2}
warmup=${warmup%s}
connections=${CONNECTIONS:-64}
threads=${THREADS:-1}
rrlb_log_level=${RRLB_LOG_LEVEL:-info}
log_mode=${LOG:-on}
backend_kind=${BACKEND:-echo-rs}
tls_mode=${TLS:-off}
case $log_mode in on | off) ;; *) die "LOG must be on or off (got '$log_mode')" ;; esac
case $backend_kind in echo-rs | hyper) ;; *) die "BACKEND must be echo-rs or hyper (got '$backend_kind')" ;; esac
case $tls_mode in off | keepalive | handshake | resume) ;; *) die "TLS must be off, keepalive, handshake or resume (got '$tls_mode')" ;; esac
read -r -a rrlb_extra <<<"${RRLB_ARGS:-}"
if [[ $tls_mode == off ]]; then
  read -r -a targets <<<"${TARGETS:-direct rrlb nginx haproxy}"
else
  read -r -a targets <<<"${TARGETS:-rrlb nginx haproxy}"
fi
positive_int ROUNDS "$rounds" 1
positive_int DURATION "$duration" 1
positive_int WARMUP "$warmup" 0
positive_int CONNECTIONS "$connections" 1
positive_int THREADS "$threads" 1
idle=${IDLE:-0}
positive_int IDLE "$idle" 0
# Room for the idle connections on top of the load's (the defaults otherwise).
conn_limit=$((idle > 0 ? idle + 4096 : 4096))
((connections >= threads)) || die "CONNECTIONS must be >= THREADS"
[[ ${#targets[@]} -gt 0 ]] || die "TARGETS is empty"
for t in "${targets[@]}"; do
  case $t in
    direct | rrlb | rrlb-otel | nginx | haproxy) ;;
    *) die "unknown target '$t' (expected direct, rrlb, rrlb-otel, nginx or haproxy)" ;;
  esac
done

wanted() {
  local t
  for t in "${targets[@]}"; do
    [[ $t == "$1" ]] && return 0
  done
  return 1
}

# Tools. nginx and haproxy live in /usr/sbin, which a non-root PATH may lack.
find_tool() {
  local p
  p=$(command -v "$1" 2>/dev/null) || p=""
  if [[ -z $p && -x /usr/sbin/$1 ]]; then
    p=/usr/sbin/$1
  fi
  [[ -n $p ]] || die "$1 is required (benches/proxy/install.sh installs it)"
  printf '%s\n' "$p"
}
wrk_bin=$(find_tool wrk)
curl_bin=$(find_tool curl)
python_bin=$(find_tool python3)
nginx_bin=""
haproxy_bin=""
if wanted nginx; then nginx_bin=$(find_tool nginx); fi
if wanted haproxy; then haproxy_bin=$(find_tool haproxy); fi
openssl_bin=""
cc_bin=""
if [[ $tls_mode != off ]]; then
  openssl_bin=$(find_tool openssl)
  if [[ $tls_mode == handshake ]]; then
    cc_bin=$(command -v cc 2>/dev/null || command -v gcc 2>/dev/null) ||
      die "TLS=handshake needs a C compiler (cc) for wrk's no-resumption shim"
  fi
fi

script="$here/post.lua"
body=$(sed -n "s/^wrk\.body = '\(.*\)'\$/\1/p" "$script")
[[ -n $body ]] || die "no wrk.body line in $script"
path=$(sed -n 's/^wrk\.path = "\(.*\)"$/\1/p' "$script")
[[ -n $path ]] || die "no wrk.path line in $script"

target_dir=${CARGO_TARGET_DIR:-$root/target}
rrlb_bin=${RRLB_BIN:-$target_dir/release/rrlb}
if [[ $backend_kind == hyper ]]; then
  echo_bin=${ECHO_BIN:-$target_dir/release/examples/hyper_echo}
else
  echo_bin=${ECHO_BIN:-$target_dir/release/echo-rs}
fi
if [[ ${BUILD:-1} != 0 ]]; then
  command -v cargo >/dev/null 2>&1 || die "cargo is required (or BUILD=0 with built binaries)"
  log "building rrlb, echo-rs and hyper_echo (release)"
  (cd "$root" && cargo build --release --quiet -p rrlb-bin -p echo-rs --bins --example hyper_echo) >&2
fi
[[ -x $rrlb_bin ]] || die "no rrlb binary at $rrlb_bin"
[[ -x $echo_bin ]] || die "no echo-rs binary at $echo_bin"

work=$(mktemp -d "${TMPDIR:-/tmp}/rrlb-proxy-bench.XXXXXX")
# nginx's workers run as an unprivileged user when started by root; let them reach their files.
chmod 755 "$work"

# Every process this script starts, in start order: pid and a name for the messages.
proc_pids=()
proc_names=()
sampler_pid=""
idle_pid=""
wrk_pid=""
perf_pid=""

stop_pid() {
  local pid=$1 i
  kill -TERM "$pid" 2>/dev/null || return 0
  for ((i = 0; i < 50; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

cleanup() {
  local rc=$? i
  trap - EXIT INT TERM
  for i in $wrk_pid $perf_pid $sampler_pid $idle_pid; do
    kill -TERM "$i" 2>/dev/null || true
    wait "$i" 2>/dev/null || true
  done
  for ((i = ${#proc_pids[@]} - 1; i >= 0; i--)); do
    stop_pid "${proc_pids[i]}"
  done
  # The throwaway keys are not kept (the certificates go with them: the configs name the paths).
  rm -rf "$work/tls"
  if [[ -n ${OUT_DIR:-} ]]; then
    mkdir -p "$OUT_DIR"
    cp -r "$work"/. "$OUT_DIR"/ 2>/dev/null || true
    log "raw results kept in $OUT_DIR"
  fi
  rm -rf "$work"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# A free TCP port on 127.0.0.1, asked of the OS (bind to port 0, read the port, close). The
# caller uses it at once; nginx and haproxy configs cannot say "port 0".
free_port() {
  "$python_bin" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# Starts a process in the background with its output in $work/NAME.log; sets `started_pid`.
start_proc() {
  local name=$1
  shift
  : >"$work/$name.log" # exists before the child opens it: readers poll it at once
  "$@" >"$work/$name.log" 2>&1 &
  started_pid=$!
  proc_pids+=("$started_pid")
  proc_names+=("$name")
}

# Waits until URL answers (any HTTP status) or the process dies; up to 15 s.
wait_http() {
  local name=$1 pid=$2 url=$3 i
  for ((i = 0; i < 150; i++)); do
    kill -0 "$pid" 2>/dev/null || die "$name exited at start: $(tail -n 20 "$work/$name.log")"
    if "$curl_bin" -s -o /dev/null --max-time 1 "${curl_tls[@]}" "$url"; then
      return 0
    fi
    sleep 0.1
  done
  die "$name did not answer on $url within 15 s: $(tail -n 20 "$work/$name.log")"
}

# --- TLS: one throwaway CA and server certificate for every proxy -----------------------------
# TLS 1.3 only, one cipher suite and one key exchange group, pinned in NGINX and HAProxy. rrlb has no
# such settings: it negotiates TLS 1.3, X25519 and the client's first suite (wrk's and s_client's
# OpenSSL default order puts TLS_AES_256_GCM_SHA384 first), which the s_client check below verifies.
tls_suite=TLS_AES_256_GCM_SHA384
tls_group=X25519
scheme=http
curl_tls=()
wrk_env=()
wrk_headers=()
tls_params=""
if [[ $tls_mode != off ]]; then
  scheme=https
  tls="$work/tls"
  mkdir -m 700 "$tls"
  {
    "$openssl_bin" genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$tls/ca.key"
    "$openssl_bin" req -x509 -new -key "$tls/ca.key" -sha256 -days 2 -subj "/CN=rrlb proxy bench throwaway CA" \
      -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" -out "$tls/ca.pem"
    "$openssl_bin" genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$tls/server.key"
    "$openssl_bin" req -new -key "$tls/server.key" -subj "/CN=localhost" -out "$tls/server.csr"
    printf '%s\n' "subjectAltName = DNS:localhost, IP:127.0.0.1" "basicConstraints = critical, CA:FALSE" \
      "keyUsage = critical, digitalSignature" "extendedKeyUsage = serverAuth" >"$tls/server.ext"
    "$openssl_bin" x509 -req -in "$tls/server.csr" -CA "$tls/ca.pem" -CAkey "$tls/ca.key" -set_serial 1 \
      -days 2 -sha256 -extfile "$tls/server.ext" -out "$tls/server.pem"
  } >"$work/openssl.log" 2>&1 || die "openssl could not make the certificates: $(cat "$work/openssl.log")"
  rm -f "$tls/ca.key" "$tls/server.csr"
  # HAProxy wants the certificate and its key in one file.
  cat "$tls/server.pem" "$tls/server.key" >"$tls/server-with-key.pem"
  chmod 600 "$tls/server.key" "$tls/server-with-key.pem"
  curl_tls=(--cacert "$tls/ca.pem" --http1.1)
  if [[ $tls_mode != keepalive ]]; then
    wrk_headers=(-H "Connection: close")
  fi
  if [[ $tls_mode == handshake ]]; then
    # wrk reuses one SSL object per connection slot: after SSL_shutdown, SSL_clear keeps the session and
    # the next SSL_connect resumes it (a TLS 1.3 PSK handshake). Dropping the session before each
    # SSL_clear makes every new connection a full handshake.
    cat >"$work/wrk-noresume.c" <<'EOF'
#define _GNU_SOURCE
#include <dlfcn.h>
typedef struct ssl_st SSL;
typedef struct ssl_session_st SSL_SESSION;
int SSL_set_session(SSL *s, SSL_SESSION *session);
int SSL_clear(SSL *s) {
  static int (*real)(SSL *);
  if (!real) real = (int (*)(SSL *))dlsym(RTLD_NEXT, "SSL_clear");
  SSL_set_session(s, 0);
  return real(s);
}
EOF
    "$cc_bin" -shared -fPIC -O2 -o "$work/wrk-noresume.so" "$work/wrk-noresume.c" >"$work/cc.log" 2>&1 ||
      die "could not build wrk's no-resumption shim: $(cat "$work/cc.log")"
    wrk_env=("LD_PRELOAD=$work/wrk-noresume.so")
  fi
  log "TLS=$tls_mode: a throwaway CA and an ECDSA P-256 certificate for 127.0.0.1 and localhost in $tls"
fi

# --- backends -------------------------------------------------------------------------------
backend_ports=()
backend_pids=()
for i in 1 2 3; do
  name=echo-$i
  start_proc "$name" env -u ECHO_DELAY_MS -u ECHO_CHAOS \
    HOST=127.0.0.1 PORT=0 SERVICE_NAME="$name" "$echo_bin"
  pid=$started_pid
  port=""
  for ((attempt = 0; attempt < 150; attempt++)); do
    port=$(sed -n 's/^.* listening on 127\.0\.0\.1:\([0-9][0-9]*\)$/\1/p' "$work/$name.log")
    [[ -n $port ]] && break
    kill -0 "$pid" 2>/dev/null || die "$name exited at start: $(cat "$work/$name.log")"
    sleep 0.1
  done
  [[ -n $port ]] || die "$name printed no 'listening on' line within 15 s"
  backend_ports+=("$port")
  backend_pids+=("$pid")
  log "$name on 127.0.0.1:$port (pid $pid)"
done

declare -A url proxy_pids
url[direct]="http://127.0.0.1:${backend_ports[0]}$path"
proxy_pids[direct]=""

# --- rrlb -----------------------------------------------------------------------------------
# start_rrlb NAME [TOML...]: rrlb over the backends as target NAME, with extra config lines.
start_rrlb() {
  local name=$1 rrlb_args=() rrlb_unset=() p port admin v i
  shift
  for p in "${backend_ports[@]}"; do
    rrlb_args+=(-b "http://127.0.0.1:$p")
  done
  # Flags beat RRLB_* variables, but unset them anyway so that nothing else leaks in.
  while IFS= read -r v; do
    rrlb_unset+=(-u "$v")
  done < <(compgen -e | grep '^RRLB_' || true)
  port=$(free_port)
  admin=$(free_port)
  {
    echo "[access_log]"
    if [[ $log_mode == on ]]; then
      echo "path = \"$work/$name-access.log\""
    else
      echo "enabled = false"
    fi
    if [[ $tls_mode != off ]]; then
      echo "[tls]"
      echo "cert = \"$tls/server.pem\""
      echo "key = \"$tls/server.key\""
    fi
    printf '%s\n' "$@"
  } >"$work/$name.toml"
  start_proc "$name" env "${rrlb_unset[@]}" "$rrlb_bin" --config "$work/$name.toml" \
    --listen "127.0.0.1:$port" --admin-listen "127.0.0.1:$admin" \
    --log-level "$rrlb_log_level" "${rrlb_args[@]}" "${rrlb_extra[@]}"
  wait_http "$name" "$started_pid" "http://127.0.0.1:$admin/healthz"
  # Ready once the health checker has found an eligible backend.
  for ((i = 0; i < 150; i++)); do
    "$curl_bin" -sf -o /dev/null --max-time 1 "http://127.0.0.1:$admin/readyz" && break
    sleep 0.1
  done
  url[$name]="$scheme://127.0.0.1:$port$path"
  proxy_pids[$name]=$started_pid
  admin_ports[$name]=$admin
  log "$name on 127.0.0.1:$port, admin 127.0.0.1:$admin (pid $started_pid)"
}
declare -A admin_ports
if wanted rrlb; then
  start_rrlb rrlb
fi
if wanted rrlb-otel; then
  sink_port=$(free_port)
  start_proc otlp-sink "${PYTHON:-python3}" "$here/otlp_sink.py" "$sink_port" "$work/otlp-sink.count"
  wait_http otlp-sink "$started_pid" "http://127.0.0.1:$sink_port/"
  start_rrlb rrlb-otel "[tracing]" "otlp_endpoint = \"http://127.0.0.1:$sink_port\"" "sample_ratio = 0.01"
fi

# --- nginx ----------------------------------------------------------------------------------
if wanted nginx; then
  nd="$work/nginx"
  mkdir -p "$nd"
  chmod 755 "$nd"
  port=$(free_port)
  {
    echo "daemon off;"
    echo "worker_processes auto;"
    echo "pid $nd/nginx.pid;"
    echo "error_log $nd/error.log warn;"
    echo "events { worker_connections $conn_limit; }"
    echo "http {"
    if [[ $log_mode == on ]]; then
      echo "  access_log $nd/access.log;"
    else
      echo "  access_log off;"
    fi
    echo "  client_body_temp_path $nd/client_body;"
    echo "  proxy_temp_path $nd/proxy;"
    echo "  fastcgi_temp_path $nd/fastcgi;"
    echo "  uwsgi_temp_path $nd/uwsgi;"
    echo "  scgi_temp_path $nd/scgi;"
    echo "  upstream echo {"
    for p in "${backend_ports[@]}"; do
      echo "    server 127.0.0.1:$p;"
    done
    echo "    keepalive 64;"
    echo "  }"
    echo "  server {"
    if [[ $tls_mode != off ]]; then
      # No http2 on the listener: every proxy speaks HTTP/1.1 over TLS.
      echo "    listen 127.0.0.1:$port ssl reuseport;"
      echo "    ssl_certificate $tls/server.pem;"
      echo "    ssl_certificate_key $tls/server.key;"
      echo "    ssl_protocols TLSv1.3;"
      echo "    ssl_conf_command Ciphersuites $tls_suite;"
      echo "    ssl_ecdh_curve $tls_group;"
      echo "    ssl_session_tickets on;"
    else
      echo "    listen 127.0.0.1:$port reuseport;"
    fi
    echo "    location / {"
    echo "      proxy_pass http://echo;"
    echo "      proxy_http_version 1.1;"
    echo "      proxy_set_header Connection \"\";"
    echo "    }"
    echo "  }"
    echo "}"
  } >"$nd/nginx.conf"
  "$nginx_bin" -t -q -e "$nd/error.log" -p "$nd" -c "$nd/nginx.conf" >&2 ||
    die "nginx refused its config: $(cat "$nd/error.log" 2>/dev/null)"
  start_proc nginx "$nginx_bin" -e "$nd/error.log" -p "$nd" -c "$nd/nginx.conf"
  nginx_pid=$started_pid
  wait_http nginx "$nginx_pid" "$scheme://127.0.0.1:$port/"
  url[nginx]="$scheme://127.0.0.1:$port$path"
  log "nginx on 127.0.0.1:$port (master pid $nginx_pid)"
fi

# --- haproxy --------------------------------------------------------------------------------
if wanted haproxy; then
  hd="$work/haproxy"
  mkdir -p "$hd"
  port=$(free_port)
  {
    echo "global"
    echo "  nbthread 2"
    echo "  maxconn $conn_limit"
    if [[ $log_mode == on ]]; then
      echo "  log stdout format raw local0"
    fi
    echo "defaults"
    echo "  mode http"
    if [[ $log_mode == on ]]; then
      echo "  log global"
      echo "  option httplog"
    fi
    echo "  timeout connect 5s"
    echo "  timeout client 30s"
    echo "  timeout server 30s"
    echo "  timeout http-request 10s"
    echo "  timeout http-keep-alive 30s"
    echo "  http-reuse always"
    echo "frontend bench"
    if [[ $tls_mode != off ]]; then
      echo "  bind 127.0.0.1:$port ssl crt $tls/server-with-key.pem ssl-min-ver TLSv1.3 ciphersuites $tls_suite curves $tls_group alpn http/1.1"
    else
      echo "  bind 127.0.0.1:$port"
    fi
    echo "  default_backend echo"
    echo "backend echo"
    echo "  balance roundrobin"
    i=0
    for p in "${backend_ports[@]}"; do
      i=$((i + 1))
      echo "  server echo-$i 127.0.0.1:$p"
    done
  } >"$hd/haproxy.cfg"
  "$haproxy_bin" -c -q -f "$hd/haproxy.cfg" >&2 || die "haproxy refused its config"
  start_proc haproxy "$haproxy_bin" -f "$hd/haproxy.cfg" -db
  haproxy_pid=$started_pid
  wait_http haproxy "$haproxy_pid" "$scheme://127.0.0.1:$port/"
  url[haproxy]="$scheme://127.0.0.1:$port$path"
  proxy_pids[haproxy]=$haproxy_pid
  log "haproxy on 127.0.0.1:$port (pid $haproxy_pid)"
fi

# nginx's pids: the master and its workers (found after start, they do not change).
if wanted nginx; then
  proxy_pids[nginx]="$nginx_pid $(pgrep -P "$nginx_pid" | tr '\n' ' ')"
fi

# --- checks: every target answers 200 with the body echoed; proxies spread over all three ------
for t in "${targets[@]}"; do
  code=$("$curl_bin" -s -o "$work/check.body" -w '%{http_code}' --max-time 5 "${curl_tls[@]}" \
    -H 'content-type: application/json' --data-binary "$body" "${url[$t]}") || code=000
  [[ $code == 200 ]] || die "$t answered $code to the benchmark POST (${url[$t]}): $(head -c 300 "$work/check.body")"
  [[ $(<"$work/check.body") == "$body" ]] || die "$t did not echo the body: $(head -c 300 "$work/check.body")"
  if [[ $t != direct ]]; then
    seen=$(for ((i = 0; i < 6; i++)); do
      "$curl_bin" -s -D - -o /dev/null --max-time 5 "${curl_tls[@]}" -H 'content-type: application/json' \
        --data-binary "$body" "${url[$t]}" | tr -d '\r' | sed -n 's/^x-echo-service: //Ip'
    done | sort -u | paste -sd ' ' -)
    [[ $(wc -w <<<"$seen") -eq 3 ]] || die "$t did not spread 6 requests over the 3 backends (saw: $seen)"
  fi
  log "check: $t answers 200 and echoes the body${seen:+ (backends: $seen)}"
  seen=""
done

# --- checks with TLS: every proxy negotiates the same parameters with OpenSSL's default client ----
if [[ $tls_mode != off ]]; then
  for t in "${targets[@]}"; do
    [[ ${url[$t]} == https://* ]] || continue
    hostport=${url[$t]#https://}
    hostport=${hostport%%/*}
    "$openssl_bin" s_client -connect "$hostport" -CAfile "$tls/ca.pem" </dev/null >"$work/s_client-$t.txt" 2>&1 || true
    got=$(awk '
      /^New, / { sub(/,$/, "", $2); proto = $2; cipher = $NF }
      /^Server Temp Key:/ { group = $4; sub(/,$/, "", group) }
      /^Peer signature type:/ { sig = $4 }
      /^Server public key is/ { bits = $5 }
      /^Verify return code:/ { verify = $4 }
      END { printf "%s %s %s %s-%s verify=%s", proto, cipher, group, sig, bits, verify }' "$work/s_client-$t.txt")
    want="TLSv1.3 $tls_suite $tls_group ECDSA-256 verify=0"
    [[ $got == "$want" ]] || die "$t negotiated '$got', expected '$want': see $work/s_client-$t.txt"
    log "check: $t serves $got"
    tls_params=$want
    if [[ $tls_mode == resume ]]; then
      # A session saved after a second of reading (the tickets come after the handshake), then offered.
      sleep 1 | "$openssl_bin" s_client -connect "$hostport" -CAfile "$tls/ca.pem" \
        -sess_out "$tls/session-$t.pem" >/dev/null 2>&1 || true
      "$openssl_bin" s_client -connect "$hostport" -CAfile "$tls/ca.pem" -sess_in "$tls/session-$t.pem" \
        </dev/null 2>&1 | grep -q '^Reused, TLSv1.3' || die "$t did not resume a TLS 1.3 session offered by openssl s_client"
      log "check: $t resumes TLS 1.3 sessions"
    fi
  done
fi

# --- measurement helpers ----------------------------------------------------------------------
# User and system CPU time in clock ticks ("USER SYS"), summed over the pids (threads included).
cpu_ticks() {
  local user=0 sys=0 pid line rest
  local -a f
  for pid in "$@"; do
    line=""
    read -r line 2>/dev/null <"/proc/$pid/stat" || continue
    rest=${line##*) }
    read -r -a f <<<"$rest"
    user=$((user + f[11]))
    sys=$((sys + f[12]))
  done
  echo "$user $sys"
}

# Busy and total ticks of the whole machine (all cores), from /proc/stat.
machine_ticks() {
  local cpu user nice system idle iowait irq softirq steal _
  read -r cpu user nice system idle iowait irq softirq steal _ </proc/stat
  echo "$((user + nice + system + irq + softirq + steal)) $((user + nice + system + idle + iowait + irq + softirq + steal))"
}

# Children's CPU time of this shell in milliseconds, from the `times` builtin (second line).
children_ms() {
  local line u s
  line=$(sed -n 2p "$1")
  u=${line%% *}
  s=${line##* }
  awk -v u="$u" -v s="$s" 'function ms(x, m, sec) {
      m = x; sub(/m.*/, "", m); sec = x; sub(/^[0-9]+m/, "", sec); sub(/s$/, "", sec)
      return m * 60000 + sec * 1000
    }
    BEGIN { printf "%d\n", ms(u) + ms(s) }'
}

# The summed VmRSS (KiB) of the pids, into rss_sum (no subshell: the sampler calls it every 100 ms).
rss_kib() {
  local pid key val
  rss_sum=0
  for pid in "$@"; do
    while read -r key val _; do
      if [[ $key == VmRSS: ]]; then
        rss_sum=$((rss_sum + val))
        break
      fi
    done 2>/dev/null <"/proc/$pid/status" || true
  done
}

# Background sampler: the peak of the summed VmRSS (KiB) of the pids, every 100 ms; written to
# FILE when the sampler is stopped with TERM.
sample_rss() {
  local out=$1
  shift
  peak=0
  trap 'echo "$peak" >"$out"; exit 0' TERM
  while :; do
    rss_kib "$@"
    if ((rss_sum > peak)); then
      peak=$rss_sum
    fi
    sleep 0.1
  done
}

clk_tck=$(getconf CLK_TCK)
perf_bin=""
if [[ ${PERF_STAT:-0} != 0 ]]; then
  perf_bin=$(command -v perf 2>/dev/null) || die "PERF_STAT=1 needs perf (apt-get install linux-perf)"
fi
results="$work/results.tsv"
printf 'round\ttarget\trequests\tduration_s\trps\tp50_us\tp90_us\tp99_us\tmax_us\terrors\tpeak_rss_kib\twrk_cpu_ms\tproxy_cpu_ms\tbackends_cpu_ms\tmachine_busy_ms\tmachine_total_ms\tproxy_sys_ms\tproxy_syscalls\tproxy_context_switches\n' >"$results"

# One wrk run against target T; appends a row to results.tsv (round R), or only warms up.
measure() {
  local r=$1 t=$2 secs=$3 out="$work/wrk-$2-round$1.txt"
  local -a ppids
  read -r -a ppids <<<"${proxy_pids[$t]}"
  local p0 b0 m0 p1 b1 m1 wrk_ms rss="" perf_out="$work/perf-$2-round$1.csv"
  if [[ -n $perf_bin && $r != warmup ]] && ((${#ppids[@]} > 0)); then
    # Counts the proxy's system calls and context switches during the run.
    "$perf_bin" stat -x, -o "$perf_out" -e raw_syscalls:sys_enter,context-switches \
      -p "$(tr ' ' ',' <<<"${ppids[*]}")" 2>/dev/null &
    perf_pid=$!
    sleep 0.2
  fi
  p0=$(cpu_ticks "${ppids[@]}")
  b0=$(cpu_ticks "${backend_pids[@]}")
  m0=$(machine_ticks)
  if ((${#ppids[@]} > 0)); then
    rm -f "$work/rss"
    sample_rss "$work/rss" "${ppids[@]}" &
    sampler_pid=$!
  fi
  times >"$work/times.0"
  # In the background, so that a TERM reaches the trap at once (the trap stops wrk too).
  env "${wrk_env[@]}" "$wrk_bin" -t"$threads" -c"$connections" -d"${secs}s" --timeout 5s --latency \
    "${wrk_headers[@]}" -s "$script" "${url[$t]}" >"$out" 2>&1 &
  wrk_pid=$!
  wait "$wrk_pid" || die "wrk failed against $t: $(cat "$out")"
  wrk_pid=""
  times >"$work/times.1"
  p1=$(cpu_ticks "${ppids[@]}")
  b1=$(cpu_ticks "${backend_pids[@]}")
  m1=$(machine_ticks)
  if [[ -n $perf_pid ]]; then
    kill -INT "$perf_pid" 2>/dev/null || true
    wait "$perf_pid" 2>/dev/null || true
  fi
  local perf_ran=$perf_pid
  perf_pid=""
  if [[ -n $sampler_pid ]]; then
    kill -TERM "$sampler_pid" 2>/dev/null || true
    wait "$sampler_pid" 2>/dev/null || true
    sampler_pid=""
    if [[ -s $work/rss ]]; then
      rss=$(<"$work/rss")
    fi
  fi
  [[ $r == warmup ]] && return 0
  wrk_ms=$(($(children_ms "$work/times.1") - $(children_ms "$work/times.0")))
  local line syscalls=- switches=-
  line=$(grep '^RESULT ' "$out") || die "no RESULT line from wrk against $t: $(cat "$out")"
  if [[ -n $perf_ran && -s $perf_out ]]; then
    syscalls=$(awk -F, '$3 ~ /sys_enter/ { print $1 }' "$perf_out")
    switches=$(awk -F, '$3 ~ /context-switches/ { print $1 }' "$perf_out")
  fi
  awk -v r="$r" -v t="$t" -v rss="${rss:--}" -v wrk="$wrk_ms" -v hz="$clk_tck" \
    -v p0="$p0" -v p1="$p1" -v b0="$b0" -v b1="$b1" -v m0="$m0" -v m1="$m1" \
    -v sc="${syscalls:--}" -v cs="${switches:--}" '{
      for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
      split(m0, a, " "); split(m1, z, " ")
      split(p0, pa, " "); split(p1, pz, " "); split(b0, ba, " "); split(b1, bz, " ")
      p = pz[1] + pz[2] - pa[1] - pa[2]; psys = pz[2] - pa[2]; b = bz[1] + bz[2] - ba[1] - ba[2]
      if (sc !~ /^[0-9]+$/) sc = "-"
      if (cs !~ /^[0-9]+$/) cs = "-"
      err = v["err_connect"] + v["err_read"] + v["err_write"] + v["err_status"] + v["err_timeout"]
      printf "%s\t%s\t%d\t%.2f\t%.1f\t%d\t%d\t%d\t%d\t%d\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%s\t%s\n", r, t,
        v["requests"], v["duration_us"] / 1e6, v["rps"], v["p50_us"], v["p90_us"], v["p99_us"],
        v["max_us"], err, rss, wrk, p * 1000 / hz, b * 1000 / hz,
        (z[1] - a[1]) * 1000 / hz, (z[2] - a[2]) * 1000 / hz, psys * 1000 / hz, sc, cs
    }' <<<"$line" >>"$results"
  local errors
  errors=$(tail -n 1 "$results" | cut -f 10)
  if ((errors > 0)); then
    log "warning: $t round $r had $errors errors (non-2xx, socket errors or timeouts): see below"
    grep -E 'Non-2xx|Socket errors' "$out" >&2 || true
  fi
  log "$(tail -n 1 "$results" | awk -F'\t' '{ printf "round %s %-7s %9.0f req/s  p50 %.2f ms  p99 %.2f ms  errors %d", $1, $2, $5, $6 / 1000, $8 / 1000, $10 }')"
}

# --- run ----------------------------------------------------------------------------------------
log "wrk -t$threads -c$connections, ${duration}s per run, $rounds round(s) of: ${targets[*]}"
if ((warmup > 0)); then
  for t in "${targets[@]}"; do
    log "warm-up: $t for ${warmup}s"
    measure warmup "$t" "$warmup"
  done
fi
for ((r = 1; r <= rounds; r++)); do
  for t in "${targets[@]}"; do
    measure "$r" "$t" "$duration"
  done
done

# --- idle connections: what holding one costs each proxy in memory ----------------------------------
idle_results="$work/idle.tsv"
if ((idle > 0)); then
  printf '%s' "$body" >"$work/idle-body.json"
  for t in "${targets[@]}"; do
    [[ $t == direct ]] && continue
    read -r -a ppids <<<"${proxy_pids[$t]}"
    rss_kib "${ppids[@]}"
    before=$rss_sum
    log "idle: $idle connections to $t (RSS before: $before KiB)"
    # The holder keeps its connections until its stdin closes: a FIFO this shell holds open.
    mkfifo "$work/idle-hold"
    "$python_bin" "$here/idle_conns.py" "${url[$t]}" "$idle" "$work/idle-body.json" \
      <"$work/idle-hold" >"$work/idle-$t.out" 2>&1 &
    idle_pid=$!
    exec {hold}>"$work/idle-hold"
    for ((i = 0; i < 600; i++)); do
      grep -q '^ready' "$work/idle-$t.out" 2>/dev/null && break
      kill -0 "$idle_pid" 2>/dev/null || break
      sleep 0.1
    done
    grep -q '^ready' "$work/idle-$t.out" || die "idle connections to $t failed: $(cat "$work/idle-$t.out")"
    # Let the proxy finish what the last answers started (buffers returned, tickets sent).
    sleep 1
    rss_kib "${ppids[@]}"
    with=$rss_sum
    exec {hold}>&-
    wait "$idle_pid" || die "the idle-connection holder failed against $t: $(cat "$work/idle-$t.out")"
    idle_pid=""
    rm -f "$work/idle-hold"
    printf '%s\t%s\t%s\n' "$t" "$before" "$with" >>"$idle_results"
    log "idle: $t RSS $before KiB -> $with KiB with $idle idle connections"
  done
fi

# Something the proxies complained about (nginx's error log, haproxy's and rrlb's output).
for f in "$work/nginx/error.log" "$work/haproxy.log" "$work/rrlb.log"; do
  if [[ -s $f ]] && grep -qiE 'crit|alert|emerg|error|warn' "$f"; then
    log "note: $(basename "$(dirname "$f")")/$(basename "$f") has warnings or errors:"
    grep -iE 'crit|alert|emerg|error|warn' "$f" | tail -n 5 >&2
  fi
done

# --- report -------------------------------------------------------------------------------------
cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || true)
echo
tls_title=""
unit="req/s"
case $tls_mode in
  keepalive) tls_title=", HTTPS (TLS 1.3) on keep-alive connections" ;;
  handshake)
    tls_title=", HTTPS (TLS 1.3) with a full handshake per request"
    unit="handshakes/s"
    ;;
  resume)
    tls_title=", HTTPS (TLS 1.3) with a resumed handshake per request"
    unit="handshakes/s"
    ;;
esac
echo "## Proxy benchmark: wrk -t$threads -c$connections, ${duration}s x $rounds round(s), ~100-byte JSON POST, access logs $log_mode, $backend_kind backends$tls_title"
echo
if [[ $tls_mode != off ]]; then
  case $tls_mode in
    keepalive) how="keep-alive connections (a new connection, with a resumed handshake, only when a proxy closes one)" ;;
    handshake) how="\`Connection: close\`: a new connection and a full handshake (no resumption: wrk's session is dropped before each reconnect) per request, so $unit = req/s" ;;
    resume) how="\`Connection: close\`: a new connection per request, resuming the previous connection's session (TLS 1.3 PSK with X25519), so $unit = req/s" ;;
  esac
  echo "TLS=$tls_mode: every proxy serves the same ECDSA P-256 certificate (from a throwaway CA), TLS 1.3 only, session tickets on, HTTP/1.1 (wrk sends no ALPN); each negotiated \`${tls_params% verify=0}\` with openssl s_client before the runs. wrk used $how."
  if wanted direct; then
    echo "\`direct\` is plain HTTP to one backend (the backends speak no TLS): its row and the \"vs direct\" column compare TLS through a proxy with plaintext without one."
  fi
  echo
fi
echo "$(nproc) cores${cpu:+ ($cpu)}, load average before the report: $(cut -d' ' -f1-3 /proc/loadavg); $(date -u '+%Y-%m-%d %H:%M UTC')."
versions="$("$rrlb_bin" --version 2>/dev/null | head -n 1 || echo 'rrlb ?') (log level $rrlb_log_level${RRLB_ARGS:+, args: $RRLB_ARGS})"
if [[ -n $nginx_bin ]]; then
  versions+=", $("$nginx_bin" -v 2>&1 | sed 's/^nginx version: //' || true)"
fi
if [[ -n $haproxy_bin ]]; then
  versions+=", HAProxy $("$haproxy_bin" -v | head -n 1 | cut -d' ' -f3 || true)"
fi
echo "$versions; three $backend_kind backends on the same machine; $("$wrk_bin" -v 2>&1 | head -n 1 | cut -d' ' -f1-2 || true)."
if [[ $log_mode == on ]]; then
  logged=""
  for f in "$work/rrlb-access.log:rrlb" "$work/rrlb-otel-access.log:rrlb-otel" "$work/nginx/access.log:nginx" "$work/haproxy.log:haproxy"; do
    if [[ -s ${f%:*} ]]; then
      logged+="${logged:+, }${f##*:} $(wc -l <"${f%:*}")"
    fi
  done
  dropped=""
  for t in "${!admin_ports[@]}"; do
    n=$("$curl_bin" -s --max-time 2 "http://127.0.0.1:${admin_ports[$t]}/metrics" |
      sed -n 's/^rrlb_access_log_dropped_total \([0-9]*\).*/\1/p')
    dropped+="${dropped:+, }$t ${n:-?}"
  done
  echo "Access log lines written: ${logged:-none}${dropped:+; dropped: $dropped}."
fi
if [[ -s $work/otlp-sink.count ]]; then
  echo "OTLP sink (rrlb-otel's span export): $(<"$work/otlp-sink.count")."
fi
echo
awk -F'\t' -v order="${targets[*]}" -v ncpu="$(nproc)" -v unit="$unit" '
  function median(list,   n, x, i, j, tmp) {
    n = split(list, x, " ")
    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (x[j] + 0 < x[i] + 0) { tmp = x[i]; x[i] = x[j]; x[j] = tmp }
    return n % 2 ? x[(n + 1) / 2] : (x[n / 2] + x[n / 2 + 1]) / 2
  }
  function commas(n,   s, out, len) {
    s = sprintf("%.0f", n); out = ""
    while ((len = length(s)) > 3) { out = "," substr(s, len - 2) out; s = substr(s, 1, len - 3) }
    return s out
  }
  NR == 1 { next }
  {
    t = $2
    rps[t] = rps[t] " " $5; p50[t] = p50[t] " " $6; p99[t] = p99[t] " " $8
    if (!(t in lo) || $5 < lo[t]) lo[t] = $5
    if (!(t in hi) || $5 > hi[t]) hi[t] = $5
    if ($11 != "-" && $11 + 0 > rss[t] + 0) rss[t] = $11
    err[t] += $10; req[t] += $3
    wrk[t] += $12; prx[t] += $13; bck[t] += $14; busy[t] += $15; tot[t] += $16; psys[t] += $17
    if ($18 != "-") { sc[t] += $18; screq[t] += $3 }
    if ($19 != "-") { cs[t] += $19; csreq[t] += $3 }
  }
  END {
    n = split(order, ts, " ")
    base = ("direct" in lo) ? median(rps["direct"]) : 0
    print "| target | " unit " (median) | " unit " (min–max) | p50 | p99 | peak RSS of the proxy | vs direct | errors |"
    print "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    for (i = 1; i <= n; i++) {
      t = ts[i]; m = median(rps[t])
      # (mawk reads a bare ">" in a print list as a redirection: compute the cells first.)
      mem = "—"; if (t in rss) mem = sprintf("%.1f MiB", rss[t] / 1024)
      ratio = "—"; if (base > 0) ratio = sprintf("%.2f×", m / base)
      printf "| %s | %s | %s–%s | %.2f ms | %.2f ms | %s | %s | %d |\n", t, commas(m), commas(lo[t]), commas(hi[t]),
        median(p50[t]) / 1000, median(p99[t]) / 1000, mem, ratio, err[t]
    }
    print ""
    print "CPU time per request, all rounds together (µs; wrk, the proxy and the backends share the same cores),"
    print "and how busy the rest of the machine was (cores in use by other processes during the runs):"
    print ""
    head = "| target | wrk µs/req | proxy µs/req | proxy in kernel | backends µs/req | total µs/req | other load (cores) |"
    rule = "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"
    perf = 0
    for (t in screq) perf = 1
    if (perf) {
      head = head " proxy syscalls/req | proxy context switches/req |"
      rule = rule " ---: | ---: |"
    }
    print head
    print rule
    for (i = 1; i <= n; i++) {
      t = ts[i]; r = req[t] > 0 ? req[t] : 1
      ours = wrk[t] + prx[t] + bck[t]
      # machine ticks cover all cores: busy ms minus ours, divided by the wall time of the runs.
      cores = 0; if (tot[t] > 0) cores = (busy[t] - ours) / (tot[t] / ncpu)
      if (cores < 0) cores = 0
      pcell = "—"; kcell = "—"
      if (t != "direct") pcell = sprintf("%.1f", prx[t] * 1000 / r)
      if (t != "direct" && prx[t] > 0) kcell = sprintf("%.0f%%", 100 * psys[t] / prx[t])
      line = sprintf("| %s | %.1f | %s | %s | %.1f | %.1f | %.2f |", t, wrk[t] * 1000 / r, pcell, kcell,
        bck[t] * 1000 / r, ours * 1000 / r, cores)
      if (perf) {
        a = "—"; c = "—"
        if (screq[t] > 0) a = sprintf("%.2f", sc[t] / screq[t])
        if (csreq[t] > 0) c = sprintf("%.2f", cs[t] / csreq[t])
        line = line sprintf(" %s | %s |", a, c)
      }
      print line
    }
  }' "$results"
# rrlb against the peers round by round: a round's targets run within a minute of each other, so the per-round
# ratios show how far the host's drift moves a comparison (the medians above hide it).
awk -F'\t' '
  function median(x, n,   i, j, tmp) {
    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (x[j] < x[i]) { tmp = x[i]; x[i] = x[j]; x[j] = tmp }
    return n % 2 ? x[(n + 1) / 2] : (x[n / 2] + x[n / 2 + 1]) / 2
  }
  function spread(x, n,   m) { m = median(x, n); return sprintf("%.2f / %.2f / %.2f", x[1], m, x[n]) }
  NR == 1 { next }
  {
    r = $1; t = $2; rounds[r] = 1
    rps[r, t] = $5; p99[r, t] = $8; if ($3 > 0) cpu[r, t] = $13 / $3
    if (t == "nginx" || t == "haproxy") peers[t] = 1
  }
  END {
    n = 0
    for (r in rounds) {
      if (!((r, "rrlb") in rps)) continue
      best = 0; low = 0
      for (t in peers) if ((r, t) in rps) {
        if (rps[r, t] > best) best = rps[r, t]
        if (low == 0 || p99[r, t] < low) low = p99[r, t]
      }
      if (best == 0) continue
      n++; tp[n] = rps[r, "rrlb"] / best; lat[n] = low > 0 ? p99[r, "rrlb"] / low : 0
      if (((r, "nginx") in cpu) && cpu[r, "nginx"] > 0 && ((r, "rrlb") in cpu)) { m++; c[m] = cpu[r, "rrlb"] / cpu[r, "nginx"] }
    }
    if (n == 0) exit
    print ""
    print "rrlb against the better peer of the same round (min / median / max over " n " rounds):"
    print ""
    print "| throughput ÷ better peer | p99 ÷ better peer | CPU per request ÷ NGINX |"
    print "| ---: | ---: | ---: |"
    printf "| %s | %s | %s |\n", spread(tp, n), spread(lat, n), (m > 0 ? spread(c, m) : "—")
  }' "$results"
if [[ -s $idle_results ]]; then
  echo
  echo "Memory for $idle idle keep-alive connections$([[ $tls_mode != off ]] && echo " over TLS") (each has carried one POST; RSS of the proxy's processes after the rounds):"
  echo
  echo "| target | RSS before | RSS with $idle idle | per idle connection |"
  echo "| --- | ---: | ---: | ---: |"
  awk -F'\t' -v n="$idle" '{ printf "| %s | %.1f MiB | %.1f MiB | %.1f KiB |\n", $1, $2 / 1024, $3 / 1024, ($3 - $2) / n }' "$idle_results"
fi
echo
echo "Every round (req/s, p50 / p99 in ms, peak RSS in MiB, CPU in ms of wrk / proxy / backends):"
echo
echo "| round | target | req/s | p50 | p99 | max | errors | RSS | wrk CPU | proxy CPU | backends CPU |"
echo "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
awk -F'\t' 'NR > 1 {
  mem = "—"; if ($11 != "-") mem = sprintf("%.1f", $11 / 1024)
  printf "| %s | %s | %.0f | %.2f | %.2f | %.1f | %d | %s | %d | %d | %d |\n", $1, $2, $5, $6 / 1000, $8 / 1000,
    $9 / 1000, $10, mem, $12, $13, $14
}' "$results"
