"""The volatility3 layer: chosen by volatility3's own automagic for Hyper-V files, read page
for page against the saved state, scans clipped to RAM, metadata the Windows stacker uses."""

import hashlib
import os
import pathlib
import subprocess
import sys

import pytest

volatility3 = pytest.importorskip("volatility3")

from volatility3 import framework, plugins  # noqa: E402
from volatility3.framework import automagic, contexts, exceptions  # noqa: E402
from volatility3.framework.automagic import windows as win_automagic  # noqa: E402
from volatility3.framework.layers import intel, scanners  # noqa: E402
from volatility3.plugins import banners  # noqa: E402

import vm2dmp  # noqa: E402
from vm2dmp import volatility as vlayer  # noqa: E402

PAGE = 4096
framework.require_interface_version(2, 0, 0)


def stack_with_automagic(path):
    """What `vol -f PATH banners.Banners` does before running the plugin: volatility3's
    automagic (LayerStacker first) fills the plugin's memory layer. Returns the context and
    the layers it made."""
    framework.import_files(plugins, True)  # as vol does: loads the plugin folders (our shim)
    ctx = contexts.Context()
    chosen = automagic.choose_automagic(automagic.available(ctx), banners.Banners)
    ctx.config["automagic.LayerStacker.single_location"] = pathlib.Path(path).resolve().as_uri()
    automagic.run(chosen, ctx, banners.Banners, "plugins")
    return ctx


def our_layer(ctx):
    found = [ctx.layers[n] for n in ctx.layers if isinstance(ctx.layers[n], vlayer.Vm2dmpLayer)]
    assert len(found) == 1, list(ctx.layers)
    return found[0]


