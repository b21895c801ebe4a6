#!/usr/bin/env bash
# Builds every fuzz target and runs each one for N seconds (default 30) from the committed
# seeds, one after another on one core (nightly toolchain with AddressSanitizer when there is
# one, else stable without a sanitizer). Fails on any crash, panic, timeout or memory blow-up;
# the offending input is left in fuzz/artifacts/<target>/.
#
#   fuzz/run-ci.sh [SECONDS] [TARGET...]
#
# Long runs (fuzz/README.md, "Runs"):
#   FUZZ_RUNS=N       stop each target after N executions (SECONDS is then only a cap);
#   FUZZ_SANITIZER=none  build without AddressSanitizer (several times the executions per
#                     second; overflow checks, panics, timeouts and memory limits still apply);
#   FUZZ_TIMEOUT=S    libFuzzer's per-input limit (default 2 s; raise it for runs at low
#                     priority, where an input can wait for the CPU);
#   FUZZ_LEDGER=FILE  append one tab-separated line per run to FILE: UTC time, commit, target,
#                     sanitizer, seconds, executions, edges covered (libFuzzer's cov), features
#                     (ft), corpus entries, result.
# Temporary files (the convert target's dumps) go to $TMPDIR: a tmpfs there (/dev/shm) keeps
# fsync out of the measured rate.
set -euo pipefail
cd "$(dirname "$0")"
secs="${1:-30}"
shift || true

if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

# Nightly: AddressSanitizer builds. Without a nightly toolchain (machines that have only the
# stable one), the same targets run without a sanitizer: panics, overflow, timeouts and memory
# blow-ups are still caught, and the code under test has no unsafe code.
# -a: debug assertions and overflow checks, so arithmetic overflow is a crash.
# pdb_symbols fuzzes the third-party `pdb` crate as vm2dmp ships it: a release build without
# overflow checks (the crate relies on wrapping arithmetic there, and with checks on it stops
# at the first wrapped offset, which release builds turn into an error).
sanitizer=address
if cargo +nightly --version >/dev/null 2>&1 && [ "${FUZZ_SANITIZER:-}" = none ]; then
    sanitizer=none
    fuzz=(cargo +nightly fuzz)
    flags=(-a -s none --target-dir target/nosan)
    shipped=(-O -s none --target-dir target/nosan-shipped)
elif cargo +nightly --version >/dev/null 2>&1; then
    fuzz=(cargo +nightly fuzz)
    flags=(-a)
    shipped=(-O --target-dir target/shipped)
else
    sanitizer=none
    echo "fuzz/run-ci.sh: no nightly toolchain; fuzzing without a sanitizer on stable" >&2
    fuzz=(cargo fuzz)
    flags=(-a -s none --target-dir target/stable)
    shipped=(-O -s none --target-dir target/stable-shipped)
fi
"${fuzz[@]}" build "${flags[@]}"
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <("${fuzz[@]}" list)
fi
status=0
for t in "${targets[@]}"; do
    echo "== $t (${secs}s${FUZZ_RUNS:+, at most $FUZZ_RUNS executions}, sanitizer: $sanitizer)"
    # New inputs go to corpus/<t> (not committed); seeds/<t> is only read.
    mkdir -p "corpus/$t"
    log="corpus/$t.log"
    started=$SECONDS
    tflags=("${flags[@]}")
    if [ "$t" = pdb_symbols ]; then
        tflags=("${shipped[@]}")
    fi
    if "${fuzz[@]}" run "${tflags[@]}" "$t" "corpus/$t" "seeds/$t" -- \
        -max_total_time="$secs" ${FUZZ_RUNS:+-runs="$FUZZ_RUNS"} -rss_limit_mb=2048 \
        -timeout="${FUZZ_TIMEOUT:-2}" -print_final_stats=1 \
        >"$log" 2>&1; then
        grep -E '^stat::(number_of_executed_units|peak_rss_mb)' "$log" || true
        result=ok
    else
        tail -n 60 "$log" >&2
        echo "fuzz/run-ci.sh: $t failed; the input is in fuzz/artifacts/$t/, the log in fuzz/$log" >&2
        status=1
        result=failed
    fi
    if [ -n "${FUZZ_LEDGER:-}" ]; then
        execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
        # The last status line: "#N  pulse  cov: C ft: F corp: E/S ...".
        last=$(grep -E '^#[0-9]+.*cov: ' "$log" | tail -n 1)
        field() { sed -n "s/.* $1: *\([0-9]*\).*/\1/p" <<<"$last"; }
        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$(date -u +%FT%TZ)" \
            "$(git rev-parse --short HEAD 2>/dev/null || echo -)" "$t" "$sanitizer" \
            "$((SECONDS - started))" "${execs:-0}" \
            "$(field cov)" "$(field ft)" "$(field corp)" "$result" >>"$FUZZ_LEDGER"
    fi
done
exit $status
