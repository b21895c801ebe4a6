//! Every offset below is copied from the format reference tables (sections 2, 2.1,
//! 2.2, 3, 4, 5.1, 5.2), not from the declarations in `structs.rs`.

use super::*;
use proptest::prelude::*;

fn u16_at(b: &[u8], off: usize) -> u16 {
    u16::from_le_bytes([b[off], b[off + 1]])
}
fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes(b[off..off + 4].try_into().unwrap())
}
fn u64_at(b: &[u8], off: usize) -> u64 {
    u64::from_le_bytes(b[off..off + 8].try_into().unwrap())
}

#[test]
fn sizes() {
    assert_eq!(DumpHeader64::SIZE, 0x2000);
    assert_eq!(DumpHeader32::SIZE, 0x1000);
    assert_eq!(Context64::SIZE, 0x4D0);
    assert_eq!(Context32::SIZE, 0x2CC);
    assert_eq!(ExceptionRecord64::SIZE, 0x98);
    assert_eq!(ExceptionRecord32::SIZE, 0x50);
    assert_eq!(XmmSaveArea32::SIZE, 512);
    assert_eq!(FloatingSaveArea::SIZE, 0x70);
    assert_eq!(BitmapSummaryHeader::SIZE, 0x38);
    assert_eq!(
        PhysicalMemoryDescriptor64::SIZE + 42 * PhysicalMemoryRun64::SIZE,
        688
    );
    assert_eq!(
        PhysicalMemoryDescriptor32::SIZE + 86 * PhysicalMemoryRun32::SIZE,
        696
    );
}

