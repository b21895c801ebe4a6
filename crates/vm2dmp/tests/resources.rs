//! Hostile inputs that are small on disk but ask for a lot of memory or work: opening them must
//! stay within a budget proportional to the input. Memory is measured with a counting global
//! allocator (peak bytes live at once), one test at a time.
//! It is a test binary of its own: its counting global allocator measures the whole process,
//! so no other test may run beside it.
//!
//! Tests marked `#[ignore]` (none at present) describe limits the reader does not enforce yet; each names the
//! check that is missing. Run them with `cargo test -p vm2dmp --test resources --
//! --ignored`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use vm2dmp::SavedState;

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(n: usize) {
    let now = LIVE.fetch_add(n, Ordering::Relaxed) + n;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

// SAFETY: every call is forwarded to the system allocator unchanged; only sizes are counted.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(l) };
        if !p.is_null() {
            grew(l.size());
        }
        p
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(l) };
        if !p.is_null() {
            grew(l.size());
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) };
        LIVE.fetch_sub(l.size(), Ordering::Relaxed);
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        let q = unsafe { System.realloc(p, l, new) };
        if !q.is_null() {
            LIVE.fetch_sub(l.size(), Ordering::Relaxed);
            grew(new);
        }
        q
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// One measurement at a time: the counters are process-wide.
static SERIAL: Mutex<()> = Mutex::new(());

/// Peak bytes allocated while `f` runs, above what was live before.
fn peak_during<R>(f: impl FnOnce() -> R) -> (R, usize) {
    let base = LIVE.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let r = f();
    (r, PEAK.load(Ordering::Relaxed) - base)
}

const MIB: usize = 1 << 20;

fn sample(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/hyperv-sample")
        .join(name)
}

fn put_u16(d: &mut [u8], off: usize, v: u16) {
    d[off..off + 2].copy_from_slice(&v.to_le_bytes());
}
fn put_u32(d: &mut [u8], off: usize, v: u32) {
    d[off..off + 4].copy_from_slice(&v.to_le_bytes());
}
fn put_u64(d: &mut [u8], off: usize, v: u64) {
    d[off..off + 8].copy_from_slice(&v.to_le_bytes());
}
fn fix_crc(d: &mut [u8], start: usize, len: usize, crc_at: usize) {
    put_u32(d, start + crc_at, 0);
    let c = crc32fast::hash(&d[start..start + len]);
    put_u32(d, start + crc_at, c);
}

fn open_bytes(name: &str, main: Vec<u8>, bin: Option<Vec<u8>>) -> Result<SavedState, String> {
    SavedState::from_bytes(Path::new(name), main, bin).map_err(|e| e.to_string())
}

/// Positive control: the real sample opens and reads within a few MiB beyond its own bytes.
#[test]
fn real_sample_opens_within_budget() {
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    for name in ["test_file.VMRS", "test_file.vsv"] {
        let (state, peak) = peak_during(|| {
            let s = SavedState::open(sample(name)).unwrap();
            let mut b = [0u8; 4096];
            s.read_phys(0xC0000, &mut b).unwrap();
            s.summary().unwrap();
            s
        });
        assert!(peak < 16 * MIB, "{name}: {} MiB", peak / MIB);
        drop(state);
    }
}

/// `n` pending replay-log entries that all copy the same `size` bytes of log data. The reader
/// keeps an owned copy per entry (hvs.rs `apply_replay_log`), so memory grows as `n * size`
/// while the file grows by `n * 28 + size`. Missing check: entries' data ranges overlapping
/// each other (or total pending bytes above the log size).
fn shared_replay_data(n: usize, size: usize) -> Vec<u8> {
    let mut d = std::fs::read(sample("test_file.VMRS")).unwrap();
    let log = d.len();
    let header_area = (34 + n * 28).next_multiple_of(4096);
    let log_size = header_area + size;
    d.resize(log + log_size, 0);
    // The data equals the bytes at the destination, so replaying changes nothing.
    let dest = 0x2000;
    let data = d[dest..dest + size].to_vec();
    d[log + header_area..log + header_area + size].copy_from_slice(&data);
    let data_crc = crc32fast::hash(&data);
    put_u32(&mut d, log, 0x0111_0003);
    put_u32(&mut d, log + 8, n as u32);
    put_u32(&mut d, log + 13, n as u32);
    fix_crc(&mut d, log, 34, 4);
    for i in 0..n {
        let e = log + 34 + i * 28;
        put_u64(&mut d, e, dest as u64);
        put_u32(&mut d, e + 8, size as u32);
        put_u64(&mut d, e + 12, header_area as u64);
        put_u32(&mut d, e + 24, data_crc);
        fix_crc(&mut d, e, 28, 20);
    }
    for h in [0, 4096] {
        put_u64(&mut d, h + 26, log as u64);
        put_u64(&mut d, h + 34, log_size as u64);
        put_u32(&mut d, h + 42, header_area as u32);
        fix_crc(&mut d, h, 46, 4);
    }
    d
}

