"""The reader from Python: pages and registers equal the Rust reader's, errors carry their
facts, states pickle and are shared between threads."""

import concurrent.futures
import hashlib
import pickle
import shutil

import pytest

import vm2dmp

PAGE = 4096


def test_sample_vmrs_matches_microsoft(sample, expected):
    state = vm2dmp.open(sample / "test_file.VMRS")
    assert state.format == "hyperv"
    assert state.kind == "Hyper-V saved state"
    assert state.ranges == [(0, 64512 * PAGE)]
    assert state.ram_bytes == expected["dll_known_answers"]["guest_raw_saved_memory"]["size_bytes"]
    assert len(state.vcpus) == 4
    assert [v.rcx & 0xFFFFFFFF for v in state.vcpus] == [4, 0, 0, 0]
    regs = expected["derived"]["registers"]["vmrs"]
    for vp, want in zip(state.vcpus, regs):
        assert vp.index == want["vp"]
        for name in ("rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi", "rip", "rflags",
                     "cr0", "cr3", "cr4", "efer", "dr6", "dr7"):
            assert getattr(vp, name) == int(want[name], 16), name
        assert vp.architecture == "X86"
        assert vp.paging_mode == "Bit32"
    assert state.vcpus[0].mode == "protected mode, paging off" or "mode" in state.vcpus[0].mode
    data = state.read_phys(0xC0FFE, 12)
    assert data.hex(" ") == expected["derived"]["ram"]["bytes_at_gpa_0xC0FFE_len12_hex"]
    page = state.read_phys(0xC0 * PAGE, PAGE)
    assert hashlib.sha256(page).hexdigest() == expected["derived"]["ram"]["page_0xC0_sha256"]
    whole = hashlib.sha256()
    for start, end in state.ranges:
        for gpa in range(start, end, 1 << 20):
            whole.update(state.read_phys(gpa, min(1 << 20, end - gpa)))
    assert whole.hexdigest() == expected["derived"]["ram"]["vmrs_raw_saved_memory_sha256"]


@pytest.mark.parametrize("name", ["test_file.vsv", "test_file.bin"])
def test_sample_vsv_bin_pair(sample, expected, name):
    state = vm2dmp.open(sample / name)
    assert [p.name for p in state.files] == ["test_file.vsv", "test_file.bin"]
    assert len(state.vcpus) == 4
    want = expected["derived"]["bin_vsv_equivalents"]["u32_le_values_at_gpa_0xC0FFE"]
    data = state.read_phys(0xC0FFE, 12)
    assert [int.from_bytes(data[i:i + 4], "little") for i in (0, 4, 8)] == want
    whole = hashlib.sha256()
    for gpa in range(0, state.ram_bytes, 1 << 20):
        whole.update(state.read_phys(gpa, 1 << 20))
    assert whole.hexdigest() == expected["derived"]["ram"]["bin_raw_saved_memory_sha256"]


