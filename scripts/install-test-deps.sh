#!/usr/bin/env bash
# Installs, idempotently, what scripts/test.sh needs on a fresh Debian 12 machine that already has Rust,
# Go, Node.js 20, Java 17 and Maven: rustfmt/clippy components, cargo-fuzz, Maven's dependencies, Chromium (the
# dashboard's browser test), etcd and protoc (the fleet tests), and the deployment tools
# (scripts/install-deploy-tools.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf 'install-test-deps: %s\n' "$*" >&2; }
export PATH="$HOME/.cargo/bin:$PATH"

for tool in cargo go node npm java mvn python3; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        log "missing toolchain: $tool (expected on this machine kind; install it first)"
        exit 1
    fi
done

if command -v rustup >/dev/null 2>&1; then
    rustup component add rustfmt clippy >/dev/null 2>&1 || true
fi

if ! cargo fuzz --version >/dev/null 2>&1; then
    log "installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

# scripts/check-crates.sh: the feature matrix, licences and sources, the declared MSRV and a nightly (docs.rs).
for tool in cargo-hack cargo-deny; do
    if ! cargo "${tool#cargo-}" --version >/dev/null 2>&1; then
        log "installing $tool"
        cargo install "$tool" --locked
    fi
done
msrv=$(sed -n 's/^rust-version = "\(.*\)"/\1/p' Cargo.toml)
for toolchain in "$msrv" nightly; do
    if ! rustup run "$toolchain" rustc --version >/dev/null 2>&1; then
        log "installing the $toolchain toolchain"
        rustup toolchain install "$toolchain" --profile minimal
    fi
done

# The dashboard's browser test (rrlb-bin/tests/dashboard_browser.rs) drives Debian's headless Chromium; in CI
# (CI=true) it fails without it. A font package, so that the page's text renders in its screenshot.
if ! command -v chromium >/dev/null 2>&1; then
    log "installing chromium (the dashboard's browser test)"
    sudo=()
    [[ "$(id -u)" -ne 0 ]] && sudo=(sudo)
    "${sudo[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends \
        chromium fonts-dejavu-core >/dev/null
fi

# The fleet tests (feature `etcd`): a real etcd and etcdctl (Debian 12: etcd 3.4), and protoc, which the
# etcd-client crate compiles its protocol with.
if ! command -v etcd >/dev/null 2>&1 || ! command -v etcdctl >/dev/null 2>&1 || ! command -v protoc >/dev/null 2>&1; then
    log "installing etcd-server, etcd-client and protobuf-compiler (the fleet tests)"
    sudo=()
    [[ "$(id -u)" -ne 0 ]] && sudo=(sudo)
    "${sudo[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends \
        etcd-server etcd-client protobuf-compiler >/dev/null
    # The package starts a system etcd on the default ports; the tests start their own on free ones.
    if command -v systemctl >/dev/null 2>&1; then
        "${sudo[@]}" systemctl disable --now etcd >/dev/null 2>&1 || true
    fi
fi

log "fetching Rust dependencies"
cargo fetch --locked

log "fetching Maven dependencies for echo-java"
(cd echo-java && mvn -B -ntp -q dependency:go-offline)

bash scripts/install-deploy-tools.sh
