#!/usr/bin/env bash
# Runs the unit tests of the format crates (vm2dmp-formats, vm2dmp-kdump, vm2dmp-xpress)
# under Miri. Tests too large for the interpreter are skipped; property tests run 8 cases.
# Takes about 5 minutes. The `vm2dmp` crate itself is not run: it memory-maps and reads files,
# which Miri does not interpret.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! cargo +nightly --version >/dev/null 2>&1; then
    echo "fuzz/miri.sh: Miri needs a nightly toolchain (cargo +nightly), and there is none" >&2
    exit 1
fi
if ! cargo +nightly miri --version >/dev/null 2>&1; then
    rustup component add --toolchain nightly miri rust-src
fi
export MIRIFLAGS="${MIRIFLAGS:--Zmiri-disable-isolation}"
export PROPTEST_CASES="${PROPTEST_CASES:-8}"
cargo +nightly miri setup
cargo +nightly miri test -p vm2dmp-formats --lib
# large_tests: 256 GiB layouts, hours under Miri.
cargo +nightly miri test -p vm2dmp-kdump --lib -- --skip large_tests
# copy_match_all_paths: every match length and distance, too slow under Miri.
cargo +nightly miri test -p vm2dmp-xpress --lib -- --skip copy_match_all_paths