#[test]
fn replay_entries_sharing_data_are_refused() {
    // Entries sharing their data in the log are refused before anything is copied; one entry
    // alone replays.
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let e = open_bytes("dirty.vmrs", shared_replay_data(4, 4096), None)
        .err()
        .unwrap();
    assert!(
        e.contains("replay log entry") && e.contains("overlap"),
        "{e}"
    );
    let state = open_bytes("dirty.vmrs", shared_replay_data(1, 4096), None).unwrap();
    assert_eq!(state.replay_log().pending_entries, 1);
    assert!(state.replay_log().replayed);
}

#[test]
fn replay_entries_sharing_data_do_not_multiply_memory() {
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    // 4,000 entries of 64 KiB: about 170 KiB more file, 250 MiB of copies.
    let d = shared_replay_data(4000, 64 * 1024);
    let len = d.len();
    let (r, peak) = peak_during(move || open_bytes("dirty.vmrs", d, None).map(|_| ()));
    // Either refused, or within a budget proportional to the file.
    assert!(
        peak < 2 * len + 16 * MIB,
        "{} MiB for a {} MiB file ({r:?})",
        peak / MIB,
        len / MIB
    );
}

/// A legacy container whose `n` index slots name overlapping suffixes of one `len`-byte
/// string: every name is distinct, and each is copied into its own `String` (legacy.rs
/// `LegacyFile::parse`), so memory grows as `n * len` while the file holds `len` bytes of
/// names. Missing check: names overlapping each other in the string table, or a name length
/// bound (real names are under 200 bytes).
fn overlapping_names(n: usize, len: usize) -> Vec<u8> {
    let index = 4096;
    let strings = index + n * 24;
    let mut d = vec![0u8; strings + len + 1];
    put_u32(&mut d, 0, 0x0218_2003);
    put_u32(&mut d, 4, 0x500);
    put_u32(&mut d, 8, 1);
    put_u32(&mut d, 12, n as u32);
    put_u64(&mut d, 16, index as u64);
    put_u64(&mut d, 24, strings as u64);
    put_u32(&mut d, 32, (len + 1) as u32);
    put_u32(&mut d, 36, (len + 1) as u32);
    d[strings..strings + len].fill(b'a');
    for i in 0..n {
        let s = index + i * 24;
        put_u32(&mut d, s, i as u32);
        put_u16(&mut d, s + 4, (len + 1 - i) as u16);
        d[s + 6] = 1;
        d[s + 7] = 2; // integer, stored inline
        put_u32(&mut d, s + 12, 8);
    }
    d
}

#[test]
fn legacy_names_sharing_bytes_do_not_multiply_memory() {
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    // 4,000 slots over a 60,000-byte name: a 160 KiB file, about 230 MiB of names.
    let vsv = overlapping_names(4000, 60_000);
    let len = vsv.len();
    let bin = overlapping_names(1, 10);
    let (r, peak) = peak_during(move || open_bytes("names.vsv", vsv, Some(bin)).map(|_| ()));
    assert!(
        peak < 8 * len + 16 * MIB,
        "{} MiB for a {} KiB file ({r:?})",
        peak / MIB,
        len / 1024
    );
}

#[test]
fn legacy_overlapping_names_are_refused() {
    // Small version of the file above: names sharing bytes are refused; a single name is a
    // valid container (with no memory image in it).
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let r = open_bytes(
        "names.vsv",
        overlapping_names(3, 20),
        Some(overlapping_names(1, 4)),
    );
    let e = r.err().unwrap();
    assert!(
        e.contains("legacy index slot") && e.contains("names overlap"),
        "{e}"
    );
    let r = open_bytes(
        "names.vsv",
        overlapping_names(1, 20),
        Some(overlapping_names(1, 4)),
    );
    let e = r.err().unwrap();
    assert!(e.contains("no memory image"), "{e}");
}

