#!/usr/bin/env bash
# Runs every cargo example of the examples crate (examples/*.rs) and checks that it exits 0 within its time
# limit and prints the lines that its doc comment promises. An example file that is not listed below fails
# the run, so a new example cannot slip in untested.
#
#   scripts/run-examples.sh            build and run all
#   scripts/run-examples.sh pick ...   only these
set -euo pipefail
cd "$(dirname "$0")/.."

# For each example, its arguments (if it needs any) and extended regular expressions that must each match a
# line of its output.
declare -A ARGS EXPECT
EXPECT[pick]='^weighted sequence: +abacbaabacba$
^c.s circuit: +open
^after the ejection: +[ab]{10}$
^c +5 +2 +3 +60%'
EXPECT[custom_algorithm]='^all healthy: +(primary-[12] ?){8}$
^primary-1 down: +(primary-2 ?){8}$
^both primaries down: +(backup ?){8}$
^everything down: +(- ?){8}$
^all back: +primary-1 primary-2 primary-1'
EXPECT[tower_client]='^ 0: echo-1 \(attempts: 1\) echoed \{"request":0\}$
^  echo-1: 10 requests
^  echo-2: 10 requests
^  echo-3: 10 requests'
ARGS[compare]='--seconds 20 fast:exp:2 fast2:exp:2 slow:exp:20'
EXPECT[compare]='^3 backends, 1000 req/s, 20 s simulated, seed 1$
^\| round-robin \|.*\| 33\.3 % \| 33\.3 % \| 33\.3 % \|$
^\| least-request \|
^\| random \|
^\| peak-ewma \| [0-9.]+ \| [0-9.]+ \| [0-9.]+ \| 0\.00 % \| (4[5-9]|5[0-4])\.[0-9] % \| (4[5-9]|5[0-4])\.[0-9] % \| [0-4]\.[0-9] % \|$'
EXPECT[custom_discovery]='^members \["echo/127\.0\.0\.1:[0-9]+", "echo/127\.0\.0\.1:[0-9]+"\]$
^  served by \{"echo-1", "echo-2", "echo-3"\}$
^  served by \{"echo-3"\}$
^discovery errors: 0$'
EXPECT[health_checked]='=> echo-2 ejected by the health checks
=> echo-2 restored
=> echo-3 ejected after .*requests kept succeeding
=> echo-3 restored
^  echo-1: [0-9]+ requests, 0 failures
^  echo-2: [0-9]+ requests, 0 failures'

names=("$@")
if [[ ${#names[@]} -eq 0 ]]; then
    for file in examples/*.rs; do
        name=$(basename "$file" .rs)
        [[ "$name" == lib ]] && continue
        names+=("$name")
    done
fi

cargo build --locked -q -p rrlb-examples --examples
target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')

failed=0
for name in "${names[@]}"; do
    if [[ -z "${EXPECT[$name]:-}" ]]; then
        echo "run-examples: $name has no expected output listed in $0" >&2
        failed=1
        continue
    fi
    out=$(mktemp)
    rc=0
    read -r -a args <<<"${ARGS[$name]:-}"
    timeout 120 "$target_dir/debug/examples/$name" "${args[@]}" >"$out" 2>&1 || rc=$?
    missing=()
    while IFS= read -r pattern; do
        grep -Eq -- "$pattern" "$out" || missing+=("$pattern")
    done <<<"${EXPECT[$name]}"
    if [[ $rc -ne 0 || ${#missing[@]} -ne 0 ]]; then
        echo "run-examples: $name FAILED (exit $rc)" >&2
        for pattern in "${missing[@]}"; do
            echo "  no line matches: $pattern" >&2
        done
        sed 's/^/  | /' "$out" >&2
        failed=1
    else
        echo "run-examples: $name ok ($(wc -l <"$out") lines)"
    fi
    rm -f "$out"
done
exit "$failed"
