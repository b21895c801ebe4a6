#!/usr/bin/env python3
"""Open vm2dmp's dumps with readers nobody here wrote and compare every guest page.

Readers: volatility3's crash layers (WindowsCrashDump64Layer / WindowsCrashDump32Layer), the
kdmp-parser Python package (x64 only: it does not read 32-bit dumps), and LeechCore
(leechcorepyc), the acquisition layer MemProcFS opens dump files with (x64 full and bitmap,
x86 full; it reads a 32-bit bitmap dump as a raw file, so those are not given to it, and it
refuses files under 16 MiB).

Input: the manifest written by `cargo run -p vm2dmp --example make_check_dumps -- DIR`, which
lists each dump and the SHA-256 of every guest page (null for an all-zero page of a dump
written with --skip-zero: it must be absent or read as zeros).

Usage: check-with-volatility.py DIR/manifest.json
Exit status 0 when every reader returns every page exactly; prints one line per dump and reader.
"""

import hashlib
import json
import os
import sys

ZERO_PAGE = bytes(4096)

def volatility_layer(path, arch):
    from volatility3.framework import contexts
    from volatility3.framework.layers import crash, physical

    ctx = contexts.Context()
    ctx.config["base.location"] = "file://" + os.path.abspath(path)
    ctx.add_layer(physical.FileLayer(ctx, "base", "base"))
    ctx.config["crash.base_layer"] = "base"
    cls = crash.WindowsCrashDump64Layer if arch == "x64" else crash.WindowsCrashDump32Layer
    return cls(ctx, "crash", "crash")


def check_volatility(d):
    from volatility3.framework.exceptions import InvalidAddressException

    layer = volatility_layer(d["path"], d["arch"])
    bad = 0
    for pfn_hex, want in d["pages"].items():
        addr = int(pfn_hex, 16) << 12
        try:
            got = layer.read(addr, 4096)
        except InvalidAddressException:
            got = None
        if want is None:  # an all-zero page: left out, or stored as zeros
            if got is not None and got != ZERO_PAGE:
                bad += 1
        elif got is None or hashlib.sha256(got).hexdigest() != want:
            bad += 1
    for hole in d["holes"]:
        try:
            layer.read(int(hole, 16), 8)
            bad += 1  # a hole must not read
        except InvalidAddressException:
            pass
    if hex(layer.dtb) != d["dtb"]:
        print(f"  volatility3: DTB {hex(layer.dtb)} != {d['dtb']}")
        bad += 1
    return bad, f"dump type {layer.dump_type}"


def check_kdmp(d):
    import kdmp_parser

    dmp = kdmp_parser.KernelDumpParser(d["path"])
    bad = 0
    for pfn_hex, want in d["pages"].items():
        page = dmp.read_physical_page(int(pfn_hex, 16) << 12)
        got = None if page is None else bytes(page)
        if want is None:  # an all-zero page: left out, or stored as zeros
            if got is not None and got != ZERO_PAGE:
                bad += 1
        elif got is None or hashlib.sha256(got).hexdigest() != want:
            bad += 1
    if hex(dmp.context.Rip) != d["rip"]:
        print(f"  kdmp-parser: RIP {hex(dmp.context.Rip)} != {d['rip']}")
        bad += 1
    return bad, f"{dmp.type.name}, {len(dmp.pages)} pages"


def check_leechcore(d):
    import leechcorepyc

    lc = leechcorepyc.LeechCore("file://" + os.path.abspath(d["path"]))
    ranges = [(r["base"], r["base"] + r["size"]) for r in lc.memmap]
    if not any(r["offset"] for r in lc.memmap):
        # Offset 0 everywhere: read as a raw file, not as a crash dump.
        return len(d["pages"]), "not recognised as a crash dump"

    def mapped(addr):
        return any(lo <= addr < hi for lo, hi in ranges)

    bad = 0
    for pfn_hex, want in d["pages"].items():
        addr = int(pfn_hex, 16) << 12
        if not mapped(addr):
            if want is not None:  # only an all-zero page left out may be missing
                bad += 1
            continue
        got = lc.read(addr, 4096)
        if want is None:
            if got != ZERO_PAGE:
                bad += 1
        elif hashlib.sha256(got).hexdigest() != want:
            bad += 1
    for hole in d["holes"]:
        if mapped(int(hole, 16)):
            bad += 1  # a hole must not be mapped
    return bad, f"{len(ranges)} mapped ranges"


def main():
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    with open(sys.argv[1]) as f:
        manifest = json.load(f)
    failed = 0
    checks = 0
    for d in manifest["dumps"]:
        name = os.path.basename(d["path"])
        n = len(d["pages"])
        readers = [("volatility3", check_volatility)]
        if d["arch"] == "x64":
            readers.append(("kdmp-parser", check_kdmp))
        if d["arch"] == "x64" or not d["bitmap"]:
            readers.append(("LeechCore", check_leechcore))
        for reader, fn in readers:
            checks += 1
            try:
                bad, what = fn(d)
            except Exception as e:  # a reader rejecting the file is a failure to report
                bad, what = n, f"rejected: {e!r}"
            status = "ok" if bad == 0 else f"{bad} BAD"
            print(f"{name}: {reader}: {n} guest pages, {what}: {status}")
            failed += bad != 0
    print(f"check-with-volatility: {checks - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
