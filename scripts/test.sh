#!/usr/bin/env bash
# The project's test command (README, .ci/run): installs what the tests need when it is missing, then runs
# every check: formatting, the layering of modules, lints, docs, the Rust workspace tests (which include
# the echo conformance suite against all four implementations), each echo service's own tests, the fuzz
# targets (briefly), the deployment checks and the local end-to-end stack.
#
#   scripts/test.sh            everything
#   SKIP_INSTALL=1             do not install anything
#   FUZZ_SECONDS=N             seconds per fuzz target (default 30; 0 skips fuzzing)
#   SKIP_E2E=1                 skip the local-stack end-to-end run and the schemathesis API run
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
FUZZ_SECONDS="${FUZZ_SECONDS:-30}"

# Each step that completes counts as passed; the first failure stops the run. The last line is the summary.
PASSED=0
CURRENT=""
E2E_UP=0
step() {
    if [[ -n "$CURRENT" ]]; then
        PASSED=$((PASSED + 1))
    fi
    CURRENT="$*"
    printf '\n==> %s\n' "$*"
}
finish() {
    local rc=$?
    if [[ "$E2E_UP" == 1 ]]; then
        bash "$ROOT/scripts/local-down.sh" || true
    fi
    if [[ $rc -ne 0 ]]; then
        printf '\ntest.sh: failed at step: %s\n' "${CURRENT:-setup}"
        df -h "$ROOT" 2>/dev/null || true
        printf '%d passed, 1 failed\n' "$PASSED"
    fi
}
trap finish EXIT
# Free disk space matters: a full disk makes the linker die with SIGBUS, which reads like a compiler bug.
df -h "$ROOT" 2>/dev/null || true

if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then
    sed -n '2,12p' "$0"
    exit 0
fi

if [[ "${SKIP_INSTALL:-0}" != 1 ]]; then
    step "installing test dependencies (skipped when present)"
    bash scripts/install-test-deps.sh
fi
export PATH="$HOME/.cargo/bin:$PATH"

step "cargo fmt --check"
cargo fmt --all --check

step "layering: no import goes up the order in docs/architecture.md, no folder cycle (scripts/checks/layering.py)"
"${PYTHON:-python3}" scripts/checks/layering.py

step "cargo clippy (workspace, all targets, -D warnings)"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "cargo doc (-D warnings)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked

step "echo-go: gofmt, vet, test"
(
    cd echo-go
    unformatted=$(gofmt -l .)
    if [[ -n "$unformatted" ]]; then
        echo "gofmt would change: $unformatted" >&2
        exit 1
    fi
    go vet ./...
    go test -count=1 ./...
)

step "echo-node: node --test"
(cd echo-node && npm test)

step "echo-java: mvn test"
(cd echo-java && mvn -B -ntp test)

step "cargo test (workspace: unit, property, integration, conformance, doc tests)"
cargo test --workspace --locked
# The dashboard's browser test (rrlb-bin/tests/dashboard_browser.rs) leaves its screenshot, a CI artifact.
if [[ -f target/dashboard.png ]]; then echo "dashboard screenshot: target/dashboard.png"; fi

step "examples run and print what they promise (scripts/run-examples.sh)"
bash scripts/run-examples.sh

step "library crates: feature matrix, MSRV, docs.rs build, doc examples, cargo deny, packaging (scripts/check-crates.sh)"
bash scripts/check-crates.sh

step "fleet state in etcd (feature etcd, off by default): clippy, tests against a real etcd"
cargo clippy -p rrlb-bin --features etcd --all-targets --locked -- -D warnings
cargo test -p rrlb-bin --features etcd --locked --lib state::
cargo test -p rrlb-bin --features etcd --locked --test fleet --test state

step "kubernetes discovery (feature kubernetes, off by default): clippy, docs, tests"
cargo clippy -p rrlb-tower -p rrlb-bin --features rrlb-bin/kubernetes --all-targets --locked -- -D warnings
RUSTDOCFLAGS="-D warnings" cargo doc -p rrlb-tower --features kubernetes --no-deps --locked
cargo test -p rrlb-tower --features kubernetes --locked discovery
# (With etcd too: the debug binary this builds is the one scripts/check-deploy.sh runs `--check` with on
# deploy/k8s/rrlb.toml, which uses both.)
cargo test -p rrlb-bin --features kubernetes,etcd --locked --test kubernetes

if [[ "$FUZZ_SECONDS" != 0 ]]; then
    step "fuzz targets, ${FUZZ_SECONDS}s each (cargo fuzz, --sanitizer none)"
    (
        cd fuzz
        for target in $(cargo fuzz list); do
            echo "fuzz: $target"
            mkdir -p "corpus/$target"
            seeds=()
            [[ -d "seeds/$target" ]] && seeds=("seeds/$target")
            dict=()
            [[ "$target" == config && -f config.dict ]] && dict=(-dict=config.dict)
            # libFuzzer's periodic status lines are dropped; crashes, the final stats and errors stay.
            cargo fuzz run --sanitizer none "$target" "corpus/$target" "${seeds[@]}" -- \
                -max_total_time="$FUZZ_SECONDS" -rss_limit_mb=2048 -print_final_stats=1 "${dict[@]}" 2>&1 |
                { grep -vE '^#[0-9]+[[:space:]]+(NEW|REDUCE|pulse|RELOAD)' || true; }
        done
    )
    # The instrumented build is only for fuzzing; in CI its ~0.8 GB is given back before the release build.
    if [[ "${CI:-}" == true ]]; then
        rm -rf fuzz/target
    fi
fi

step "python checks: pyflakes and py_compile (scripts/checks, run by check-deploy.sh)"
"${PYTHON:-python3}" -m pyflakes scripts/checks
"${PYTHON:-python3}" -m py_compile scripts/checks/*.py

step "deployment checks (shellcheck, compose, kubernetes, promtool, grafana, openapi)"
bash scripts/check-deploy.sh

if [[ "${SKIP_E2E:-0}" != 1 ]]; then
    step "local stack end to end: local-up, integration-test, schemathesis, local-down"
    export RRLB_PORT="${RRLB_PORT:-18080}" ADMIN_PORT="${ADMIN_PORT:-19901}"
    E2E_UP=1
    bash scripts/local-up.sh
    bash scripts/integration-test.sh
    bash scripts/check-api.sh
    bash scripts/local-down.sh
    E2E_UP=0
fi

PASSED=$((PASSED + 1))
printf '\nall checks passed\n%d passed, 0 failed\n' "$PASSED"