@pytest.mark.parametrize(
    "name", ["x64.vmrs", "x64.vsv", "x64.bin", "x86pae.vmrs", "bios.vmrs", "vmware.vmss"]
)
def test_synthetic_pages_and_registers_equal_rust_reader(synth, manifest, name):
    want = manifest[name]
    state = vm2dmp.open(synth / name)
    pages = {}
    for start, end in state.ranges:
        # Read a range 1 MiB at a time and hash each page.
        for gpa in range(start, end, 1 << 20):
            data = state.read_phys(gpa, min(1 << 20, end - gpa))
            for off in range(0, len(data), PAGE):
                pages[(gpa + off) // PAGE] = hashlib.sha256(data[off:off + PAGE]).hexdigest()
    assert pages == want["pages"]
    boot = state.vcpus[0]
    assert boot.cr3 == want["dtb"]
    assert boot.rip == want["rip"]
    assert boot.architecture == ("X64" if want["arch"] == "x64" else "X86")
    regs = boot.to_dict()
    assert regs["rip"] == boot.rip and regs["cr3"] == boot.cr3 and "cs" in regs
    # Every byte after the last RAM page is a hole, and so is the first byte of each gap.
    for _, end in state.ranges:
        if not state.is_ram(end):
            with pytest.raises(vm2dmp.HoleError) as e:
                state.read_phys(end - 2, 4)
            assert e.value.gpa == end
            assert isinstance(e.value, vm2dmp.Error)


def test_synthetic_page_count(manifest):
    """All six inputs together: the number of pages the tests above compare."""
    total = sum(len(m["pages"]) for m in manifest.values())
    assert total > 30000


def test_errors_carry_their_facts(tmp_path, synth):
    with pytest.raises(vm2dmp.InputError) as e:
        vm2dmp.open(tmp_path / "missing.vmrs")
    assert isinstance(e.value, OSError) and e.value.errno == 2
    assert e.value.path.endswith("missing.vmrs")

    garbage = tmp_path / "garbage.img"
    garbage.write_bytes(b"\x7fXYZ" * 4096)
    with pytest.raises(vm2dmp.CorruptError) as e:
        vm2dmp.open(garbage)
    assert e.value.structure == "file signature"
    assert e.value.offset == 0
    assert e.value.path == str(garbage)

    # A truncated copy: the structures past the cut are named with their offsets.
    truncated = tmp_path / "truncated.vmrs"
    data = (synth / "x64.vmrs").read_bytes()
    truncated.write_bytes(data[: len(data) // 3])
    with pytest.raises(vm2dmp.CorruptError) as e:
        state = vm2dmp.open(truncated)
        for start, end in state.ranges:
            for gpa in range(start, end, 1 << 20):
                state.read_phys(gpa, min(1 << 20, end - gpa))
    err = e.value
    assert err.path == str(truncated)
    assert err.structure and isinstance(err.offset, int)
    assert str(err).startswith(str(truncated))
    assert pickle.loads(pickle.dumps(err)).structure == err.structure

    vsv = tmp_path / "lonely.vsv"
    shutil.copy(synth / "x64.vsv", vsv)
    with pytest.raises(vm2dmp.MissingFileError) as e:
        vm2dmp.open(vsv)
    assert isinstance(e.value, vm2dmp.InputError)


def test_pickle_round_trip(synth):
    state = vm2dmp.open(synth / "x64.vsv", bin=synth / "x64.bin")
    again = pickle.loads(pickle.dumps(state))
    assert isinstance(again, vm2dmp.SavedState)
    assert again.path == state.path and again.files == state.files
    assert again.ranges == state.ranges
    assert again.read_phys(0x1000, PAGE) == state.read_phys(0x1000, PAGE)
    raw = vm2dmp.open(synth / "x64.bin", raw=True, memory_map=[(0, 0x100000)], cr3=0x1AA000)
    raw2 = pickle.loads(pickle.dumps(raw))
    assert raw2.format == "raw" and raw2.ranges == [(0, 0x100000)]


def test_threads_share_a_state(synth, manifest):
    state = vm2dmp.open(synth / "x64.vmrs")
    want = manifest["x64.vmrs"]["pages"]
    pfns = sorted(want)

    def work(i):
        bad = 0
        for pfn in pfns[i::8]:
            if hashlib.sha256(state.read_phys(pfn * PAGE, PAGE)).hexdigest() != want[pfn]:
                bad += 1
        return bad

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        assert sum(pool.map(work, range(8))) == 0


def test_summary_and_kernel(sample, synth):
    s = vm2dmp.open(sample / "test_file.VMRS").summary()
    assert s["format"] == "Vmrs" or s["format"]
    assert s["vp_count"] == 4 and len(s["vcpus"]) == 4
    assert "encoding" in s and "kernel" in s
    assert s["vcpus"][0]["rip"] == "0x5ba9"
    k = vm2dmp.open(sample / "test_file.VMRS").kernel()
    assert k["found"] is False and k["notes"]
    other = vm2dmp.open(synth / "vmware.vmss").summary()
    assert set(other) == {"format", "kind", "files", "ram_bytes", "ram_ranges", "vcpus", "notes", "kernel"}


def test_summary_equals_cli_json(sample, synth):
    import json
    import os
    import pathlib
    import subprocess

    target = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", pathlib.Path(__file__).parents[2] / "target"))
    cli = next((p for p in (target / "debug" / "vm2dmp", target / "release" / "vm2dmp") if p.is_file()), None)
    if cli is None:
        pytest.skip("the vm2dmp command is not built")
    for path in (sample / "test_file.VMRS", synth / "vmware.vmss"):
        out = subprocess.run([cli, "info", "--json", str(path)], capture_output=True, check=True)
        assert vm2dmp.open(path).summary() == json.loads(out.stdout)
