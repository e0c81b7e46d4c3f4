#!/usr/bin/env bash
# Produce rrlb-core/tests/fixtures/ketama-nginx.tsv: where real NGINX's `hash $key consistent` puts
# 1,000 keys over 5 weighted servers, the reference of rrlb-core's KetamaRing (tests/hash.rs).
set -euo pipefail

usage() {
    cat <<USAGE
usage: scripts/ketama-reference.sh [-h] [OUTPUT]

Starts one nginx (NGINX env var, default /usr/sbin/nginx; foreground, a temporary prefix, stopped on
exit) listening on 127.0.0.1 on 6 free ports: 5 tiny servers answering their own port, and a front
server proxying to "upstream u { hash \$arg_k consistent; server 127.0.0.1:PORT weight=W; ... }".
Requests /?k=key-0 ... /?k=key-999 and writes OUTPUT (default
rrlb-core/tests/fixtures/ketama-nginx.tsv): a header naming the nginx version and each server's exact
"host:port" text and weight (the text is what NGINX hashes), then one "key<TAB>host:port" line per key.
Needs nginx, python3.
USAGE
}

case "${1:-}" in
    -h | --help) usage; exit 0 ;;
esac

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${1:-$root/rrlb-core/tests/fixtures/ketama-nginx.tsv}"
nginx="${NGINX:-/usr/sbin/nginx}"
keys=1000
weights=(1 2 3 1 5)

prefix="$(mktemp -d)"
nginx_pid=""
cleanup() {
    if [[ -n "$nginx_pid" ]]; then
        kill "$nginx_pid" 2>/dev/null || true
        wait "$nginx_pid" 2>/dev/null || true
    fi
    rm -rf "$prefix"
}
trap cleanup EXIT

# Six free ports: bound to port 0 by the kernel, released, then taken by nginx.
mapfile -t ports < <(python3 - <<'PY'
import socket
socks = []
for _ in range(6):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
for s in socks:
    print(s.getsockname()[1])
PY
)
front="${ports[0]}"
servers=()
for i in "${!weights[@]}"; do
    servers+=("127.0.0.1:${ports[$((i + 1))]}")
done

mkdir -p "$prefix/logs" "$prefix/tmp"
{
    if [[ "$(id -u)" == 0 ]]; then
        echo "user root;"
    fi
    echo "worker_processes 1;"
    echo "error_log $prefix/logs/error.log warn;"
    echo "pid $prefix/nginx.pid;"
    echo "events { worker_connections 64; }"
    echo "http {"
    echo "  access_log off;"
    echo "  client_body_temp_path $prefix/tmp/body;"
    echo "  proxy_temp_path $prefix/tmp/proxy;"
    echo "  fastcgi_temp_path $prefix/tmp/fastcgi;"
    echo "  uwsgi_temp_path $prefix/tmp/uwsgi;"
    echo "  scgi_temp_path $prefix/tmp/scgi;"
    echo "  upstream u {"
    echo "    hash \$arg_k consistent;"
    for i in "${!weights[@]}"; do
        echo "    server ${servers[$i]} weight=${weights[$i]};"
    done
    echo "  }"
    echo "  server { listen 127.0.0.1:$front; location / { proxy_pass http://u; } }"
    for s in "${servers[@]}"; do
        echo "  server { listen $s; location / { return 200 \"\$server_addr:\$server_port\"; } }"
    done
    echo "}"
} >"$prefix/nginx.conf"

version="$("$nginx" -v 2>&1)"
"$nginx" -p "$prefix" -c "$prefix/nginx.conf" -g "daemon off;" &
nginx_pid=$!

# Wait for the front port to answer.
for _ in $(seq 50); do
    if python3 -c "import socket,sys; socket.create_connection(('127.0.0.1', int(sys.argv[1])), 0.2)" "$front" 2>/dev/null; then
        break
    fi
    sleep 0.1
done

mkdir -p "$(dirname "$out")"
{
    echo "# Placement of 'hash \$arg_k consistent' by $version (scripts/ketama-reference.sh)."
    echo "# Each server line: the exact server text NGINX hashed, its weight. Then: key, chosen server."
    for i in "${!weights[@]}"; do
        printf '# server\t%s\t%s\n' "${servers[$i]}" "${weights[$i]}"
    done
    python3 - "$front" "$keys" <<'PY'
import http.client, sys
front, keys = int(sys.argv[1]), int(sys.argv[2])
conn = http.client.HTTPConnection("127.0.0.1", front, timeout=5)
for i in range(keys):
    key = f"key-{i}"
    conn.request("GET", f"/?k={key}")
    resp = conn.getresponse()
    body = resp.read().decode()
    if resp.status != 200:
        sys.exit(f"{key}: HTTP {resp.status}")
    print(f"{key}\t{body}")
PY
} >"$out.tmp"
mv "$out.tmp" "$out"
echo "wrote $out ($keys keys, $version)"
