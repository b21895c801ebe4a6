#!/usr/bin/env python3
"""Prints the results table of fuzz/README.md ("To 10^7 executions") from runs.tsv and
coverage-report/.

For each target: its latest runs, going back from the last one until they add up to 10^7
executions (all of them if they never do), with their commits, sanitizers, seconds, the
libFuzzer cov / ft of the last of them, and the vm2dmp edges its corpus reaches.

    fuzz/runs-table.py [runs.tsv]
"""

import pathlib
import re
import sys

GOAL = 10_000_000
HERE = pathlib.Path(__file__).resolve().parent


def coverage(target):
    """'reached/total (pct%)' of vm2dmp's own edges, from coverage-report/<target>.txt."""
    path = HERE / "coverage-report" / f"{target}.txt"
    if not path.exists():
        return "—"
    for line in path.read_text().splitlines():
        if line.startswith("total "):
            m = re.search(r"(\d+)/(\d+)\s+(\d+)%\s*$", line)
            if m:
                return f"{m.group(1)}/{m.group(2)} ({m.group(3)}%)"
    return "—"


def main():
    ledger = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "runs.tsv"
    runs = {}
    for line in ledger.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        f = line.split("\t")
        runs.setdefault(f[2], []).append(
            {
                "commit": f[1],
                "sanitizer": f[3],
                "seconds": int(f[4]),
                "executions": int(f[5]),
                "cov": f[6],
                "ft": f[7],
                "result": f[9],
            }
        )
    print(
        "| target | commit | sanitizer | executions | seconds | libFuzzer cov / ft at the end "
        "| vm2dmp edges reached by the corpus | crashes, timeouts, OOMs |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for target in sorted(runs):
        counted, total = [], 0
        for run in reversed(runs[target]):
            counted.insert(0, run)
            total += run["executions"]
            if total >= GOAL:
                break
        execs = " + ".join(f"{r['executions']:,}" for r in counted)
        execs = f"{execs} = **{total:,}**" if len(counted) > 1 else f"**{total:,}**"
        commits = ", ".join(dict.fromkeys(r["commit"] for r in counted))
        sanitizers = ", ".join(dict.fromkeys(r["sanitizer"] for r in counted))
        seconds = sum(r["seconds"] for r in counted)
        failed = sum(r["result"] == "failed" for r in counted)
        last = counted[-1]
        print(
            f"| `{target}` | {commits} | {sanitizers} | {execs} | {seconds:,} "
            f"| {last['cov']} / {last['ft']} | {coverage(target)} | {failed} |"
        )


if __name__ == "__main__":
    main()
