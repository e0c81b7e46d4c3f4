#!/usr/bin/env bash
# Checks that the library crates (rrlb-core, rrlb-tower) are fit to publish, as a Rust developer checks them
# before adding a dependency (CONTRIBUTING.md lists the why of each):
#   feature matrix (cargo hack), MSRV build and tests, docs as docs.rs builds them, a doc example on every
#   public type and trait, licences/bans/sources (cargo deny), packaging, dependency counts.
# Needs cargo-hack, cargo-deny, the MSRV toolchain and a nightly (scripts/install-test-deps.sh installs them).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

LIBS=(rrlb-core rrlb-tower)
MSRV=$(sed -n 's/^rust-version = "\(.*\)"/\1/p' Cargo.toml)
target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
lib_args=()
for lib in "${LIBS[@]}"; do lib_args+=(-p "$lib"); done

echo "== feature matrix: every feature alone, and none (cargo hack, no dev-dependencies)"
cargo hack check --workspace --each-feature --no-dev-deps --quiet

# The MSRV and nightly builds get target directories of their own, which CI gives back afterwards (disk).
echo "== MSRV $MSRV: build and test the libraries with the declared rust-version"
CARGO_TARGET_DIR="$target_dir/msrv" cargo "+$MSRV" test --locked --quiet "${lib_args[@]}"

echo "== docs as docs.rs builds them (nightly, --cfg docsrs, all features)"
export CARGO_TARGET_DIR="$target_dir/nightly"
RUSTDOCFLAGS="--cfg docsrs -D warnings" cargo +nightly doc --locked --quiet --no-deps --all-features "${lib_args[@]}"

echo "== a doc example on every public type and trait"
json=()
for lib in "${LIBS[@]}"; do
    RUSTDOCFLAGS="" cargo +nightly rustdoc --locked --quiet -p "$lib" --lib --all-features -- \
        -Z unstable-options --output-format json
    json+=("$CARGO_TARGET_DIR/doc/${lib//-/_}.json")
done
python3 scripts/checks/doc_examples.py "${json[@]}"
unset CARGO_TARGET_DIR
if [[ "${CI:-}" == true ]]; then
    rm -rf "$target_dir/msrv" "$target_dir/nightly"
fi

echo "== licences, bans, sources (cargo deny; advisories need GitHub, see deny.toml)"
cargo deny --log-level error check licenses bans sources

echo "== packaging"
cargo package --locked --no-verify --allow-dirty --quiet "${lib_args[@]}"
for lib in "${LIBS[@]}"; do
    version=$(cargo metadata --format-version 1 --no-deps |
        python3 -c "import json,sys; print(next(p['version'] for p in json.load(sys.stdin)['packages'] if p['name']=='$lib'))")
    crate="$target_dir/package/$lib-$version.crate"
    files=$(tar -tzf "$crate" | wc -l)
    unexpected=$(tar -tzf "$crate" | sed "s|^$lib-$version/||" |
        grep -Ev '^(src/.*\.rs|Cargo\.toml|Cargo\.toml\.orig|Cargo\.lock|README\.md|CHANGELOG\.md|LICENSE-MIT|LICENSE-APACHE|\.cargo_vcs_info\.json)$' || true)
    if [[ -n "$unexpected" ]]; then
        echo "check-crates: $lib packages files it should not: $unexpected" >&2
        exit 1
    fi
    echo "$lib $version: $(du -k "$crate" | cut -f1) KiB packed, $files files"
done

echo "== dependency counts (distinct crates, normal dependencies, this platform)"
count() { cargo tree --locked -e normal --prefix none "$@" | sed 's/ (\*)$//' | sort -u | wc -l; }
echo "rrlb-core:                           $(count -p rrlb-core)"
echo "rrlb-tower (default: http, https):   $(count -p rrlb-tower)"
echo "rrlb-tower (default-features=false): $(count -p rrlb-tower --no-default-features)"
echo "crates in more than one version in the whole tree (all platforms, dev-dependencies too):"
cargo tree --locked --workspace --target all -e normal,build,dev --duplicates --depth 0 --prefix none |
    sort -u | grep . | sed 's/^/  /'
