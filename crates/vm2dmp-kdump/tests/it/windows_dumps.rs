//! The reader on kernel dumps written by Windows itself (`testdata/windows-dumps`, see its
//! README for provenance and licence): every header field checked against known values, and
//! each value also read straight from the bytes at its SDK offset, so a shifted field in our
//! structure definitions cannot agree with itself.

use std::path::PathBuf;

use vm2dmp_kdump::consts::{
    IMAGE_FILE_MACHINE_ARM64, IMAGE_FILE_MACHINE_ARMNT, IMAGE_FILE_MACHINE_I386,
};
use vm2dmp_kdump::{ContextRecord, DumpError, KernelDump};

fn read(name: &str) -> Vec<u8> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/windows-dumps")
        .join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(b[o..o + 4].try_into().unwrap())
}

fn u64_at(b: &[u8], o: usize) -> u64 {
    u64::from_le_bytes(b[o..o + 8].try_into().unwrap())
}

/// Windows 10 1803 on ARM64, `DUMP_HEADER64`, a triage dump after a manually initiated crash.
#[test]
fn arm64_triage_dump_header() {
    let b = read("win10_arm64_mem.dmp");
    assert_eq!(b.len(), 1_003_028);
    assert_eq!(&b[..8], b"PAGEDU64");
    // (SDK offset, value) pairs: the raw bytes say what the reader must return.
    let fields64: [(usize, u64); 7] = [
        (0x010, 0x400a_9000),           // DirectoryTableBase
        (0x018, 0xffff_f801_bcf3_92b0), // PfnDataBase
        (0x020, 0xffff_f801_bce7_6c30), // PsLoadedModuleList
        (0x028, 0xffff_f801_bce6_fda0), // PsActiveProcessHead
        (0x080, 0xffff_f801_bce5_ef70), // KdDebuggerDataBlock
        (0xFA0, 0xf_4ef4),              // RequiredDumpSpace
        (0xFA8, 0x01d4_1576_ee8d_ce77), // SystemTime: 2018-07-06 22:16:05 UTC
    ];
    for (off, v) in fields64 {
        assert_eq!(u64_at(&b, off), v, "offset {off:#x}");
    }
    let fields32: [(usize, u32); 6] = [
        (0x008, 0xF),                      // MajorVersion: free build
        (0x00C, 17134),                    // MinorVersion: build 17134 (1803)
        (0x030, IMAGE_FILE_MACHINE_ARM64), // MachineImageType
        (0x034, 8),                        // NumberProcessors
        (0x038, 0xE2),                     // BugCheckCode: MANUALLY_INITIATED_CRASH
        (0xF98, 4),                        // DumpType: triage
    ];
    for (off, v) in fields32 {
        assert_eq!(u32_at(&b, off), v, "offset {off:#x}");
    }

    let d = KernelDump::parse(&b).unwrap();
    let h = d.header64().unwrap();
    let i = d.info();
    assert_eq!((i.major_version, i.minor_version), (0xF, 17134));
    assert_eq!(i.directory_table_base, 0x400a_9000);
    assert_eq!(i.pfn_database, 0xffff_f801_bcf3_92b0);
    assert_eq!(i.ps_loaded_module_list, 0xffff_f801_bce7_6c30);
    assert_eq!(i.ps_active_process_head, 0xffff_f801_bce6_fda0);
    assert_eq!(i.kd_debugger_data_block, 0xffff_f801_bce5_ef70);
    assert_eq!(d.machine_image_type(), IMAGE_FILE_MACHINE_ARM64);
    assert_eq!(i.number_processors, 8);
    assert_eq!(i.bugcheck_code, 0xE2);
    assert_eq!(i.bugcheck_parameters, [0; 4]);
    assert_eq!(d.dump_type(), 4);
    assert_eq!(d.required_dump_space(), 0xf_4ef4);
    assert_eq!(i.system_time, 0x01d4_1576_ee8d_ce77);
    assert_eq!(h.mini_dump_fields, u32_at(&b, 0x1038));
    assert_eq!(h.mini_dump_fields, 0xCFF);
    assert_eq!(h.system_up_time, u64_at(&b, 0x1030));
    // The unused Comment is the 'PAGE' fill: no comment.
    assert_eq!(&b[0xFB0..0xFB8], b"PAGEPAGE");
    assert_eq!(i.comment, "");
    // An ARM64 CONTEXT is not decoded as an x64 one.
    assert_eq!(
        d.context(),
        &ContextRecord::Other {
            machine: IMAGE_FILE_MACHINE_ARM64
        }
    );
    // A triage dump holds no complete physical memory: nothing is guessed.
    assert!(!d.has_page_data());
    assert_eq!(d.present_page_count(), 0);
    assert_eq!(
        d.read_phys(&b, 0x400a_9000, &mut [0u8; 8]),
        Err(DumpError::UnsupportedDumpType(4))
    );
}

