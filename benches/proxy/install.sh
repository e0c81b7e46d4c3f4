#!/usr/bin/env bash
# Installs what benches/proxy/run.sh needs from Debian's packages: wrk, nginx, haproxy (and curl,
# python3 for the checks and for picking free ports, openssl for TLS=... runs; TLS=handshake also
# needs a C compiler, which building rrlb needs anyway). Idempotent: packages already installed are
# left alone and nothing is done when all are there.
#
# Debian's nginx and haproxy packages start their system service on install. This script prevents
# that: while apt-get runs, /usr/sbin/policy-rc.d answers 101 ("action not allowed"), so
# invoke-rc.d starts nothing and nothing binds port 80. An existing policy-rc.d is left as it is;
# one this script creates is removed afterwards. run.sh never uses the system services or the
# packaged configuration: it starts its own foreground processes with generated configs.
#
#   sudo benches/proxy/install.sh        # or as root
#
# Why `nginx` and not `nginx-light`: on Debian 12 `nginx` is the binary with the standard modules
# (upstream, proxy, keepalive), which is all the benchmark uses; `nginx-light` is only a
# metapackage that adds an echo module on top of it.
set -euo pipefail

usage() {
  sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
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

# nginx and haproxy must be Debian's packages; for the tools any copy on PATH will do.
packages=(nginx haproxy)
tools=(wrk curl python3 openssl)

installed() {
  dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q '^install ok installed$'
}

missing=()
for p in "${packages[@]}"; do
  installed "$p" || missing+=("$p")
done
for t in "${tools[@]}"; do
  command -v "$t" >/dev/null 2>&1 || installed "$t" || missing+=("$t")
done

if [[ ${#missing[@]} -eq 0 ]]; then
  echo "install.sh: already installed: ${packages[*]} ${tools[*]}"
  exit 0
fi

if [[ $(id -u) -ne 0 ]]; then
  echo "install.sh: must run as root to install: ${missing[*]}" >&2
  exit 1
fi

policy=/usr/sbin/policy-rc.d
created_policy=0
remove_policy() {
  if [[ $created_policy -eq 1 ]]; then
    rm -f "$policy"
  fi
}
trap remove_policy EXIT
if [[ ! -e $policy ]]; then
  printf '#!/bin/sh\n# benches/proxy/install.sh: start no service during this install\nexit 101\n' >"$policy"
  chmod 755 "$policy"
  created_policy=1
fi

export DEBIAN_FRONTEND=noninteractive
apt_get=(apt-get -o DPkg::Lock::Timeout=600 -y -q)
# Refresh the package lists only when one of the packages is not known yet.
for p in "${missing[@]}"; do
  if ! apt-cache show "$p" >/dev/null 2>&1; then
    "${apt_get[@]}" update
    break
  fi
done
echo "install.sh: installing ${missing[*]}"
"${apt_get[@]}" install --no-install-recommends "${missing[@]}"

# Belt and braces: had a service manager started a packaged service anyway, say so (this script
# stops nothing it did not start, so it is left to the operator).
for svc in nginx haproxy; do
  if pgrep -x "$svc" >/dev/null 2>&1; then
    echo "install.sh: warning: a '$svc' process is running (a system service?); run.sh does not use it" >&2
  fi
done
echo "install.sh: done"