/// Every `RamBlock/<n>/` slot of the sample's `.bin` pointed at the stored bytes of block 2:
/// a file can describe far more guest RAM than it stores (each 24-byte slot adds 1 MiB to the
/// dump). Missing check: values overlapping each other (docs/hyperv-saved-state.md section 8,
/// item 26; the HVS equivalent is several keys pointing at one file object).
#[test]
fn legacy_ram_blocks_sharing_one_value_are_rejected() {
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let mut bin = std::fs::read(sample("test_file.bin")).unwrap();
    let u32_at = |d: &[u8], o: usize| u32::from_le_bytes(d[o..o + 4].try_into().unwrap());
    let u64_at = |d: &[u8], o: usize| u64::from_le_bytes(d[o..o + 8].try_into().unwrap());
    let (cap, index, strings) = (
        u32_at(&bin, 12) as usize,
        u64_at(&bin, 16) as usize,
        u64_at(&bin, 24) as usize,
    );
    let slot_of = |d: &[u8], name: &str| {
        (0..cap).map(|i| index + i * 24).find(|&s| {
            let (no, ns) = (u32_at(d, s) as usize, u32_at(d, s + 4) as usize & 0xFFFF);
            &d[strings + no..strings + no + ns] == format!("{name}\0").as_bytes()
        })
    };
    let two = slot_of(&bin, "RamBlock/2/").unwrap();
    let (alloc, size, off) = (
        u32_at(&bin, two + 8),
        u32_at(&bin, two + 12),
        u64_at(&bin, two + 16),
    );
    for n in 0..252 {
        let s = slot_of(&bin, &format!("RamBlock/{n}/")).unwrap();
        put_u32(&mut bin, s + 8, alloc);
        put_u32(&mut bin, s + 12, size);
        put_u64(&mut bin, s + 16, off);
    }
    let vsv = std::fs::read(sample("test_file.vsv")).unwrap();
    let r = open_bytes("test_file.vsv", vsv, Some(bin));
    let e = r.expect_err("RAM blocks sharing one stored value must be refused");
    assert!(e.contains("overlap"), "{e}");
}

/// A key `depth` levels deep with `name_len`-byte names at every level, and `leaves` small
/// keys under it. The reader stores the full path string of every key (hvs.rs `build_paths`,
/// twice: the memo and the result map), so memory grows as `leaves * depth * name_len` while
/// each leaf costs about 30 bytes of file. Missing check: a bound on the length of a key path
/// (real paths are under 200 bytes), or a tree that does not materialise every path.
fn deep_keys(depth: usize, name_len: usize, leaves: usize) -> Vec<u8> {
    use vm2dmp_synth::{KeyValue, SynthVm};
    let mut vm = SynthVm::with_ram_mib(1);
    vm.vmrs.device_keys = false;
    let mut path = String::new();
    for i in 0..depth {
        path.push_str(&format!("/{i:0>name_len$}"));
    }
    for j in 0..leaves {
        vm.vmrs
            .extra_keys
            .push((format!("{path}/{j}"), KeyValue::Int(j as i64)));
    }
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("deep.vmrs");
    vm2dmp_synth::write_vmrs(&vm, &p).unwrap();
    std::fs::read(&p).unwrap()
}

#[test]
fn deep_keys_construction_opens() {
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let state = open_bytes("deep.vmrs", deep_keys(200, 200, 3), None).unwrap();
    assert_eq!(state.vcpus().len(), 1);
}

#[test]
fn deep_key_paths_do_not_multiply_memory() {
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let d = deep_keys(250, 200, 2000);
    let len = d.len();
    let (r, peak) = peak_during(move || open_bytes("deep.vmrs", d, None).map(|_| ()));
    assert!(
        peak < 8 * len + 16 * MIB,
        "{} MiB for a {} KiB file ({r:?})",
        peak / MIB,
        len / 1024
    );
}

/// `keys` lists full paths: a file of deeply nested long names would ask for gigabytes of
/// them. Listing stops with an error once the paths pass 64 MiB; normal trees list.
#[test]
fn key_listing_of_deep_paths_is_bounded() {
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let d = deep_keys(250, 200, 2000);
    let len = d.len();
    let (r, peak) = peak_during(move || {
        vm2dmp::hyperv::list_keys_from_bytes(Path::new("deep.vmrs"), d, false).map(|l| l.keys.len())
    });
    let e = r.unwrap_err().to_string();
    assert!(e.contains("key tree") && e.contains("64 MiB"), "{e}");
    assert!(
        peak < 64 * MIB + 8 * len + 16 * MIB,
        "{} MiB for a {} KiB file",
        peak / MIB,
        len >> 10
    );
    let small = deep_keys(20, 20, 50);
    let l = vm2dmp::hyperv::list_keys_from_bytes(Path::new("deep.vmrs"), small, false).unwrap();
    let deepest = l.keys.iter().map(|k| k.path.len()).max().unwrap();
    assert!(deepest > 20 * 21, "{deepest}");
    assert!(l.keys.iter().filter(|k| k.kind == "int").count() >= 50);
}