#[test]
fn header64_offsets() {
    let mut h = DumpHeader64::zeroed();
    h.signature = 0x0101_0101;
    h.valid_dump = 0x0202_0202;
    h.major_version = 0x0303_0303;
    h.minor_version = 0x0404_0404;
    h.directory_table_base = 0x0505_0505_0505_0505;
    h.pfn_data_base = 0x0606_0606_0606_0606;
    h.ps_loaded_module_list = 0x0707_0707_0707_0707;
    h.ps_active_process_head = 0x0808_0808_0808_0808;
    h.machine_image_type = 0x0909_0909;
    h.number_processors = 0x0A0A_0A0A;
    h.bug_check_code = 0x0B0B_0B0B;
    h.bug_check_parameters = [0x11, 0x12, 0x13, 0x14];
    h.version_user[0] = 0x15;
    h.kd_debugger_data_block = 0x1616_1616_1616_1616;
    h.physical_memory_block[0] = 0x17;
    h.context_record[0] = 0x18;
    h.exception.exception_code = 0x1919_1919;
    h.dump_type = 0x1A1A_1A1A;
    h.required_dump_space = 0x1B1B_1B1B_1B1B_1B1B;
    h.system_time = 0x1C1C_1C1C_1C1C_1C1C;
    h.comment[0] = 0x1D;
    h.system_up_time = 0x1E1E_1E1E_1E1E_1E1E;
    h.mini_dump_fields = 0x1F1F_1F1F;
    h.secondary_data_state = 0x2020_2020;
    h.product_type = 0x2121_2121;
    h.suite_mask = 0x2222_2222;
    h.writer_status = 0x2323_2323;
    h.unused1 = 0x24;
    h.kd_secondary_version = 0x25;
    h.unused = [0x26, 0x26];
    h.attributes = 0x2727_2727;
    h.boot_id = 0x2828_2828;
    h.reserved0[0] = 0x29;
    let b = h.to_bytes();
    assert_eq!(u32_at(&b, 0x000), 0x0101_0101);
    assert_eq!(u32_at(&b, 0x004), 0x0202_0202);
    assert_eq!(u32_at(&b, 0x008), 0x0303_0303);
    assert_eq!(u32_at(&b, 0x00C), 0x0404_0404);
    assert_eq!(u64_at(&b, 0x010), 0x0505_0505_0505_0505);
    assert_eq!(u64_at(&b, 0x018), 0x0606_0606_0606_0606);
    assert_eq!(u64_at(&b, 0x020), 0x0707_0707_0707_0707);
    assert_eq!(u64_at(&b, 0x028), 0x0808_0808_0808_0808);
    assert_eq!(u32_at(&b, 0x030), 0x0909_0909);
    assert_eq!(u32_at(&b, 0x034), 0x0A0A_0A0A);
    assert_eq!(u32_at(&b, 0x038), 0x0B0B_0B0B);
    assert_eq!(u32_at(&b, 0x03C), 0);
    for (i, v) in [0x11u64, 0x12, 0x13, 0x14].iter().enumerate() {
        assert_eq!(u64_at(&b, 0x040 + 8 * i), *v);
    }
    assert_eq!(b[0x060], 0x15);
    assert_eq!(u64_at(&b, 0x080), 0x1616_1616_1616_1616);
    assert_eq!(b[0x088], 0x17);
    assert_eq!(u32_at(&b, 0x344), 0);
    assert_eq!(b[0x348], 0x18);
    assert_eq!(u32_at(&b, 0xF00), 0x1919_1919);
    assert_eq!(u32_at(&b, 0xF98), 0x1A1A_1A1A);
    assert_eq!(u32_at(&b, 0xF9C), 0);
    assert_eq!(u64_at(&b, 0xFA0), 0x1B1B_1B1B_1B1B_1B1B);
    assert_eq!(u64_at(&b, 0xFA8), 0x1C1C_1C1C_1C1C_1C1C);
    assert_eq!(b[0xFB0], 0x1D);
    assert_eq!(u64_at(&b, 0x1030), 0x1E1E_1E1E_1E1E_1E1E);
    assert_eq!(u32_at(&b, 0x1038), 0x1F1F_1F1F);
    assert_eq!(u32_at(&b, 0x103C), 0x2020_2020);
    assert_eq!(u32_at(&b, 0x1040), 0x2121_2121);
    assert_eq!(u32_at(&b, 0x1044), 0x2222_2222);
    assert_eq!(u32_at(&b, 0x1048), 0x2323_2323);
    assert_eq!(b[0x104C], 0x24);
    assert_eq!(b[0x104D], 0x25);
    assert_eq!(&b[0x104E..0x1050], &[0x26, 0x26]);
    assert_eq!(u32_at(&b, 0x1050), 0x2727_2727);
    assert_eq!(u32_at(&b, 0x1054), 0x2828_2828);
    assert_eq!(b[0x1058], 0x29);
}

