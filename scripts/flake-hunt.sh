#!/usr/bin/env bash
# Runs the test suite many times to find tests that fail only now and then.
#
#   scripts/flake-hunt.sh [ROUNDS] [CARGO_ARGS...] [-- TEST_ARGS...]
#
# ROUNDS (default 50) runs of `cargo test --no-fail-fast CARGO_ARGS -- TEST_ARGS`; CARGO_ARGS
# default to `--workspace` (the README's test command), e.g. `scripts/flake-hunt.sh 1 -p
# vm2dmp-cli`. Every second round runs under load: one busy process per core for the whole
# round (stopped after it) and `--test-threads 16`. Every test that failed is recorded with
# its round; at the end a table lists them, and the exit code is 1 if anything failed (2 if
# the tests do not build). The output of each round is kept in a log folder, named at the end
# (FLAKE_HUNT_LOGS chooses it). Not run by CI: it takes as long as ROUNDS test runs.
set -euo pipefail

usage() {
    awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"
    exit "${1:-2}"
}

rounds=50
if [[ $# -gt 0 && $1 =~ ^[0-9]+$ ]]; then
    rounds=$1
    shift
fi
[[ $rounds -ge 1 ]] || usage
cargo_args=()
test_args=()
while [[ $# -gt 0 ]]; do
    case $1 in
        -h | --help) usage 0 ;;
        --)
            shift
            test_args=("$@")
            break
            ;;
        *) cargo_args+=("$1") ;;
    esac
    shift
done
[[ ${#cargo_args[@]} -gt 0 ]] || cargo_args=(--workspace)

logs=${FLAKE_HUNT_LOGS:-$(mktemp -d "${TMPDIR:-/tmp}/flake-hunt.XXXXXX")}
mkdir -p "$logs"
failures=$logs/failures.tsv # round, "load" or "", test binary, test
: >"$failures"
cores=$(nproc 2>/dev/null || echo 2)

# The busy processes of a loaded round, stopped when the round ends or the script does.
load_pids=()
stop_load() {
    local pid
    for pid in "${load_pids[@]}"; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    load_pids=()
}
trap stop_load EXIT
trap 'stop_load; exit 130' INT TERM HUP

start_load() {
    local i
    for ((i = 0; i < cores; i++)); do
        yes >/dev/null &
        load_pids+=("$!")
    done
}

# Appends the failed tests of the log $1 of round $2 ($3: "load" or "") to $failures; a
# round that failed without naming a test (a crash, a build error) is recorded as such.
record_failures() {
    local log=$1 round=$2 load=$3 status=$4 before after
    before=$(wc -l <"$failures")
    awk -v round="$round" -v load="$load" '
        # "     Running tests/it/main.rs (target/debug/deps/it-0123abcd)"
        /^ *Running / {
            bin = $0
            sub(/^ *Running /, "", bin)
            dep = bin
            if (match(dep, /\(.*\)$/)) {
                dep = substr(dep, RSTART + 1, RLENGTH - 2)
                sub(/.*\//, "", dep)
                sub(/-[0-9a-f]+$/, "", dep)
                sub(/ \(.*\)$/, "", bin)
                bin = dep " (" bin ")"
            }
            next
        }
        /^ *Doc-tests / { bin = $0; sub(/^ */, "", bin); next }
        /^test .* \.\.\. FAILED$/ {
            name = $0
            sub(/^test /, "", name)
            sub(/ \.\.\. FAILED$/, "", name)
            printf "%s\t%s\t%s\t%s\n", round, load, bin, name
            next
        }
        # A test binary that died (signal, abort) before reporting its tests.
        /process didn.t exit successfully: .*signal/ {
            printf "%s\t%s\t%s\t%s\n", round, load, bin, "(test binary crashed: see log)"
        }
    ' "$log" >>"$failures"
    after=$(wc -l <"$failures")
    if [[ $status -ne 0 && $after -eq $before ]]; then
        printf '%s\t%s\t%s\t%s\n' "$round" "$load" "-" "(round failed with exit code $status: see log)" >>"$failures"
    fi
}

echo "flake hunt: cargo test --no-fail-fast ${cargo_args[*]}${test_args[*]:+ -- ${test_args[*]}}, $rounds round(s); logs in $logs"
if ! cargo test --no-run "${cargo_args[@]}" >"$logs/build.log" 2>&1; then
    echo "the tests do not build: see $logs/build.log" >&2
    exit 2
fi

for ((round = 1; round <= rounds; round++)); do
    load=""
    args=("${test_args[@]}")
    if ((round % 2 == 0)); then
        load=load
        args+=(--test-threads 16)
        start_load
    fi
    log=$logs/round-$round.log
    status=0
    cargo test --no-fail-fast "${cargo_args[@]}" -- "${args[@]}" >"$log" 2>&1 || status=$?
    stop_load
    record_failures "$log" "$round" "$load" "$status"
    failed=$(awk -F'\t' -v r="$round" '$1 == r' "$failures" | wc -l)
    printf 'round %d/%d%s: %s\n' "$round" "$rounds" "${load:+ (under load)}" \
        "$([[ $status -eq 0 ]] && echo ok || echo "$failed failed")"
done

if [[ ! -s $failures ]]; then
    echo "no test failed in $rounds round(s)"
    exit 0
fi
echo
echo "failed tests (rounds marked * ran under load):"
awk -F'\t' '
    {
        key = $4 "\t" $3
        if (!(key in count)) order[n++] = key
        count[key]++
        rounds[key] = rounds[key] (rounds[key] == "" ? "" : " ") $1 ($2 == "load" ? "*" : "")
    }
    END {
        printf "%-6s  %-20s  %s\n", "times", "rounds", "test (binary)"
        for (i = 0; i < n; i++) {
            split(order[i], k, "\t")
            printf "%-6d  %-20s  %s (%s)\n", count[order[i]], rounds[order[i]], k[1], k[2]
        }
    }
' "$failures"
echo "logs: $logs"
exit 1
