# syntax=docker/dockerfile:1
#
# rrlb, the HTTP load balancer: multi-stage build.
#
#   docker build -t rrlb:0.1.0 .
#   docker run --rm -p 8080:8080 rrlb:0.1.0 --demo
#
# Stage 1 (planner) reduces the workspace to a dependency "recipe" (every member's Cargo.toml and
# Cargo.lock, with sources stubbed out); stage 2 (builder) compiles the dependencies from that
# recipe alone, so the expensive layer is only rebuilt when a manifest or the lock file changes,
# and then compiles rrlb itself. The runtime image is distroless (glibc + libgcc, no shell) and
# runs as the unprivileged `nonroot` user (uid 65532). The chef stage matches echo-rs/Dockerfile
# (same base image and cargo-chef version), so BuildKit builds it once for both images.

ARG RUST_VERSION=1.95
ARG CARGO_CHEF_VERSION=0.1.78

FROM rust:${RUST_VERSION}-slim-bookworm AS chef
ARG CARGO_CHEF_VERSION
RUN cargo install cargo-chef --locked --version "${CARGO_CHEF_VERSION}"
WORKDIR /src

FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS builder
# Features on top of the defaults: `kubernetes` lets deploy/k8s discover pods through EndpointSlices; `etcd`
# lets a fleet of replicas share its runtime state ([state] store = "etcd"), and needs `protoc` to build.
ARG RRLB_FEATURES=kubernetes,etcd
RUN apt-get update \
    && apt-get install -y --no-install-recommends protobuf-compiler \
    && rm -rf /var/lib/apt/lists/*
COPY --from=planner /src/recipe.json recipe.json
# Dependencies only: this layer is cached until Cargo.toml/Cargo.lock change.
RUN cargo chef cook --release --locked -p rrlb-bin --features "${RRLB_FEATURES}" --recipe-path recipe.json
COPY . .
RUN cargo build --release --locked -p rrlb-bin --features "${RRLB_FEATURES}" \
    && install -D -m 0755 target/release/rrlb /out/rrlb \
    && install -d -m 0755 /out/state

FROM gcr.io/distroless/cc-debian12:nonroot AS runtime
LABEL org.opencontainers.image.title="rrlb" \
      org.opencontainers.image.description="HTTP reverse proxy and load balancer" \
      org.opencontainers.image.licenses="MIT OR Apache-2.0"
COPY --from=builder /out/rrlb /usr/local/bin/rrlb
# Where `[state] store = "file"` keeps the admin API's runtime changes by default (state.json): owned by the
# unprivileged user, so that a volume mounted here starts writable (compose.yaml mounts `rrlb-state`).
COPY --from=builder --chown=nonroot:nonroot /out/state /var/lib/rrlb
# The proxy listens on all interfaces. The admin API keeps its loopback default here: to reach it
# from outside the container set RRLB_ADMIN_LISTEN=0.0.0.0:9901 *and* RRLB_ADMIN_TOKEN (rrlb
# refuses a non-loopback admin listener without a token); compose.yaml and deploy/k8s do both.
# MIMALLOC_ALLOW_THP=0: no transparent huge pages for the allocator's arena even on hosts with THP set to
# `always` (the binary already never asks for them); they nearly double the proxy's RSS under load.
ENV RRLB_LISTEN=0.0.0.0:8080 \
    RRLB_LOG_FORMAT=json \
    MIMALLOC_ALLOW_THP=0
USER nonroot:nonroot
EXPOSE 8080 9901
# `rrlb --healthcheck` probes GET /healthz on the effective admin address and exits 0 on 200.
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
    CMD ["/usr/local/bin/rrlb", "--healthcheck"]
# SIGTERM drains in-flight requests (default 30s) before exiting 0.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/rrlb"]