#[test]
fn header32_offsets() {
    let mut h = DumpHeader32::zeroed();
    h.signature = 0x0101_0101;
    h.valid_dump = 0x0202_0202;
    h.major_version = 0x0303_0303;
    h.minor_version = 0x0404_0404;
    h.directory_table_base = 0x0505_0505;
    h.pfn_data_base = 0x0606_0606;
    h.ps_loaded_module_list = 0x0707_0707;
    h.ps_active_process_head = 0x0808_0808;
    h.machine_image_type = 0x0909_0909;
    h.number_processors = 0x0A0A_0A0A;
    h.bug_check_code = 0x0B0B_0B0B;
    h.bug_check_parameters = [0x11, 0x12, 0x13, 0x14];
    h.version_user[0] = 0x15;
    h.pae_enabled = 0x16;
    h.kd_secondary_version = 0x17;
    h.spare3 = [0x18, 0x18];
    h.kd_debugger_data_block = 0x1919_1919;
    h.physical_memory_block[0] = 0x1A;
    h.context_record[0] = 0x1B;
    h.exception.exception_code = 0x1C1C_1C1C;
    h.comment[0] = 0x1D;
    h.attributes = 0x1E1E_1E1E;
    h.boot_id = 0x1F1F_1F1F;
    h.reserved0[0] = 0x20;
    h.dump_type = 0x2121_2121;
    h.mini_dump_fields = 0x2222_2222;
    h.secondary_data_state = 0x2323_2323;
    h.product_type = 0x2424_2424;
    h.suite_mask = 0x2525_2525;
    h.writer_status = 0x2626_2626;
    h.required_dump_space = 0x2727_2727_2727_2727;
    h.reserved2[0] = 0x28;
    h.system_up_time = 0x2929_2929_2929_2929;
    h.system_time = 0x2A2A_2A2A_2A2A_2A2A;
    h.reserved3[0] = 0x2B;
    let b = h.to_bytes();
    assert_eq!(u32_at(&b, 0x000), 0x0101_0101);
    assert_eq!(u32_at(&b, 0x004), 0x0202_0202);
    assert_eq!(u32_at(&b, 0x008), 0x0303_0303);
    assert_eq!(u32_at(&b, 0x00C), 0x0404_0404);
    assert_eq!(u32_at(&b, 0x010), 0x0505_0505);
    assert_eq!(u32_at(&b, 0x014), 0x0606_0606);
    assert_eq!(u32_at(&b, 0x018), 0x0707_0707);
    assert_eq!(u32_at(&b, 0x01C), 0x0808_0808);
    assert_eq!(u32_at(&b, 0x020), 0x0909_0909);
    assert_eq!(u32_at(&b, 0x024), 0x0A0A_0A0A);
    assert_eq!(u32_at(&b, 0x028), 0x0B0B_0B0B);
    for (i, v) in [0x11u32, 0x12, 0x13, 0x14].iter().enumerate() {
        assert_eq!(u32_at(&b, 0x02C + 4 * i), *v);
    }
    assert_eq!(b[0x03C], 0x15);
    assert_eq!(b[0x05C], 0x16);
    assert_eq!(b[0x05D], 0x17);
    assert_eq!(&b[0x05E..0x060], &[0x18, 0x18]);
    assert_eq!(u32_at(&b, 0x060), 0x1919_1919);
    assert_eq!(b[0x064], 0x1A);
    assert_eq!(b[0x320], 0x1B);
    assert_eq!(u32_at(&b, 0x7D0), 0x1C1C_1C1C);
    assert_eq!(b[0x820], 0x1D);
    assert_eq!(u32_at(&b, 0x8A0), 0x1E1E_1E1E);
    assert_eq!(u32_at(&b, 0x8A4), 0x1F1F_1F1F);
    assert_eq!(b[0x8A8], 0x20);
    assert_eq!(u32_at(&b, 0xF88), 0x2121_2121);
    assert_eq!(u32_at(&b, 0xF8C), 0x2222_2222);
    assert_eq!(u32_at(&b, 0xF90), 0x2323_2323);
    assert_eq!(u32_at(&b, 0xF94), 0x2424_2424);
    assert_eq!(u32_at(&b, 0xF98), 0x2525_2525);
    assert_eq!(u32_at(&b, 0xF9C), 0x2626_2626);
    assert_eq!(u64_at(&b, 0xFA0), 0x2727_2727_2727_2727);
    assert_eq!(b[0xFA8], 0x28);
    assert_eq!(u64_at(&b, 0xFB8), 0x2929_2929_2929_2929);
    assert_eq!(u64_at(&b, 0xFC0), 0x2A2A_2A2A_2A2A_2A2A);
    assert_eq!(b[0xFC8], 0x2B);
}

