#!/usr/bin/env python3
"""Compares every key `vm2dmp keys --json` reads from HVS files (.vmrs, .vmcx) with what an
independent reader, fox-it's dissect.hypervisor (PyPI), reads from the same files.

Usage: check-keys-with-dissect.py VM2DMP_BINARY FILE...

For every leaf key dissect reports, vm2dmp must report the same path with the same value:
integers and booleans equal, strings equal (vm2dmp drops trailing NULs), binary values equal in
the bytes vm2dmp shows (their start) with the right length. dissect's dictionary keeps one of
several siblings that share a name; vm2dmp lists them all, so there the value dissect kept must
be among vm2dmp's, and keys below such a repeated node that dissect dropped are not compared.
Any other path that only one reader reports is a failure. Exit code 1 on any failure.
"""

import json
import subprocess
import sys

from dissect.hypervisor.descriptor.hyperv import HyperVFile


def leaves(node, prefix, out):
    if isinstance(node, dict):
        for name, child in node.items():
            leaves(child, f"{prefix}/{name}", out)
    elif isinstance(node, list):
        for child in node:
            leaves(child, prefix, out)
    else:
        out.setdefault(prefix, []).append(node)


def same(theirs, key):
    ours = key["value"]
    if isinstance(theirs, bool) or key["type"] == "bool":
        return bool(ours) == bool(theirs)
    if isinstance(theirs, (int, float)):
        return ours == theirs
    if isinstance(theirs, str):
        return ours == theirs.rstrip("\0")
    if isinstance(theirs, (bytes, bytearray)):
        if not isinstance(ours, dict) or key["size"] != len(theirs):
            return False
        return theirs.hex().startswith(ours["hex"]) and ours["truncated"] == (
            len(ours["hex"]) < 2 * len(theirs)
        )
    return False


def check(binary, path):
    with open(path, "rb") as f:
        theirs = {}
        leaves(HyperVFile(f).as_dict(), "", theirs)
    listing = json.loads(subprocess.check_output([binary, "keys", "--json", path]))
    ours = {}
    nodes = {}
    for key in listing["keys"]:
        if key["type"] == "node":
            nodes[key["path"]] = nodes.get(key["path"], 0) + 1
        else:
            ours.setdefault(key["path"], []).append(key)
    # Below a name several sibling nodes share, dissect keeps one node's subtree only.
    repeated = [n for n, count in nodes.items() if count > 1]
    problems = []
    compared = 0
    hidden = 0
    for p in sorted(set(theirs) | set(ours)):
        t, o = theirs.get(p), ours.get(p)
        if t is None and any(p.startswith(n + "/") for n in repeated):
            hidden += len(o)
            continue
        if t is None or o is None:
            problems.append(f"{p}: only {'vm2dmp' if t is None else 'dissect'} reports it")
            continue
        if len(t) == len(o):
            bad = [(a, k) for a, k in zip(t, o) if not same(a, k)]
            compared += len(t)
        elif len(t) == 1:
            bad = [] if any(same(t[0], k) for k in o) else [(t[0], o[0])]
            compared += 1
        else:
            bad = [(t, o)]
        for a, k in bad:
            problems.append(f"{p}: dissect {a!r:.80} vm2dmp {k!r:.120}")
    name = path.rsplit("/", 1)[-1]
    print(
        f"{name}: {compared} values compared, {len(problems)} differences"
        f" ({hidden} below repeated node names, which dissect collapses)"
    )
    for line in problems[:10]:
        print(f"  {line}")
    return not problems


def main():
    if len(sys.argv) < 3:
        print(__doc__)
        return 2
    binary, files = sys.argv[1], sys.argv[2:]
    results = [check(binary, f) for f in files]
    failed = results.count(False)
    print(f"check-keys-with-dissect: {len(results) - failed} files agree, {failed} differ")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