/// Windows 10 1803 on 32-bit ARM (Raspberry Pi 3), `DUMP_HEADER32`, a triage dump.
#[test]
fn arm32_triage_dump_header() {
    let b = read("RPi3_ARM_mini.cab.dmp");
    assert_eq!(b.len(), 336_724);
    assert_eq!(&b[..8], b"PAGEDUMP");
    let fields32: [(usize, u32); 12] = [
        (0x008, 0xF),                      // MajorVersion
        (0x00C, 17134),                    // MinorVersion
        (0x010, 0x0720_0000),              // DirectoryTableBase
        (0x014, 0x80e4_f1e0),              // PfnDataBase
        (0x018, 0x80e1_6d78),              // PsLoadedModuleList
        (0x01C, 0x80e1_2ba8),              // PsActiveProcessHead
        (0x020, IMAGE_FILE_MACHINE_ARMNT), // MachineImageType
        (0x024, 4),                        // NumberProcessors
        (0x028, 0),                        // BugCheckCode
        (0x060, 0x80de_ec58),              // KdDebuggerDataBlock
        (0xF88, 4),                        // DumpType
        (0xFA0, 0x5_2410),                 // RequiredDumpSpace (low half)
    ];
    for (off, v) in fields32 {
        assert_eq!(u32_at(&b, off), v, "offset {off:#x}");
    }
    assert_eq!(u64_at(&b, 0xFC0), 0x01d4_1d41_b482_b936); // SystemTime: 2018-07-16 20:15:13 UTC

    let d = KernelDump::parse(&b).unwrap();
    let h = d.header32().unwrap();
    let i = d.info();
    assert_eq!((i.major_version, i.minor_version), (0xF, 17134));
    assert_eq!(i.directory_table_base, 0x0720_0000);
    assert_eq!(i.pfn_database, 0x80e4_f1e0);
    assert_eq!(i.ps_loaded_module_list, 0x80e1_6d78);
    assert_eq!(i.ps_active_process_head, 0x80e1_2ba8);
    assert_eq!(i.kd_debugger_data_block, 0x80de_ec58);
    assert_eq!(d.machine_image_type(), IMAGE_FILE_MACHINE_ARMNT);
    assert_ne!(d.machine_image_type(), IMAGE_FILE_MACHINE_I386);
    assert_eq!(i.number_processors, 4);
    assert_eq!(i.bugcheck_code, 0);
    assert_eq!(d.dump_type(), 4);
    assert_eq!(d.required_dump_space(), 0x5_2410);
    assert_eq!(i.system_time, 0x01d4_1d41_b482_b936);
    assert_eq!(h.pae_enabled, 0);
    assert_eq!(h.mini_dump_fields, u32_at(&b, 0xF8C));
    assert_eq!(h.system_up_time, u64_at(&b, 0xFB8));
    assert_eq!(i.comment, "");
    assert_eq!(
        d.context(),
        &ContextRecord::Other {
            machine: IMAGE_FILE_MACHINE_ARMNT
        }
    );
    assert!(!d.has_page_data());
}

/// Parsing from the first bytes and the file size gives the same result as the whole file.
#[test]
fn prefix_parse_matches_whole_file() {
    for name in ["win10_arm64_mem.dmp", "RPi3_ARM_mini.cab.dmp"] {
        let b = read(name);
        let head = &b[..KernelDump::HEADER_PREFIX as usize];
        let need = KernelDump::metadata_len(head, b.len() as u64);
        assert!(need <= 0x2000, "{name}: {need}");
        let from_prefix = KernelDump::parse_prefix(&b[..need as usize], b.len() as u64).unwrap();
        assert_eq!(from_prefix, KernelDump::parse(&b).unwrap(), "{name}");
    }
}
