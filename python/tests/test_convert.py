"""convert + DumpFile + verify from Python; progress callbacks and their exceptions."""

import pytest

import vm2dmp

PAGE = 4096


@pytest.mark.parametrize("fmt,dump_type", [("full", 1), ("bitmap", 5)])
def test_convert_then_read_and_verify(tmp_path, synth, fmt, dump_type):
    state = vm2dmp.open(synth / "x64.vmrs")
    out = tmp_path / "x64.dmp"
    calls = []
    report = state.convert(out, format=fmt, progress=lambda done, total: calls.append((done, total)))
    assert report["dump_type"] == dump_type
    assert report["pages_written"] == state.ram_bytes // PAGE
    assert calls and calls[-1][0] == calls[-1][1] == state.ram_bytes
    dump = vm2dmp.DumpFile(out)
    assert dump.dump_type == dump_type
    assert dump.architecture == "X64"
    assert dump.present_pages == state.ram_bytes // PAGE
    header = dump.header()
    assert header["directory_table_base"] == report["directory_table_base"]
    assert header["comment"].startswith("vm2dmp ")
    for start, end in state.ranges:
        for gpa in (start, end - PAGE, (start + end) // 2 & ~(PAGE - 1)):
            assert dump.read_phys(gpa, PAGE) == state.read_phys(gpa, PAGE)
    assert not dump.has_page(state.ranges[0][1] // PAGE)
    with pytest.raises(vm2dmp.DumpError):
        dump.read_phys(state.ranges[0][1], 16)
    result = vm2dmp.verify(out, synth / "x64.vmrs")
    assert result["ok"] and result["pages_compared"] == state.ram_bytes // PAGE
    assert state.verify(out)["ok"]
    assert vm2dmp.verify(out, state)["mismatched_pages"] == 0


def test_skip_zero_and_existing_output(tmp_path, synth):
    state = vm2dmp.open(synth / "x86pae.vmrs")
    out = tmp_path / "pae.dmp"
    report = state.convert(out, skip_zero=True)
    assert report["dump_type"] == 5 and report["pages_skipped"] > 0
    assert vm2dmp.DumpFile(out).architecture == "X86"
    with pytest.raises(vm2dmp.OutputExistsError) as e:
        state.convert(out)
    assert isinstance(e.value, FileExistsError) and e.value.path == str(out)
    assert state.convert(out, force=True, format="full")["dump_type"] == 1
    assert vm2dmp.verify(out, state)["ok"]
    with pytest.raises(ValueError):
        state.convert(out, format="triage", force=True)


def test_progress_exception_cancels_and_propagates(tmp_path, synth):
    state = vm2dmp.open(synth / "x64.vmrs")
    out = tmp_path / "cancelled.dmp"

    class Stop(Exception):
        pass

    def progress(done, total):
        if 0 < done < total:
            raise Stop(done)

    with pytest.raises(Stop):
        state.convert(out, progress=progress)
    assert not out.exists()
    assert not list(tmp_path.iterdir())


def test_dumpfile_errors(tmp_path):
    bad = tmp_path / "bad.dmp"
    bad.write_bytes(b"PAGEDU64" + b"\0" * 100)
    with pytest.raises(vm2dmp.DumpError) as e:
        vm2dmp.DumpFile(bad)
    assert e.value.path == str(bad)
    with pytest.raises(vm2dmp.InputError):
        vm2dmp.DumpFile(tmp_path / "none.dmp")


def test_ctrl_c_cancels(tmp_path, synth):
    import signal
    import threading

    state = vm2dmp.open(synth / "x64.vmrs")
    out = tmp_path / "interrupted.dmp"
    handled = threading.Event()

    def on_sigint(signum, frame):
        # Python runs this on the main thread, which waits in convert() for the conversion
        # and looks for signals while it waits; the KeyboardInterrupt raised here is what
        # cancels the conversion.
        handled.set()
        raise KeyboardInterrupt

    def progress(done, total):
        if done == 0:
            signal.raise_signal(signal.SIGINT)
            # The conversion waits here until the main thread has taken the signal: no
            # fixed delay, so a slow machine cannot let it finish first.
            handled.wait()

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        with pytest.raises(KeyboardInterrupt):
            state.convert(out, progress=progress)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert handled.is_set()
    assert not out.exists()
