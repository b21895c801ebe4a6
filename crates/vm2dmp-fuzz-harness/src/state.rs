//! What the whole-file targets do with an input that opens, and the conversion the `convert`
//! target (and the replay test, on every seed) runs.

use std::cell::RefCell;

use vm2dmp::{source::PAGE_SIZE, MemorySource, SavedState};

/// Chunks (RAM blocks of a saved state) decoded per input by the whole-file targets: each
/// costs up to a 1 MiB decode, and decoding is fuzzed on its own (`ram_block`,
/// `diskdump_page`), so the container targets decode only enough to reach each reader's
/// chunk lookup and decoder call.
pub const MAX_DECODED_CHUNKS: usize = 1;

thread_local! {
    /// The buffer chunks are decoded into, allocated once per thread: a fresh 1 MiB
    /// allocation per input would cost more than the parse under test.
    static CHUNK: RefCell<Vec<u8>> =
        RefCell::new(vec![0u8; vm2dmp::source::MAX_CHUNK_PAGES * PAGE_SIZE]);
}

/// Decodes the first [`MAX_DECODED_CHUNKS`] chunks of `src` and asks for one past the last.
fn decode_some(src: &dyn MemorySource) {
    CHUNK.with_borrow_mut(|chunk| {
        for n in 0..src.chunk_count().min(MAX_DECODED_CHUNKS) {
            let _ = src.zero_pages(n);
            let _ = src.decode_chunk(n, chunk);
        }
        let _ = src.decode_chunk(src.chunk_count(), chunk);
    });
}

/// Everything a reader of an opened saved state may call, on bounded amounts of data (see
/// [`MAX_DECODED_CHUNKS`]), without converting: the container parse at the rate of a parser.
/// [`convert_and_verify`] is the conversion.
pub fn exercise(state: &SavedState) {
    let _ = state.summary();
    let _ = state.encoding_stats();
    let _ = state.files();
    let _ = state.format();
    let _ = state.replay_log();
    let _ = state.ram_pages();
    let boot = state.boot_vcpu();
    for vp in state
        .vcpus()
        .iter()
        .chain(state.higher_vtl_vcpus().iter().map(|v| &v.cpu))
        .take(8)
    {
        let _ = vp.architecture();
        let _ = vp.paging_mode();
        let _ = vp.mode_description();
        let _ = vp.kernel_gs_base();
        let _ = vp.fp.map(|f| f.fxsave());
    }
    let _ = boot.paging_enabled();

    let mut buf = [0u8; 64];
    let ranges = state.memory_ranges().to_vec();
    for (i, r) in ranges.iter().take(4).enumerate() {
        let start = r.gpa_start();
        let end = r.gpa_end();
        for (j, gpa) in [
            start,
            start.saturating_add(PAGE_SIZE as u64 - 16), // crosses a page boundary
            end.saturating_sub(32),                      // runs into the hole after the range
            end,
        ]
        .into_iter()
        .enumerate()
        {
            // Reads decode a RAM block: two of them, in the first range.
            if i == 0 && j % 2 == 1 {
                let _ = state.read_phys(gpa, &mut buf);
            }
            let _ = state.gpa_to_raw_offset(gpa);
            let _ = state.memory_range_of(gpa >> 12);
        }
    }
    let _ = state.read_phys(u64::MAX - 8, &mut buf);
    let _ = state.read_phys(0, &mut []);

    // The same memory through the interface the converter uses.
    let src: &dyn vm2dmp::MemorySource = state;
    for n in 0..src.chunk_count().min(MAX_SPAN_LOOKUPS) {
        let _ = src.chunk_spans(n);
        let _ = src.raw_chunk(n).is_some();
    }
    for n in 0..state.ram_block_count().min(MAX_SPAN_LOOKUPS) {
        let _ = state.block_spans(n);
    }
    decode_some(src);
    let _ = src.machine();
    let _ = src.boot_vcpu();
}

/// Chunks whose spans are looked up per input (no decoding: cheap).
const MAX_SPAN_LOOKUPS: usize = 4096;

