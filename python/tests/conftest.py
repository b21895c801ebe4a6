"""Shared fixtures: the bundled Hyper-V sample and synthetic inputs written by the Rust
example `make_check_dumps` (with a manifest of every guest page's SHA-256 as the Rust reader
reads it)."""

import json
import os
import pathlib
import shutil
import subprocess

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
SAMPLE = REPO / "testdata" / "hyperv-sample"


@pytest.fixture(scope="session")
def sample():
    """The folder of the bundled Hyper-V sample (test_file.VMRS, .vsv, .bin, expected.json)."""
    return SAMPLE


@pytest.fixture(scope="session")
def expected(sample):
    """Microsoft's and an independent reader's answers about the sample."""
    return json.loads((sample / "expected.json").read_text())


def written_by_example(env, default, marker, package, example, what):
    """The folder $env names, else target/<default>; when it lacks `marker`, the Rust example
    `example` of `package` writes it now (the test is skipped without cargo)."""
    given = os.environ.get(env)
    target = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    folder = pathlib.Path(given) if given else target / default
    if not (folder / marker).is_file():
        if shutil.which("cargo") is None:
            pytest.skip(f"no {what} and no cargo to write them")
        subprocess.run(
            ["cargo", "run", "-q", "-p", package, "--example", example, "--", str(folder)],
            cwd=REPO,
            check=True,
        )
    return folder


@pytest.fixture(scope="session")
def synth():
    """Folder of synthetic inputs and manifest.json: $VM2DMP_SYNTH_DIR when set (CI writes
    it once), else written now with cargo."""
    return written_by_example(
        "VM2DMP_SYNTH_DIR", "py-synth", "manifest.json", "vm2dmp", "make_check_dumps", "synthetic inputs"
    )


@pytest.fixture(scope="session")
def manifest(synth):
    """Guest pages of each synthetic input as the Rust reader reads them:
    {input file name: {"pages": {pfn: sha256}, "dtb": int, "rip": int, "arch": str}}."""
    data = json.loads((synth / "manifest.json").read_text())
    by_dump = {pathlib.Path(d["path"]).name: d for d in data["dumps"]}
    inputs = {
        "x64.vmrs": "x64-full.dmp",
        "x64.vsv": "x64-full.dmp",
        "x64.bin": "x64-full.dmp",
        "x86pae.vmrs": "x86pae-full.dmp",
        "bios.vmrs": "bios-full.dmp",
        "vmware.vmss": "vmware-full.dmp",
    }
    out = {}
    for name, dump in inputs.items():
        d = by_dump[dump]
        out[name] = {
            "pages": {int(k, 16): v for k, v in d["pages"].items()},
            "dtb": int(d["dtb"], 16),
            "rip": int(d["rip"], 16),
            "arch": d["arch"],
        }
    return out


@pytest.fixture(scope="session")
def windows_guests():
    """Synthetic Windows-like guests (.vmrs) whose kernel vm2dmp finds, and truth.json:
    $VM2DMP_WINDOWS_GUESTS_DIR when set, else written now with cargo (the example
    make_windows_guests of crates/vm2dmp-python)."""
    folder = written_by_example(
        "VM2DMP_WINDOWS_GUESTS_DIR",
        "py-windows-guests",
        "truth.json",
        "vm2dmp-python",
        "make_windows_guests",
        "synthetic Windows guests",
    )
    return folder, json.loads((folder / "truth.json").read_text())


@pytest.fixture(scope="session")
def qemu_dumps():
    """Real QEMU dumps of one stopped OVMF guest (scripts/capture-qemu-dumps.sh, which CI runs
    into target/qemu-dumps): $VM2DMP_QEMU_DUMPS_DIR, else $CARGO_TARGET_DIR/qemu-dumps."""
    given = os.environ.get("VM2DMP_QEMU_DUMPS_DIR")
    target = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    folder = pathlib.Path(given) if given else target / "qemu-dumps"
    if not (folder / "ovmf.elf").is_file() or not (folder / "ovmf.kdump-zlib").is_file():
        pytest.skip("no QEMU dumps (scripts/capture-qemu-dumps.sh writes them)")
    return folder
