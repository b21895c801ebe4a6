#!/usr/bin/env bash
# Coverage of each target's corpus (corpus/<target>, grown by runs, and seeds/<target>) over
# vm2dmp's own code: every input is run once through the AddressSanitizer build
# (`-runs=0 -print_coverage=1`: libFuzzer lists each instrumented function with the edges its
# inputs reached), and coverage-report/<target>.txt gets, per source file of the crates, the
# functions and edges reached, then the functions of those files no input reached. Needs the
# nightly toolchain.
#
#   fuzz/coverage.sh [TARGET...]        (default: every target)
set -euo pipefail
cd "$(dirname "$0")"

cargo +nightly fuzz build -a >/dev/null
cargo +nightly fuzz build -O --target-dir target/shipped pdb_symbols >/dev/null
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(cargo +nightly fuzz list)
fi
mkdir -p coverage-report
commit=$(git rev-parse --short HEAD 2>/dev/null || echo -)
for t in "${targets[@]}"; do
    bin=target/x86_64-unknown-linux-gnu/release/$t
    [ "$t" = pdb_symbols ] && bin=target/shipped/x86_64-unknown-linux-gnu/release/$t
    dirs=()
    for d in "corpus/$t" "seeds/$t"; do
        [ -d "$d" ] && dirs+=("$d")
    done
    log=$(mktemp)
    "$bin" -runs=0 -print_coverage=1 -rss_limit_mb=2048 -timeout=30 "${dirs[@]}" >"$log" 2>&1
    inputs=$(find "${dirs[@]}" -type f | wc -l)
    cov=$(grep -E '^#[0-9]+.*(INITED|DONE).*cov: ' "$log" | tail -n 1 | sed -n 's/.* cov: *\([0-9]*\).*/\1/p')
    pcs=$(sed -n 's/^INFO: Loaded 1 modules *(\([0-9]*\) inline.*/\1/p' "$log" | head -n 1)
    {
        echo "# $t: coverage of its corpus ($inputs inputs; commit $commit, $(date -u +%F))"
        echo
        echo "Edges reached in the whole program (vm2dmp and the crates it uses): ${cov:-?} of ${pcs:-?}."
        echo
        echo "Per source file of vm2dmp that the target reaches: functions reached / functions,"
        echo "edges reached / edges."
        echo
        # "COVERED_FUNC: hits: H edges: A/B NAME /path/crates/C/src/F.rs:LINE"
        awk '
            /^(UN)?COVERED_FUNC: / && /\/crates\// {
                covered = ($1 == "COVERED_FUNC:")
                split($5, e, "/")
                loc = $NF
                sub(/.*\/crates\//, "", loc)
                file = loc
                sub(/:[0-9]+$/, "", file)
                name = $6
                for (i = 7; i < NF; i++) name = name " " $i
                funcs[file]++
                edges[file] += e[2]
                reached[file] += e[1]
                if (covered) hit[file]++
                else missed[file] = missed[file] "    " name " (" loc ", " e[2] " edges)\n"
            }
            END {
                n = 0
                for (f in funcs) if (hit[f] > 0) keys[++n] = f
                # Sorted by file name (insertion sort: a few dozen files).
                for (i = 2; i <= n; i++) {
                    k = keys[i]
                    for (j = i - 1; j >= 1 && keys[j] > k; j--) keys[j + 1] = keys[j]
                    keys[j + 1] = k
                }
                printf "%-48s %9s %13s\n", "file", "functions", "edges"
                for (i = 1; i <= n; i++) {
                    f = keys[i]
                    printf "%-48s %4d/%-4d %6d/%-6d %3d%%\n", f, hit[f], funcs[f], reached[f], edges[f], edges[f] ? 100 * reached[f] / edges[f] : 0
                    tf += funcs[f]; th += hit[f]; te += edges[f]; tr += reached[f]
                }
                printf "%-48s %4d/%-4d %6d/%-6d %3d%%\n", "total", th, tf, tr, te, te ? 100 * tr / te : 0
                print ""
                print "Functions of those files that no input reached:"
                print ""
                for (i = 1; i <= n; i++) if (missed[keys[i]] != "") printf "%s", missed[keys[i]]
            }' "$log"
    } >"coverage-report/$t.txt"
    rm -f "$log"
    echo "$t: $(grep -E '^total ' "coverage-report/$t.txt")"
done