/// Bitmap dumps whose `Pages` field asks for a huge bitmap: 2^40 pages (a 128 GiB bitmap)
/// in a 256 MiB file, and 2^33 pages (1 GiB) in a sparse 2 GiB file that does hold it, in a
/// few blocks of disk. Both are refused from the summary, without reading the bitmap.
#[test]
fn dump_bitmap_too_large_is_not_read() {
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let dir = tempfile::tempdir().unwrap();
    for (pages, file_len) in [(1u64 << 40, 256u64 << 20), (1 << 33, 2 << 30)] {
        let p = dir.path().join("huge-bitmap.dmp");
        let mut h = vec![0u8; 0x2038];
        h[..8].copy_from_slice(b"PAGEDU64");
        put_u32(&mut h, 0x30, 0x8664);
        put_u32(&mut h, 0xF98, 5);
        h[0x2000..0x2008].copy_from_slice(b"FDMPDUMP");
        put_u64(&mut h, 0x2020, 0x3000);
        put_u64(&mut h, 0x2030, pages);
        std::fs::write(&p, &h).unwrap();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&p)
            .unwrap()
            .set_len(file_len)
            .unwrap();
        let (r, peak) = peak_during(|| vm2dmp::DumpFile::open(&p).map(|_| ()));
        let e = r.unwrap_err().to_string();
        assert!(
            e.contains("huge-bitmap.dmp") && e.contains("bitmap") && e.contains("16 TiB"),
            "{e}"
        );
        assert!(peak < MIB, "{pages:#x}: {} KiB", peak >> 10);
    }
}

/// A PDB (`--symbols`) whose information stream claims 4 GiB made of one page named over and
/// over: the `pdb` crate would gather it into one buffer. Refused before reading.
#[test]
fn pdb_stream_of_one_repeated_page_is_refused() {
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    const PAGE: usize = 4096;
    let stream_size: u32 = 0xFFF0_0000;
    let stream_pages = (stream_size as usize).div_ceil(PAGE);
    // Directory: stream count, sizes of streams 0 and 1, then stream 1's page list (all 5).
    let mut dir = Vec::with_capacity(12 + 4 * stream_pages);
    dir.extend_from_slice(&2u32.to_le_bytes());
    dir.extend_from_slice(&0u32.to_le_bytes());
    dir.extend_from_slice(&stream_size.to_le_bytes());
    for _ in 0..stream_pages {
        dir.extend_from_slice(&5u32.to_le_bytes());
    }
    let dir_pages = dir.len().div_ceil(PAGE);
    assert!(
        dir_pages <= PAGE / 4,
        "the directory's page list fits one page"
    );
    // Pages: 0 superblock, 1-2 free-page maps, 3 directory page list, 4 stream data,
    // 5.. directory.
    let total_pages = 5 + dir_pages;
    let mut file = vec![0u8; total_pages * PAGE];
    file[..32].copy_from_slice(b"Microsoft C/C++ MSF 7.00\r\n\x1aDS\0\0\0");
    for (i, v) in [PAGE as u32, 1, total_pages as u32, dir.len() as u32, 0, 3]
        .iter()
        .enumerate()
    {
        put_u32(&mut file, 32 + i * 4, *v);
    }
    for i in 0..dir_pages {
        put_u32(&mut file, 3 * PAGE + i * 4, (5 + i) as u32);
    }
    file[5 * PAGE..5 * PAGE + dir.len()].copy_from_slice(&dir);
    let len = file.len();
    let (r, peak) = peak_during(|| vm2dmp::guest::fuzzing::parse_pdb(&file));
    assert_eq!(r, None);
    // The pdb crate's own page lists and slice lists take several times the directory.
    assert!(
        peak < 10 * len + 16 * MIB,
        "{} MiB for a {} KiB PDB",
        peak / MIB,
        len >> 10
    );
}

/// Keys nested deeper than 256 levels are refused, however the key tables order them
/// (parents before children, so each step of the depth computation is short).
#[test]
fn keys_nested_too_deep_are_refused() {
    let _g = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let e = open_bytes("deep.vmrs", deep_keys(300, 4, 1), None).unwrap_err();
    assert!(e.contains("nest more than 256 levels"), "{e}");
    let e =
        vm2dmp::hyperv::list_keys_from_bytes(Path::new("deep.vmrs"), deep_keys(2000, 1, 1), false)
            .unwrap_err()
            .to_string();
    assert!(e.contains("nest more than 256 levels"), "{e}");
    assert!(open_bytes("deep.vmrs", deep_keys(250, 4, 1), None).is_ok());
}