#[test]
fn descriptor_and_run_offsets() {
    let d = PhysicalMemoryDescriptor64 {
        number_of_runs: 3,
        pad_04: 0,
        number_of_pages: 0x1_0000_0001,
    }
    .to_bytes();
    assert_eq!(u32_at(&d, 0x00), 3);
    assert_eq!(u64_at(&d, 0x08), 0x1_0000_0001);
    let r = PhysicalMemoryRun64 {
        base_page: 0xAA,
        page_count: 0xBB,
    }
    .to_bytes();
    assert_eq!((u64_at(&r, 0), u64_at(&r, 8)), (0xAA, 0xBB));
    let d = PhysicalMemoryDescriptor32 {
        number_of_runs: 3,
        number_of_pages: 7,
    }
    .to_bytes();
    assert_eq!((u32_at(&d, 0), u32_at(&d, 4)), (3, 7));
    let r = PhysicalMemoryRun32 {
        base_page: 0xAA,
        page_count: 0xBB,
    }
    .to_bytes();
    assert_eq!((u32_at(&r, 0), u32_at(&r, 4)), (0xAA, 0xBB));
}

#[test]
fn exception_record_offsets() {
    let mut e = ExceptionRecord64::zeroed();
    e.exception_code = 1;
    e.exception_flags = 2;
    e.exception_record = 3;
    e.exception_address = 4;
    e.number_parameters = 5;
    e.exception_information[0] = 6;
    e.exception_information[14] = 7;
    let b = e.to_bytes();
    assert_eq!(u32_at(&b, 0x00), 1);
    assert_eq!(u32_at(&b, 0x04), 2);
    assert_eq!(u64_at(&b, 0x08), 3);
    assert_eq!(u64_at(&b, 0x10), 4);
    assert_eq!(u32_at(&b, 0x18), 5);
    assert_eq!(u32_at(&b, 0x1C), 0);
    assert_eq!(u64_at(&b, 0x20), 6);
    assert_eq!(u64_at(&b, 0x20 + 14 * 8), 7);

    let mut e = ExceptionRecord32::zeroed();
    e.exception_code = 1;
    e.exception_flags = 2;
    e.exception_record = 3;
    e.exception_address = 4;
    e.number_parameters = 5;
    e.exception_information[0] = 6;
    e.exception_information[14] = 7;
    let b = e.to_bytes();
    for (off, v) in [
        (0x00, 1),
        (0x04, 2),
        (0x08, 3),
        (0x0C, 4),
        (0x10, 5),
        (0x14, 6),
        (0x4C, 7),
    ] {
        assert_eq!(u32_at(&b, off), v, "offset {off:#x}");
    }
}

