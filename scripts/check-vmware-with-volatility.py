#!/usr/bin/env python3
"""Compare vm2dmp's VMware reader with volatility3's VmwareLayer, page by page.

Given a VMware state file (.vmss / .vmsn) with its .vmem beside it (same stem), and what
vm2dmp's reader saw of it (the `vmware_pages` example: OUT.raw with every RAM page, range
after range, and OUT.json listing the ranges and holes), this opens the same files with
volatility3's VMware layer and checks that:

* every page of every range reads the same through volatility3 as in OUT.raw;
* volatility3 maps nothing in the holes between ranges, nor the page past the last range;
* volatility3 maps no page that vm2dmp does not (its segments are the same ranges).

Volatility3 is driven programmatically: a FileLayer over the .vmem, then its own
VmwareStacker (which finds the .vmss or .vmsn beside the .vmem, as `vol -f x.vmem` does);
when the stacker declines, a FileLayer over the state file and a VmwareLayer with the two
as base and meta layer.

Run (throwaway venv, synthetic files):

    python3 -m venv /work/venv-vmw
    /work/venv-vmw/bin/pip install volatility3==2.28.2
    cargo run -p vm2dmp-vmware --example vmware_synth -- /tmp/vmw
    cargo run -p vm2dmp-vmware --example vmware_pages -- /tmp/vmw/current.vmss /tmp/vmw/ours-current
    /work/venv-vmw/bin/python scripts/check-vmware-with-volatility.py \\
        /tmp/vmw/current.vmss /tmp/vmw/ours-current

or for every synthetic file at once:

    /work/venv-vmw/bin/python scripts/check-vmware-with-volatility.py --synth /tmp/vmw

(`--synth DIR` runs both examples itself through cargo and checks every state file with a
.vmem beside it.) Exit status 0 when volatility3 agrees everywhere, 1 otherwise.
"""

import argparse
import json
import os
import pathlib
import subprocess
import sys

PAGE = 4096


def volatility_layer(state: pathlib.Path, vmem: pathlib.Path):
    """volatility3's VMware layer over `vmem` with `state` as metadata, and how it was made."""
    from volatility3.framework import contexts
    from volatility3.framework.layers import physical, vmware

    ctx = contexts.Context()
    ctx.config["vm2dmp.base.location"] = vmem.resolve().as_uri()
    ctx.layers.add_layer(physical.FileLayer(ctx, "vm2dmp.base", "base"))
    same_stem = vmem.with_suffix(state.suffix) == state
    if same_stem:
        stacked = vmware.VmwareStacker.stack(ctx, "base")
        if stacked is not None:
            ctx.layers.add_layer(stacked)
            return stacked, "VmwareStacker"
    ctx.config["vm2dmp.meta.location"] = state.resolve().as_uri()
    ctx.layers.add_layer(physical.FileLayer(ctx, "vm2dmp.meta", "meta"))
    ctx.config["vm2dmp.vmware.base_layer"] = "base"
    ctx.config["vm2dmp.vmware.meta_layer"] = "meta"
    layer = vmware.VmwareLayer(ctx, "vm2dmp.vmware", "vmware")
    ctx.layers.add_layer(layer)
    return layer, "VmwareLayer"


