#!/usr/bin/env bash
# Full and resumed TLS 1.3 handshakes per second (ECDSA P-256, X25519) with rustls's ring and aws-lc-rs
# providers, over memory, ROUNDS interleaved rounds of N handshakes each (ADR 0010).
# Usage: benches/tls-provider/run.sh [ROUNDS] [N]
set -euo pipefail
cd "$(dirname "$0")"
rounds=${1:-5}
n=${2:-2000}
cargo build --release --features ring && cp target/release/tls-provider-bench target/ring
cargo build --release --features aws && cp target/release/tls-provider-bench target/aws-lc-rs
for _ in $(seq "$rounds"); do
    target/ring "$n"
    target/aws-lc-rs "$n"
done | sort
