//! Processor state as a Windows guest saved it in each KPRCB (`ProcessorState`: the CONTEXT
//! and `KSPECIAL_REGISTERS`), for inputs that hold guest memory but no processor state (raw
//! images).
//!
//! The kernel fills `ProcessorState` when a processor stops for the debugger, for a bug check,
//! for hibernation or when it freezes for another processor's crash; in a live system the
//! values are those of the last such event. The offsets come from the KDBG
//! (`OffsetPrcbProcStateContext`, `OffsetPrcbProcStateSpecialReg`), the layouts from the SDK
//! (`CONTEXT`) and the format reference (`KSPECIAL_REGISTERS` prefix, docs/windows-crash-dump.md
//! §6.4), the same ones the dump writer uses to store a vCPU's registers there.

use vm2dmp_kdump::structs::{Context32, Context64};
use vm2dmp_kdump::CpuContext;
use vm2dmp_source::{CpuState, DescriptorTable, FpState, MemorySource, SegmentRegister};

use super::info::KernelInfo;
use super::kdbg::offsets as ko;
use super::translate::{read_virt, CachedMem, SourceMem};

/// EFER of a 64-bit Windows processor: SCE, LME, LMA, NXE.
const EFER_X64: u64 = 0xD01;
/// EFER of a 32-bit PAE Windows processor: NXE.
const EFER_NX: u64 = 0x800;

/// Each processor's registers read from its KPRCB, by processor number; empty when the kernel,
/// its KDBG or the KPRCB offsets are unknown. A processor whose `ProcessorState` cannot be
/// read is left out.
pub fn processor_states(state: &dyn MemorySource, kernel: &KernelInfo) -> Vec<CpuState> {
    let (Some(dtb), Some(kdbg)) = (kernel.dtb, kernel.kdbg.as_ref()) else {
        return Vec::new();
    };
    let size = kdbg.size().unwrap_or(0) as usize;
    let field = |off: usize| -> u64 {
        if off + 2 <= size {
            kdbg.u16(off).map_or(0, u64::from)
        } else {
            0
        }
    };
    let (off_ctx, off_special) = (
        field(ko::OFFSET_PRCB_PROC_STATE_CONTEXT),
        field(ko::OFFSET_PRCB_PROC_STATE_SPECIAL_REG),
    );
    if off_ctx == 0 || off_special == 0 {
        return Vec::new();
    }
    let src = SourceMem(state);
    let mem = CachedMem::new(&src);
    let x64 = !kdbg.x86;
    let mut out = Vec::new();
    for (n, &prcb) in kernel.prcbs.iter().enumerate() {
        let mut ctx = vec![
            0u8;
            if x64 {
                Context64::SIZE
            } else {
                Context32::SIZE
            }
        ];
        let mut special = vec![0u8; if x64 { 0x78 } else { 0x3C }];
        if read_virt(&mem, dtb, prcb.wrapping_add(off_ctx), &mut ctx).is_err()
            || read_virt(&mem, dtb, prcb.wrapping_add(off_special), &mut special).is_err()
        {
            continue;
        }
        let context = if x64 {
            Context64::parse(&ctx, 0).map(|c| CpuContext::from_context64(&c))
        } else {
            Context32::parse(&ctx, 0).map(|c| CpuContext::from_context32(&c))
        };
        let Ok(c) = context else { continue };
        out.push(cpu_state(n as u32, &c, &special, x64));
    }
    out
}

