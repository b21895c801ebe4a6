//! [`DumpLayout`] at scale: a 256 GiB bitmap layout, and thread-safety.

use super::*;

#[test]
fn layout_is_shareable() {
    fn assert_sync<T: Send + Sync>() {}
    assert_sync::<DumpLayout>();
    assert_sync::<PageBitmap>();
}

/// 256 GiB of guest RAM (64 Mi pages) with holes: building the layout, locating
/// pages and producing the 8 MiB bitmap stay cheap.
#[test]
fn bitmap_layout_for_256_gib() {
    const PAGES: u64 = 64 << 20;
    let runs = [
        MemoryRun::new(0, 0xA0),
        MemoryRun::new(0x100, 0xC_0000 - 0x100),
        MemoryRun::new(0x10_0000, PAGES - 0x10_0000),
    ];
    let present = PageBitmap::new(PAGES);
    for r in &runs {
        present.set_range(r.base_page, r.page_count);
    }
    // Drop every 1000th page (e.g. zero pages).
    let mut dropped = 0u64;
    for pfn in (0..PAGES).step_by(1000) {
        if present.get(pfn) {
            present.clear(pfn);
            dropped += 1;
        }
    }
    let total: u64 = runs.iter().map(|r| r.page_count).sum();
    let l = DumpLayout::bitmap(Arch::X64, &runs, present).unwrap();
    assert_eq!(l.present_pages(), total - dropped);
    assert_eq!(l.bitmap_bits(), Some(PAGES));
    let first = l.data_offset();
    assert_eq!(first, (0x2038 + PAGES / 8).div_ceil(0x1000) * 0x1000);
    assert_eq!(l.file_size(), first + (total - dropped) * 0x1000);
    assert_eq!(l.page_offset(0), None);
    assert_eq!(l.page_offset(1), Some(first));
    // PFN p in the last run: p minus the holes before it, minus dropped pages below it.
    let p = PAGES - 1;
    let holes = (0x100 - 0xA0) + (0x10_0000 - 0xC_0000);
    let dropped_below = (0..p)
        .step_by(1000)
        .filter(|&q| runs.iter().any(|r| r.contains(q)))
        .count() as u64;
    assert_eq!(
        l.page_offset(p),
        Some(first + (p - holes - dropped_below) * 0x1000)
    );
    assert_eq!(l.span_offset(1001, 999), l.page_offset(1001));
    assert_eq!(l.span_offset(1001, 1000), None);
    let hdr = l.header_bytes(&DumpHeaderInfo::default());
    assert_eq!(hdr.len() as u64, first);
}