/// Everything a reader of any opened memory source may call, on bounded amounts of data (see
/// [`MAX_DECODED_CHUNKS`]), without converting; checks the promises of the trait (ranges
/// sorted, chunks inside RAM and covering it exactly once).
pub fn exercise_source(src: &dyn MemorySource) {
    let _ = src.files();
    let _ = src.ram_pages();
    let machine = src.machine();
    assert!(!machine.kind.is_empty(), "every source names its kind");
    for vp in src.vcpus().iter().take(8) {
        let _ = vp.architecture();
        let _ = vp.paging_mode();
        let _ = vp.mode_description();
        let _ = vp.paging_enabled();
        let _ = vp.fp.map(|f| f.fxsave());
    }
    let _ = src.boot_vcpu();
    let mut buf = [0u8; 64];
    let ranges = src.ram_ranges().to_vec();
    assert!(
        ranges
            .windows(2)
            .all(|w| w[0].gpa_page_end() <= w[1].gpa_page_start),
        "RAM ranges sorted and not overlapping: {ranges:?}"
    );
    for r in ranges.iter().take(4) {
        let (start, end) = (r.gpa_start(), r.gpa_end());
        for gpa in [
            start,
            start.saturating_add(PAGE_SIZE as u64 - 16),
            end.saturating_sub(32),
            end,
        ] {
            let _ = src.read_phys(gpa, &mut buf);
            let _ = src.range_of(gpa >> 12);
        }
    }
    let _ = src.read_phys(u64::MAX - 8, &mut buf);
    let _ = src.read_phys(0, &mut []);
    let mut pages = 0u64;
    for n in 0..src.chunk_count().min(MAX_SPAN_LOOKUPS) {
        let spans = src.chunk_spans(n);
        for s in &spans {
            assert!(
                s.page_in_chunk + s.pages <= vm2dmp::source::MAX_CHUNK_PAGES,
                "chunk {n} span {s:?} beyond a chunk"
            );
            assert!(
                src.range_of(s.gpa_page).is_some(),
                "chunk {n} span {s:?} outside RAM"
            );
            pages += s.pages as u64;
        }
        let _ = src.raw_chunk(n).is_some();
    }
    if src.chunk_count() <= MAX_SPAN_LOOKUPS {
        assert_eq!(pages, src.ram_pages(), "chunks cover RAM exactly once");
    }
    decode_some(src);
}

/// Guests converted per input: at most this much RAM ...
const MAX_CONVERTED_PAGES: u64 = 4 * vm2dmp::hyperv::PAGES_PER_BLOCK as u64;
/// ... ending at most this far above 4 GiB (bitmap dumps cover every page below the highest).
const MAX_CONVERTED_GPA_PAGE: u64 = (1 << 20) + MAX_CONVERTED_PAGES;

/// Whether `state` is small enough to convert per input: at most 4 MiB of RAM, ending at
/// most 4 MiB above 4 GiB.
fn small(state: &dyn MemorySource) -> bool {
    let end = state.ram_ranges().last().map_or(0, |r| r.gpa_page_end());
    state.ram_pages() <= MAX_CONVERTED_PAGES && end <= MAX_CONVERTED_GPA_PAGE
}

/// Converts a small guest (at most 4 MiB of RAM, ending at most 4 MiB above 4 GiB) in every
/// layout but an explicit full dump (automatic, bitmap, bitmap without zero pages; see
/// [`convert_and_verify_as`]). Returns the number of dumps written and verified (0 for a
/// larger guest).
pub fn convert_and_verify(state: &dyn MemorySource) -> usize {
    if !small(state) {
        return 0;
    }
    [
        (vm2dmp::DumpFormat::Auto, false),
        (vm2dmp::DumpFormat::Bitmap, false),
        (vm2dmp::DumpFormat::Bitmap, true),
    ]
    .into_iter()
    .filter(|&(format, skip_zero)| convert_and_verify_as(state, format, skip_zero))
    .count()
}

/// Converts a small guest in one layout (this also runs the guest kernel discovery over its
/// memory) and checks the dump against the source: whatever converts must verify, and a
/// failed conversion must leave no file behind. Returns whether a dump was written (and
/// verified); false for a larger guest.
///
/// The dump goes to a new temporary directory, removed on return.
pub fn convert_and_verify_as(
    state: &dyn MemorySource,
    format: vm2dmp::DumpFormat,
    skip_zero: bool,
) -> bool {
    use vm2dmp::{convert, verify, Cancel, ConvertOptions, DumpFile, NoProgress};
    if !small(state) {
        return false;
    }
    let dir = tempfile::Builder::new()
        .prefix("vm2dmp-fuzz-")
        .tempdir()
        .expect("temporary directory");
    let out = dir.path().join("fuzz.dmp");
    let opts = ConvertOptions {
        format,
        skip_zero,
        ..ConvertOptions::default()
    };
    if convert(state, &out, &opts, &NoProgress, &Cancel::new()).is_err() {
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .expect("temporary directory")
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert!(left.is_empty(), "a failed conversion left {left:?}");
        return false;
    }
    let dump = DumpFile::open(&out).expect("a dump we wrote must parse");
    let report = verify(&dump, state, None, &NoProgress, &Cancel::new())
        .expect("a dump we wrote must verify");
    assert!(report.ok(), "dump differs from the source: {report:?}");
    true
}