fn cpu_state(index: u32, c: &CpuContext, special: &[u8], x64: bool) -> CpuState {
    let (word, stride) = if x64 { (8, 8) } else { (4, 4) };
    let reg = |i: usize| -> u64 {
        let b = special.get(i * stride..i * stride + word).unwrap_or(&[]);
        let mut v = [0u8; 8];
        v[..b.len()].copy_from_slice(b);
        u64::from_le_bytes(v)
    };
    let u16_at = |off: usize| {
        special
            .get(off..off + 2)
            .map_or(0, |b| u16::from_le_bytes([b[0], b[1]]))
    };
    let table = |limit: usize, base: usize| DescriptorTable {
        limit: u16_at(limit),
        base: {
            let b = special.get(base..base + word).unwrap_or(&[]);
            let mut v = [0u8; 8];
            v[..b.len()].copy_from_slice(b);
            u64::from_le_bytes(v)
        },
    };
    let (gdtr, idtr, tr, ldtr) = if x64 {
        (
            table(0x56, 0x58),
            table(0x66, 0x68),
            u16_at(0x70),
            u16_at(0x72),
        )
    } else {
        (
            table(0x2A, 0x2C),
            table(0x32, 0x34),
            u16_at(0x38),
            u16_at(0x3A),
        )
    };
    let cr4 = reg(3);
    let seg = |selector: u16| SegmentRegister {
        selector,
        ..SegmentRegister::default()
    };
    // A 64-bit kernel's code segment: present, DPL from the selector, L set (attributes in
    // CpuState's layout: type/S/DPL/P in bits 0..8, L at bit 13).
    let cs_attributes = if x64 {
        0x209B | ((c.cs & 3) << 5)
    } else {
        0x409B | ((c.cs & 3) << 5)
    };
    CpuState {
        index,
        rax: c.rax,
        rcx: c.rcx,
        rdx: c.rdx,
        rbx: c.rbx,
        rsp: c.rsp,
        rbp: c.rbp,
        rsi: c.rsi,
        rdi: c.rdi,
        r8: c.r8,
        r9: c.r9,
        r10: c.r10,
        r11: c.r11,
        r12: c.r12,
        r13: c.r13,
        r14: c.r14,
        r15: c.r15,
        rip: c.rip,
        rflags: c.rflags,
        cr0: reg(0),
        cr2: reg(1),
        cr3: reg(2),
        cr4,
        efer: if x64 {
            EFER_X64
        } else if cr4 & 0x20 != 0 {
            EFER_NX
        } else {
            0
        },
        dr0: c.dr0,
        dr1: c.dr1,
        dr2: c.dr2,
        dr3: c.dr3,
        dr6: c.dr6,
        dr7: c.dr7,
        cs: SegmentRegister {
            selector: c.cs,
            attributes: cs_attributes,
            ..SegmentRegister::default()
        },
        ds: seg(c.ds),
        es: seg(c.es),
        fs: seg(c.fs),
        gs: seg(c.gs),
        ss: seg(c.ss),
        tr: seg(tr),
        ldtr: seg(ldtr),
        gdtr,
        idtr,
        cpl: (c.cs & 3) as u8,
        fp: c.fxsave.as_ref().map(|f| fp_state(f, c.mxcsr)),
        has_gp: true,
        has_control: true,
        has_segments: true,
        ..CpuState::default()
    }
}

/// x87/SSE state from an FXSAVE image (the CONTEXT's FltSave).
fn fp_state(f: &[u8; 512], mxcsr: u32) -> FpState {
    let u16_at = |o: usize| u16::from_le_bytes([f[o], f[o + 1]]);
    let u32_at = |o: usize| u32::from_le_bytes([f[o], f[o + 1], f[o + 2], f[o + 3]]);
    let u64_at = |o: usize| u64::from(u32_at(o)) | (u64::from(u32_at(o + 4)) << 32);
    let u128_at = |o: usize| u128::from(u64_at(o)) | (u128::from(u64_at(o + 8)) << 64);
    let mut st = [0u128; 8];
    let mut xmm = [0u128; 16];
    for (i, r) in st.iter_mut().enumerate() {
        *r = u128_at(32 + i * 16);
    }
    for (i, r) in xmm.iter_mut().enumerate() {
        *r = u128_at(160 + i * 16);
    }
    FpState {
        xmm,
        st,
        fcw: u16_at(0),
        fsw: u16_at(2),
        ftw: f[4],
        fop: u16_at(6),
        fip: u64_at(8),
        fdp: u64_at(16),
        mxcsr,
        mxcsr_mask: u32_at(28),
    }
}