#[test]
fn context64_offsets() {
    let mut c = Context64::zeroed();
    c.p1_home = 0x01;
    c.p6_home = 0x06;
    c.context_flags = 0x07;
    c.mx_csr = 0x08;
    c.seg_cs = 0x09;
    c.seg_ds = 0x0A;
    c.seg_es = 0x0B;
    c.seg_fs = 0x0C;
    c.seg_gs = 0x0D;
    c.seg_ss = 0x0E;
    c.eflags = 0x0F;
    let regs = [
        (0x048, 0x10u64),
        (0x050, 0x11),
        (0x058, 0x12),
        (0x060, 0x13),
        (0x068, 0x14),
        (0x070, 0x15),
        (0x078, 0x16),
        (0x080, 0x17),
        (0x088, 0x18),
        (0x090, 0x19),
        (0x098, 0x1A),
        (0x0A0, 0x1B),
        (0x0A8, 0x1C),
        (0x0B0, 0x1D),
        (0x0B8, 0x1E),
        (0x0C0, 0x1F),
        (0x0C8, 0x20),
        (0x0D0, 0x21),
        (0x0D8, 0x22),
        (0x0E0, 0x23),
        (0x0E8, 0x24),
        (0x0F0, 0x25),
        (0x0F8, 0x26),
    ];
    c.dr0 = 0x10;
    c.dr1 = 0x11;
    c.dr2 = 0x12;
    c.dr3 = 0x13;
    c.dr6 = 0x14;
    c.dr7 = 0x15;
    c.rax = 0x16;
    c.rcx = 0x17;
    c.rdx = 0x18;
    c.rbx = 0x19;
    c.rsp = 0x1A;
    c.rbp = 0x1B;
    c.rsi = 0x1C;
    c.rdi = 0x1D;
    c.r8 = 0x1E;
    c.r9 = 0x1F;
    c.r10 = 0x20;
    c.r11 = 0x21;
    c.r12 = 0x22;
    c.r13 = 0x23;
    c.r14 = 0x24;
    c.r15 = 0x25;
    c.rip = 0x26;
    c.flt_save.control_word = 0x27;
    c.flt_save.status_word = 0x28;
    c.flt_save.tag_word = 0x29;
    c.flt_save.error_opcode = 0x2A;
    c.flt_save.error_offset = 0x2B;
    c.flt_save.error_selector = 0x2C;
    c.flt_save.data_offset = 0x2D;
    c.flt_save.data_selector = 0x2E;
    c.flt_save.mx_csr = 0x2F;
    c.flt_save.mx_csr_mask = 0x30;
    c.flt_save.float_registers[0] = 0x31;
    c.flt_save.xmm_registers[0] = 0x32;
    c.flt_save.reserved4[0] = 0x33;
    c.vector_register[0] = 0x34;
    c.vector_control = 0x35;
    c.debug_control = 0x36;
    c.last_branch_to_rip = 0x37;
    c.last_branch_from_rip = 0x38;
    c.last_exception_to_rip = 0x39;
    c.last_exception_from_rip = 0x3A;
    let b = c.to_bytes();
    assert_eq!(u64_at(&b, 0x000), 0x01);
    assert_eq!(u64_at(&b, 0x028), 0x06);
    assert_eq!(u32_at(&b, 0x030), 0x07);
    assert_eq!(u32_at(&b, 0x034), 0x08);
    for (off, v) in [
        (0x038, 0x09),
        (0x03A, 0x0A),
        (0x03C, 0x0B),
        (0x03E, 0x0C),
        (0x040, 0x0D),
        (0x042, 0x0E),
    ] {
        assert_eq!(u16_at(&b, off), v, "offset {off:#x}");
    }
    assert_eq!(u32_at(&b, 0x044), 0x0F);
    for (off, v) in regs {
        assert_eq!(u64_at(&b, off), v, "offset {off:#x}");
    }
    assert_eq!(u16_at(&b, 0x100), 0x27);
    assert_eq!(u16_at(&b, 0x102), 0x28);
    assert_eq!(b[0x104], 0x29);
    assert_eq!(u16_at(&b, 0x106), 0x2A);
    assert_eq!(u32_at(&b, 0x108), 0x2B);
    assert_eq!(u16_at(&b, 0x10C), 0x2C);
    assert_eq!(u32_at(&b, 0x110), 0x2D);
    assert_eq!(u16_at(&b, 0x114), 0x2E);
    assert_eq!(u32_at(&b, 0x118), 0x2F);
    assert_eq!(u32_at(&b, 0x11C), 0x30);
    assert_eq!(b[0x120], 0x31);
    assert_eq!(b[0x1A0], 0x32);
    assert_eq!(b[0x2A0], 0x33);
    assert_eq!(b[0x300], 0x34);
    for (off, v) in [
        (0x4A0, 0x35u64),
        (0x4A8, 0x36),
        (0x4B0, 0x37),
        (0x4B8, 0x38),
        (0x4C0, 0x39),
        (0x4C8, 0x3A),
    ] {
        assert_eq!(u64_at(&b, off), v, "offset {off:#x}");
    }
}