def check(state: pathlib.Path, ours: pathlib.Path, vmem: pathlib.Path = None) -> bool:
    vmem = vmem or state.with_suffix(".vmem")
    manifest = json.loads(ours.with_suffix(".json").read_text())
    raw_path = ours.with_suffix(".raw")
    try:
        layer, how = volatility_layer(state, vmem)
    except Exception as e:  # volatility3 refuses the file: report why
        print(f"{state.name}: volatility3 rejects it: {type(e).__name__}: {e}")
        return False
    ok = True
    pages = 0
    with open(raw_path, "rb") as raw:
        for r in manifest["ranges"]:
            raw.seek(r["offset"])
            for p in range(r["pages"]):
                gpa = r["gpa"] + p * PAGE
                want = raw.read(PAGE)
                if not layer.is_valid(gpa, PAGE):
                    print(f"{state.name}: {gpa:#x}: volatility3 does not map this page")
                    ok = False
                    continue
                got = layer.read(gpa, PAGE)
                if got != want:
                    print(f"{state.name}: {gpa:#x}: pages differ")
                    ok = False
                pages += 1
    probes = []
    for lo, hi in manifest["holes"]:
        probes += [lo, (lo + hi) // 2 & ~(PAGE - 1), hi - PAGE]
    probes.append(manifest["end"])
    for gpa in probes:
        if layer.is_valid(gpa, 1):
            print(f"{state.name}: {gpa:#x}: volatility3 maps an address vm2dmp calls a hole")
            ok = False
    ours_ranges = sorted((r["gpa"], r["gpa"] + r["pages"] * PAGE) for r in manifest["ranges"])
    theirs = sorted((s[0], s[0] + s[2]) for s in layer._segments)
    # volatility3 keeps one segment per region; adjacent regions may be merged by us.
    merged = []
    for lo, hi in theirs:
        if merged and merged[-1][1] == lo:
            merged[-1] = (merged[-1][0], hi)
        else:
            merged.append((lo, hi))
    ours_merged = []
    for lo, hi in ours_ranges:
        if ours_merged and ours_merged[-1][1] == lo:
            ours_merged[-1] = (ours_merged[-1][0], hi)
        else:
            ours_merged.append((lo, hi))
    if merged != ours_merged:
        print(f"{state.name}: ranges differ: volatility3 {merged}, vm2dmp {ours_merged}")
        ok = False
    verdict = "agree" if ok else "DISAGREE"
    print(
        f"{state.name}: {verdict} ({how}): {pages} pages in {len(manifest['ranges'])} ranges "
        f"compared, {len(probes)} hole addresses unmapped in both"
    )
    return ok


# Synthetic files volatility3 2.28.2 is known to refuse, and why (read off its vmware.py).
EXPECTED_REJECTIONS = {
    "plain.vmss": "no regionsCount tag: the layer looks the tag up unconditionally "
    "(crash and Volatility 2 read such a file as the whole memory at address 0)",
    "old.vmss": "magic 0xbed0bed0 (crash's CPTDUMP_OLD_MAGIC_NUMBER) is not in its list; "
    "it lists 0xbed2bed0 instead",
    "norestore.vmss": "magic 0xbad2bad2 (crash's CPTDUMP_NORESTORE_MAGIC_NUMBER) is not in its list",
}


def synth(directory: pathlib.Path) -> bool:
    root = pathlib.Path(__file__).resolve().parent.parent
    env = dict(os.environ)
    cargo = ["cargo", "run", "-q", "-p", "vm2dmp-vmware", "--example"]
    subprocess.run(cargo + ["vmware_synth", "--", str(directory)], cwd=root, env=env, check=True)
    ok = True
    for state in sorted(directory.iterdir()):
        if state.suffix not in (".vmss", ".vmsn"):
            continue
        ours = directory / f"ours-{state.stem}"
        subprocess.run(
            cargo + ["vmware_pages", "--", str(state), str(ours)], cwd=root, env=env, check=True
        )
        if not state.with_suffix(".vmem").exists():
            print(f"{state.name}: memory inside the state file: volatility3's layer needs a .vmem, not compared")
            continue
        expected = EXPECTED_REJECTIONS.get(state.name)
        if expected:
            try:
                volatility_layer(state, state.with_suffix(".vmem"))
            except Exception as e:
                print(f"{state.name}: volatility3 rejects it as expected ({type(e).__name__}: {e}): {expected}")
                continue
            print(f"{state.name}: volatility3 now accepts it; comparing")
        ok &= check(state, ours)
    return ok


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("state", nargs="?", type=pathlib.Path, help=".vmss or .vmsn")
    ap.add_argument("ours", nargs="?", type=pathlib.Path, help="OUT prefix of vmware_pages")
    ap.add_argument("--vmem", type=pathlib.Path, help="memory file (default: beside the state)")
    ap.add_argument("--synth", type=pathlib.Path, metavar="DIR", help="write and check the synthetic files")
    a = ap.parse_args()
    if a.synth:
        return 0 if synth(a.synth) else 1
    if not (a.state and a.ours):
        ap.error("STATE and OURS are needed (or --synth DIR)")
    return 0 if check(a.state, a.ours, a.vmem) else 1


if __name__ == "__main__":
    sys.exit(main())
