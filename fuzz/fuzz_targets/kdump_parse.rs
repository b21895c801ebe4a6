//! Kernel dump reader: header, run list or bitmap, page lookups.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vm2dmp_kdump::KernelDump;

fuzz_target!(|data: &[u8]| {
    // The library reads only the prefix the header asks for, then pages on demand: that
    // path must agree with parsing the whole file.
    let head = &data[..data.len().min(KernelDump::HEADER_PREFIX as usize)];
    let need = KernelDump::metadata_len(head, data.len() as u64).min(data.len() as u64);
    let from_prefix = KernelDump::parse_prefix(&data[..need as usize], data.len() as u64);
    let whole = KernelDump::parse(data);
    assert_eq!(
        from_prefix.as_ref().ok(),
        whole.as_ref().ok(),
        "prefix parse disagrees with whole-file parse"
    );
    let Ok(dump) = whole else {
        return;
    };
    let _ = dump.info();
    let _ = dump.context();
    let _ = dump.runs();
    let _ = dump.bitmap();
    let _ = dump.dump_type();
    let _ = dump.machine_image_type();
    let _ = dump.required_dump_space();
    let _ = dump.data_offset();
    let count = dump.present_page_count();
    let mut listed = 0u64;
    let mut buf = [0u8; 32];
    for (i, pfn) in dump.present_pfns().take(1000).enumerate() {
        listed += 1;
        if i < 16 {
            assert!(
                dump.page_file_offset(pfn).is_some(),
                "listed page {pfn:#x} has no offset"
            );
            let _ = dump.page(data, pfn);
            let _ = dump.read_phys(data, (pfn << 12).wrapping_add(0xFF0), &mut buf);
        }
    }
    if count < 1000 {
        assert_eq!(
            listed, count,
            "present_pfns disagrees with present_page_count"
        );
    }
    for pfn in [0, 1, 0xFFFF_FFFF, u64::MAX >> 12, u64::MAX] {
        let _ = dump.page(data, pfn);
    }
    let _ = dump.read_phys(data, u64::MAX - 4, &mut buf);
});