#[test]
fn context32_offsets() {
    let mut c = Context32::zeroed();
    c.context_flags = 0x01;
    c.dr0 = 0x02;
    c.dr1 = 0x03;
    c.dr2 = 0x04;
    c.dr3 = 0x05;
    c.dr6 = 0x06;
    c.dr7 = 0x07;
    c.float_save.control_word = 0x08;
    c.float_save.status_word = 0x09;
    c.float_save.tag_word = 0x0A;
    c.float_save.error_offset = 0x0B;
    c.float_save.error_selector = 0x0C;
    c.float_save.data_offset = 0x0D;
    c.float_save.data_selector = 0x0E;
    c.float_save.register_area[0] = 0x0F;
    c.float_save.cr0_npx_state = 0x10;
    c.seg_gs = 0x11;
    c.seg_fs = 0x12;
    c.seg_es = 0x13;
    c.seg_ds = 0x14;
    c.edi = 0x15;
    c.esi = 0x16;
    c.ebx = 0x17;
    c.edx = 0x18;
    c.ecx = 0x19;
    c.eax = 0x1A;
    c.ebp = 0x1B;
    c.eip = 0x1C;
    c.seg_cs = 0x1D;
    c.eflags = 0x1E;
    c.esp = 0x1F;
    c.seg_ss = 0x20;
    c.extended_registers.mx_csr = 0x21;
    let b = c.to_bytes();
    let expect = [
        (0x00, 0x01),
        (0x04, 0x02),
        (0x08, 0x03),
        (0x0C, 0x04),
        (0x10, 0x05),
        (0x14, 0x06),
        (0x18, 0x07),
        (0x1C, 0x08),
        (0x20, 0x09),
        (0x24, 0x0A),
        (0x28, 0x0B),
        (0x2C, 0x0C),
        (0x30, 0x0D),
        (0x34, 0x0E),
        (0x88, 0x10),
        (0x8C, 0x11),
        (0x90, 0x12),
        (0x94, 0x13),
        (0x98, 0x14),
        (0x9C, 0x15),
        (0xA0, 0x16),
        (0xA4, 0x17),
        (0xA8, 0x18),
        (0xAC, 0x19),
        (0xB0, 0x1A),
        (0xB4, 0x1B),
        (0xB8, 0x1C),
        (0xBC, 0x1D),
        (0xC0, 0x1E),
        (0xC4, 0x1F),
        (0xC8, 0x20),
        (0xCC + 0x18, 0x21),
    ];
    for (off, v) in expect {
        assert_eq!(u32_at(&b, off), v, "offset {off:#x}");
    }
    assert_eq!(b[0x38], 0x0F);
}

#[test]
fn summary_header_offsets() {
    let s = BitmapSummaryHeader {
        signature: 1,
        valid_dump: 2,
        dump_options: 3,
        reserved: [0; 0x14],
        first_page: 4,
        total_present_pages: 5,
        pages: 6,
    }
    .to_bytes();
    assert_eq!(
        (u32_at(&s, 0x00), u32_at(&s, 0x04), u32_at(&s, 0x08)),
        (1, 2, 3)
    );
    assert_eq!(
        (u64_at(&s, 0x20), u64_at(&s, 0x28), u64_at(&s, 0x30)),
        (4, 5, 6)
    );
}

#[test]
fn parse_reports_truncation() {
    let err = DumpHeader64::parse(&[0u8; 100], 0).unwrap_err();
    assert_eq!(
        err,
        crate::error::DumpError::Truncated {
            structure: "DUMP_HEADER64",
            offset: 0,
            needed: 0x2000,
            available: 100
        }
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn header64_bytes_round_trip(seed in any::<u64>()) {
        let mut b = vec![0u8; DumpHeader64::SIZE];
        let mut x = seed | 1;
        for byte in &mut b {
            x ^= x << 13; x ^= x >> 7; x ^= x << 17;
            *byte = x as u8;
        }
        let h = DumpHeader64::parse(&b, 0).unwrap();
        prop_assert_eq!(h.to_bytes(), b);
    }

    #[test]
    fn header32_bytes_round_trip(seed in any::<u64>()) {
        let mut b = vec![0u8; DumpHeader32::SIZE];
        let mut x = seed | 1;
        for byte in &mut b {
            x ^= x << 13; x ^= x >> 7; x ^= x << 17;
            *byte = x as u8;
        }
        let h = DumpHeader32::parse(&b, 0).unwrap();
        prop_assert_eq!(h.to_bytes(), b);
    }
}