@pytest.mark.parametrize("name", ["x64.vmrs", "x64.vsv", "x64.bin", "x86pae.vmrs", "bios.vmrs"])
def test_automagic_stacks_our_layer_and_reads_every_page(synth, manifest, name):
    ctx = stack_with_automagic(synth / name)
    layer = our_layer(ctx)
    assert ctx.config["plugins.Banners.primary"] == layer.name
    want = manifest[name]["pages"]
    got = {}
    for start, end in layer.ranges:
        for gpa in range(start, end, 1 << 20):
            data = layer.read(gpa, min(1 << 20, end - gpa))
            for off in range(0, len(data), PAGE):
                got[(gpa + off) // PAGE] = hashlib.sha256(data[off:off + PAGE]).hexdigest()
    assert got == want


@pytest.mark.parametrize("name", ["test_file.VMRS", "test_file.vsv", "test_file.bin"])
def test_automagic_on_the_sample(sample, name):
    ctx = stack_with_automagic(sample / name)
    layer = our_layer(ctx)
    state = vm2dmp.open(sample / name)
    assert layer.maximum_address == state.ranges[-1][1] - 1
    for gpa in range(0, state.ram_bytes, 97 * PAGE):
        assert layer.read(gpa, PAGE) == state.read_phys(gpa, PAGE)
    assert layer.metadata.get("page_map_offset") is None  # no kernel in the sample


def test_formats_volatility_reads_are_left_alone(synth, monkeypatch):
    ctx = stack_with_automagic(synth / "vmware.vmss")
    assert not any(isinstance(ctx.layers[n], vlayer.Vm2dmpLayer) for n in ctx.layers)
    monkeypatch.setenv("VM2DMP_VOLATILITY_FORMATS", "all")
    ctx = stack_with_automagic(synth / "vmware.vmss")
    assert our_layer(ctx)


def hand_made(path):
    """A layer built by hand in a context, as scripts do."""
    ctx = contexts.Context()
    ctx.config["memory.location"] = pathlib.Path(path).resolve().as_uri()
    layer = vlayer.Vm2dmpLayer(ctx, "memory", "memory")
    ctx.add_layer(layer)
    return ctx, layer


def test_hand_made_context(synth, manifest):
    ctx, layer = hand_made(synth / "x64.vmrs")
    want = manifest["x64.vmrs"]["pages"]
    for pfn, digest in want.items():
        assert hashlib.sha256(ctx.layers["memory"].read(pfn * PAGE, PAGE)).hexdigest() == digest
    (s0, e0), (s1, e1) = layer.ranges[:2]
    assert layer.is_valid(s0, e0 - s0) and not layer.is_valid(e0 - 1, 2)
    assert not layer.is_valid(e0) and layer.is_valid(s1)
    with pytest.raises(exceptions.InvalidAddressException) as e:
        layer.read(e0 - 16, 32)
    assert e.value.invalid_address == e0
    padded = layer.read(e0 - 16, 32 + (s1 - e0), pad=True)
    assert padded[:16] == layer.read(e0 - 16, 16)
    assert padded[16:16 + (s1 - e0)] == bytes(s1 - e0)
    assert padded[-16:] == layer.read(s1, 16)
    assert list(layer.mapping(e0 - 16, 32 + (s1 - e0), ignore_errors=True)) == [
        (e0 - 16, 16, e0 - 16, 16, "memory"),
        (s1, 16, s1, 16, "memory"),
    ]
    with pytest.raises(exceptions.InvalidAddressException):
        list(layer.mapping(e0 - 16, 32))
    # The stacked configuration names our class, so volatility3 can build it again.
    assert layer.build_configuration()["class"] == "vm2dmp.volatility.Vm2dmpLayer"


def test_scan_is_clipped_to_ram(synth):
    ctx, layer = hand_made(synth / "x64.vmrs")
    # Needles just after each hole: a scan that dropped every chunk touching a hole would miss
    # them (the default chunk spans the holes of this guest).
    needles = {}
    for start, end in layer.ranges[1:]:
        needles[start] = layer.read(start, 32)
    for start, needle in needles.items():
        hits = list(layer.scan(ctx, scanners.BytesScanner(needle)))
        assert start in hits
    assert sum(1 for _ in layer._scan_iterator(scanners.BytesScanner(b"x"), [(0, layer.maximum_address)])) >= len(layer.ranges)


class FakeState:
    def __init__(self, answer):
        self.answer = answer

    def kernel_dtb(self):
        return self.answer


def test_metadata_only_for_a_verified_kernel_root():
    assert vlayer._metadata(FakeState(None)) == {}
    assert vlayer._metadata(FakeState((0x1AA000, "Long4"))) == {
        "os": "Windows",
        "architecture": "Intel64",
        "page_map_offset": 0x1AA000,
    }
    pae = vlayer._metadata(FakeState((0x185000, "Pae")))
    assert pae["architecture"] == "Intel32" and pae["pae"] is True
    assert vlayer._metadata(FakeState((0x185000, "Bit32")))["pae"] is False
    assert vlayer._metadata(FakeState((0x1AA000, "Long5"))) == {}


def test_windows_stacker_takes_our_page_map_offset(synth):
    """With the metadata a kernel found by vm2dmp gives, volatility3's Windows stacker builds
    its Intel layer on ours from that root without scanning."""
    ctx, layer = hand_made(synth / "x64.vmrs")
    layer._metadata = vlayer._metadata(FakeState((0x1AA000, "Long4")))
    stacked = win_automagic.WindowsIntelStacker.stack(ctx, layer.name)
    assert isinstance(stacked, intel.WindowsIntel32e)
    assert stacked.config["page_map_offset"] == 0x1AA000
    assert stacked.config["memory_layer"] == layer.name


def run_vol(*args):
    vol = pathlib.Path(sys.executable).with_name("vol")
    if not vol.exists():
        pytest.skip("no vol command beside this Python")
    return subprocess.run([str(vol), *args], capture_output=True, text=True, timeout=600)


def test_vol_command_line(synth):
    """`vol -f x64.vmrs banners.Banners` stacks our layer with no extra flags (the wheel's
    shim), and the `-p` folder works as well."""
    shim = pathlib.Path(volatility3.__file__).parent / "plugins" / "vm2dmp_layer.py"
    if not shim.exists():
        pytest.skip("the volatility3 plugins shim is not installed here")
    out = run_vol("-vvv", "-f", str(synth / "x64.vmrs"), "banners.Banners")
    assert "Stacked layers: ['Vm2dmpLayer" in out.stderr, out.stderr[-3000:]
    out = run_vol("-vvv", "-p", vlayer.PLUGIN_DIR, "-f", str(synth / "x64.vsv"), "banners.Banners")
    assert "Stacked layers: ['Vm2dmpLayer" in out.stderr, out.stderr[-3000:]


def test_scan_with_process_parallelism(synth, monkeypatch):
    """volatility3's process parallelism pickles the layer into worker processes: the state
    re-opens there by path."""
    from volatility3.framework import constants

    ctx, layer = hand_made(synth / "x64.vmrs")
    needle = layer.read(layer.ranges[1][0], 32)
    monkeypatch.setattr(constants, "PARALLELISM", constants.Parallelism.Off)
    serial = list(layer.scan(ctx, scanners.BytesScanner(needle)))
    monkeypatch.setattr(constants, "PARALLELISM", constants.Parallelism.Multiprocessing)
    parallel = list(layer.scan(ctx, scanners.BytesScanner(needle)))
    assert layer.ranges[1][0] in serial
    assert sorted(parallel) == sorted(serial)


@pytest.mark.parametrize("name,layer_class", [("win-x64.vmrs", "WindowsIntel32e"), ("win-pae.vmrs", "WindowsIntelPAE")])
def test_kernel_root_handed_to_the_windows_stacker(windows_guests, name, layer_class):
    """A guest whose kernel vm2dmp finds: the layer publishes the System process's root, and
    volatility3's stackers build the Windows Intel layer from it (no scan), through which the
    kernel image reads."""
    from volatility3.framework.automagic import stacker
    from volatility3.framework.layers import physical

    folder, truth = windows_guests
    want = truth[name]
    state = vm2dmp.open(folder / name)
    assert state.kernel_dtb() == (want["system_dtb"], want["paging"])
    kernel = state.kernel()
    assert kernel["found"] and kernel["kernel_base"]["value"] == want["kernel_base"]

    framework.import_files(plugins, True)
    ctx = contexts.Context()
    ctx.config["FileLayer.location"] = (folder / name).resolve().as_uri()
    ctx.add_layer(physical.FileLayer(ctx, "FileLayer", "FileLayer"))
    names = stacker.LayerStacker.stack_layer(ctx, "FileLayer")
    top, ours = ctx.layers[names[0]], ctx.layers[names[1]]
    assert isinstance(ours, vlayer.Vm2dmpLayer)
    assert ours.metadata["os"] == "Windows"
    assert ours.metadata["page_map_offset"] == want["system_dtb"]
    assert type(top).__name__ == layer_class
    assert top.config["page_map_offset"] == want["system_dtb"]
    assert top.read(want["kernel_base"], 2) == b"MZ"


def test_real_qemu_dumps(qemu_dumps):
    """volatility3 keeps its own ELF layer for QEMU's ELF core; our layer takes the
    kdump-compressed file of the same guest (volatility3 has no layer for it) and reads what
    vm2dmp reads from the ELF core."""
    ctx = stack_with_automagic(qemu_dumps / "ovmf.elf")
    assert not any(isinstance(ctx.layers[n], vlayer.Vm2dmpLayer) for n in ctx.layers)
    ctx = stack_with_automagic(qemu_dumps / "ovmf.kdump-zlib")
    layer = our_layer(ctx)
    elf = vm2dmp.open(qemu_dumps / "ovmf.elf")
    assert layer.ranges == elf.ranges
    compared = 0
    for start, end in layer.ranges:
        for gpa in range(start, end, 61 * PAGE):
            assert layer.read(gpa, PAGE) == elf.read_phys(gpa, PAGE)
            compared += 1
    assert compared > 1000
    raw = vm2dmp.open(
        qemu_dumps / "ovmf.raw",
        memory_map="0x0-0xfffffff,0x30000000-0x3fffffff,0x100000000-0x11fffffff",
    )
    assert raw.format == "raw" and raw.vcpus == []
    for gpa in (0x1000, 0x30000000, 0x100000000):
        assert raw.read_phys(gpa, PAGE) == elf.read_phys(gpa, PAGE)
