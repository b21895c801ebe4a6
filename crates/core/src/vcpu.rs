//! vCPU state from `partition_state` (docs/hyperv-saved-state.md section 7).

use std::collections::BTreeMap;

use serde::Serialize;
use vm2dmp_formats::le;
use vm2dmp_formats::partition::{
    chunk, u64_array, vendor, ChunkHeader, Envelope, Segment, TableRegister,
    CONTROL_REGISTERS_SIZE, DEBUG_REGISTERS_SIZE, FP_REGISTERS_SIZE, GP_REGISTERS_SIZE,
    PROLOG_VENDOR_AT, SEGMENT_REGISTERS_SIZE, TABLE_REGISTERS_SIZE, VIRTUAL_MSRS_SIZE,
};

use crate::error::{FileCtx, Result};

/// Architecture of a vCPU, as Microsoft's saved-state API reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Architecture {
    X86,
    X64,
}

/// Paging mode, as Microsoft's saved-state API reports it: long mode if EFER.LMA, else PAE if
/// CR4.PAE, else 32-bit. CR0.PG is not consulted (the API says `Bit32` for a vCPU in real mode);
/// see [`VpState::paging_enabled`] for whether paging is actually on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum PagingMode {
    Bit32,
    Pae,
    Long,
}

/// One segment register.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct SegmentRegister {
    pub base: u64,
    pub limit: u32,
    pub selector: u16,
    pub attributes: u16,
}

impl From<Segment> for SegmentRegister {
    fn from(s: Segment) -> Self {
        Self {
            base: s.base,
            limit: s.limit,
            selector: s.selector,
            attributes: s.attributes,
        }
    }
}

/// One descriptor-table register (IDTR, GDTR).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct DescriptorTable {
    pub limit: u16,
    pub base: u64,
}

impl From<TableRegister> for DescriptorTable {
    fn from(t: TableRegister) -> Self {
        Self {
            limit: t.limit,
            base: t.base,
        }
    }
}

/// x87 / SSE state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct FpState {
    pub xmm: [u128; 16],
    /// st0..st7, 80 bits each in the low bytes of 16.
    pub st: [u128; 8],
    pub fcw: u16,
    pub fsw: u16,
    /// Abridged tag word (one bit per register), as FXSAVE stores it.
    pub ftw: u8,
    pub fop: u16,
    pub fip: u64,
    pub fdp: u64,
    pub mxcsr: u32,
    pub mxcsr_mask: u32,
}

impl FpState {
    /// The 512-byte FXSAVE image of this state (the layout a CONTEXT's FltSave uses).
    pub fn fxsave(&self) -> [u8; 512] {
        let mut b = [0u8; 512];
        b[0..2].copy_from_slice(&self.fcw.to_le_bytes());
        b[2..4].copy_from_slice(&self.fsw.to_le_bytes());
        b[4] = self.ftw;
        b[6..8].copy_from_slice(&self.fop.to_le_bytes());
        b[8..16].copy_from_slice(&self.fip.to_le_bytes());
        b[16..24].copy_from_slice(&self.fdp.to_le_bytes());
        b[24..28].copy_from_slice(&self.mxcsr.to_le_bytes());
        b[28..32].copy_from_slice(&self.mxcsr_mask.to_le_bytes());
        for (i, st) in self.st.iter().enumerate() {
            b[32 + i * 16..48 + i * 16].copy_from_slice(&st.to_le_bytes());
        }
        for (i, x) in self.xmm.iter().enumerate() {
            b[160 + i * 16..176 + i * 16].copy_from_slice(&x.to_le_bytes());
        }
        b
    }
}

/// Registers of one virtual processor at one virtual trust level.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct VpState {
    pub index: u32,
    pub vtl: u8,
    pub rax: u64,
    pub rcx: u64,
    pub rdx: u64,
    pub rbx: u64,
    pub rsp: u64,
    pub rbp: u64,
    pub rsi: u64,
    pub rdi: u64,
    pub r8: u64,
    pub r9: u64,
    pub r10: u64,
    pub r11: u64,
    pub r12: u64,
    pub r13: u64,
    pub r14: u64,
    pub r15: u64,
    pub rip: u64,
    pub rflags: u64,
    pub cr0: u64,
    pub cr2: u64,
    pub cr3: u64,
    pub cr4: u64,
    pub cr8: u64,
    pub efer: u64,
    pub dr0: u64,
    pub dr1: u64,
    pub dr2: u64,
    pub dr3: u64,
    pub dr6: u64,
    pub dr7: u64,
    pub es: SegmentRegister,
    pub cs: SegmentRegister,
    pub ss: SegmentRegister,
    pub ds: SegmentRegister,
    pub fs: SegmentRegister,
    pub gs: SegmentRegister,
    pub ldtr: SegmentRegister,
    pub tr: SegmentRegister,
    pub cpl: u8,
    pub idtr: DescriptorTable,
    pub gdtr: DescriptorTable,
    pub fp: Option<FpState>,
    /// The twelve virtual MSRs: [0] TSC, [1] kernel GS base, [2] APIC base, [7] STAR,
    /// [8] LSTAR, [9] CSTAR, [10] SFMASK.
    pub virtual_msrs: Option<[u64; 12]>,
    /// Which register chunks were present.
    pub has_gp: bool,
    pub has_control: bool,
    pub has_segments: bool,
}

impl Default for FpState {
    fn default() -> Self {
        Self {
            xmm: [0; 16],
            st: [0; 8],
            fcw: 0x37F,
            fsw: 0,
            ftw: 0,
            fop: 0,
            fip: 0,
            fdp: 0,
            mxcsr: 0x1F80,
            mxcsr_mask: 0xFFFF,
        }
    }
}

const CR0_PE: u64 = 1;
const CR0_PG: u64 = 1 << 31;
const CR4_PAE: u64 = 1 << 5;
const CR4_LA57: u64 = 1 << 12;
const EFER_LMA: u64 = 1 << 10;

impl VpState {
    pub fn architecture(&self) -> Architecture {
        if self.efer & EFER_LMA != 0 {
            Architecture::X64
        } else {
            Architecture::X86
        }
    }

    pub fn paging_mode(&self) -> PagingMode {
        if self.efer & EFER_LMA != 0 {
            PagingMode::Long
        } else if self.cr4 & CR4_PAE != 0 {
            PagingMode::Pae
        } else {
            PagingMode::Bit32
        }
    }

    /// CR0.PG: the vCPU translates addresses through page tables.
    pub fn paging_enabled(&self) -> bool {
        self.cr0 & CR0_PG != 0
    }

    /// CR0.PE: protected mode.
    pub fn protected_mode(&self) -> bool {
        self.cr0 & CR0_PE != 0
    }

    /// CR4.LA57: five-level paging (in long mode).
    pub fn five_level_paging(&self) -> bool {
        self.cr4 & CR4_LA57 != 0
    }

    /// Mode description in words (real, protected, PAE, long...).
    pub fn mode_description(&self) -> &'static str {
        match (
            self.protected_mode(),
            self.paging_enabled(),
            self.paging_mode(),
        ) {
            (false, _, _) => "real mode",
            (true, false, _) => "protected mode, paging off",
            (true, true, PagingMode::Bit32) => "protected mode, 32-bit paging",
            (true, true, PagingMode::Pae) => "protected mode, PAE paging",
            (true, true, PagingMode::Long) if self.five_level_paging() => {
                "long mode, 5-level paging"
            }
            (true, true, PagingMode::Long) => "long mode, 4-level paging",
        }
    }

    /// The kernel GS base MSR, if saved.
    pub fn kernel_gs_base(&self) -> Option<u64> {
        self.virtual_msrs.map(|m| m[1])
    }
}

/// Everything read from `partition_state`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PartitionState {
    /// VTL-0 state of each VP, ordered by VP index.
    pub vps: Vec<VpState>,
    /// Register sets of higher VTLs, if the file has them.
    pub higher_vtls: Vec<VpState>,
    /// Index of the boot processor (from VP_INDICES), if present.
    pub boot_vp: Option<u32>,
    /// Processor vendor code from the PROLOG chunk.
    pub vendor: Option<u32>,
    /// Guest OS id (Hyper-V guest OS identity MSR), if saved.
    pub guest_os_id: Option<u64>,
    /// Number of chunks in the stream.
    pub chunks: usize,
    /// Number of VPs the VP_INDICES bitmap lists, if present.
    pub vp_indices_count: Option<u32>,
}

/// At most this many VPs (Hyper-V's limit is lower).
const MAX_VPS: usize = 4096;

pub(crate) fn parse(ctx: &FileCtx, blob: &[u8], blob_offset: u64) -> Result<PartitionState> {
    const S: &str = "partition_state";
    let env = Envelope::parse(blob).ok_or_else(|| {
        ctx.corrupt(
            S,
            blob_offset,
            format!("{} bytes, too short for its envelope", blob.len()),
        )
    })?;
    let start = env.header_size.checked_add(16);
    if env.header_size < Envelope::SIZE as u64
        || start.is_none_or(|s| s > env.total_size)
        || env.total_size > blob.len() as u64
    {
        return Err(ctx.corrupt(
            S,
            blob_offset,
            format!(
                "envelope header size {} / total size {} do not fit the {}-byte value",
                env.header_size,
                env.total_size,
                blob.len()
            ),
        ));
    }
    let end = env.total_size as usize;
    let mut pos = env.header_size as usize + 16;
    let mut vps: BTreeMap<(u32, u8), VpState> = BTreeMap::new();
    let mut current: Option<(u32, u8)> = None;
    let mut out = PartitionState {
        vps: Vec::new(),
        higher_vtls: Vec::new(),
        boot_vp: None,
        vendor: None,
        guest_os_id: None,
        chunks: 0,
        vp_indices_count: None,
    };
    let mut indices_bitmap: Option<Vec<u8>> = None;
    let mut saw_epilog = false;
    while pos < end {
        let at = blob_offset + pos as u64;
        let h = ChunkHeader::parse(&blob[pos..end])
            .ok_or_else(|| ctx.corrupt("partition_state chunk", at, "chunk header truncated"))?;
        let body_start = pos + ChunkHeader::SIZE;
        let body_end = body_start
            .checked_add(h.length as usize)
            .filter(|&e| e <= end)
            .ok_or_else(|| {
                ctx.corrupt(
                    "partition_state chunk",
                    at,
                    format!(
                        "chunk {:#010x} of {} bytes runs past the end",
                        h.id, h.length
                    ),
                )
            })?;
        let body = &blob[body_start..body_end];
        out.chunks += 1;
        pos = body_end;
        let too_short = |need: usize| {
            ctx.corrupt(
                "partition_state chunk",
                at,
                format!(
                    "chunk {:#010x} has {} bytes, its layout needs {need}",
                    h.id,
                    body.len()
                ),
            )
        };
        let mut with_vp = |f: &mut dyn FnMut(&mut VpState)| -> Result<()> {
            let key = current.ok_or_else(|| {
                ctx.corrupt(
                    "partition_state chunk",
                    at,
                    format!("register chunk {:#010x} before any VP chunk", h.id),
                )
            })?;
            let v = vps.entry(key).or_insert_with(|| VpState {
                index: key.0,
                vtl: key.1,
                ..Default::default()
            });
            f(v);
            Ok(())
        };
        match h.id {
            chunk::EPILOG => {
                saw_epilog = true;
                if pos != end {
                    return Err(ctx.corrupt(
                        "partition_state chunk",
                        at,
                        "epilog chunk is not at the end of the stream",
                    ));
                }
            }
            chunk::PROLOG => {
                out.vendor = le::u32(body, PROLOG_VENDOR_AT);
            }
            chunk::OS_ID => out.guest_os_id = le::u64(body, 0),
            chunk::VP_INDICES => {
                out.boot_vp = le::u32(body, 0);
                indices_bitmap = body.get(4..).map(<[u8]>::to_vec);
            }
            chunk::VP => {
                let idx = le::u32(body, 0).ok_or_else(|| too_short(4))?;
                if vps.contains_key(&(idx, 0)) {
                    return Err(ctx.corrupt(
                        "partition_state chunk",
                        at,
                        format!("VP {idx} appears twice"),
                    ));
                }
                if vps.len() >= MAX_VPS {
                    return Err(ctx.corrupt(
                        "partition_state chunk",
                        at,
                        format!("more than {MAX_VPS} VPs"),
                    ));
                }
                current = Some((idx, 0));
                vps.insert(
                    (idx, 0),
                    VpState {
                        index: idx,
                        ..Default::default()
                    },
                );
            }
            chunk::VP_VTL => {
                let vtl = le::u8(body, 0).ok_or_else(|| too_short(1))?;
                let Some((idx, _)) = current else {
                    return Err(ctx.corrupt(
                        "partition_state chunk",
                        at,
                        "VP_VTL chunk before any VP chunk",
                    ));
                };
                current = Some((idx, vtl));
            }
            chunk::GP_REGISTERS => {
                let r = u64_array::<18>(body).ok_or_else(|| too_short(GP_REGISTERS_SIZE))?;
                with_vp(&mut |v| {
                    [
                        v.rax, v.rcx, v.rdx, v.rbx, v.rsp, v.rbp, v.rsi, v.rdi, v.r8, v.r9, v.r10,
                        v.r11, v.r12, v.r13, v.r14, v.r15, v.rip, v.rflags,
                    ] = r;
                    v.has_gp = true;
                })?;
            }
            chunk::CONTROL_REGISTERS => {
                let r = u64_array::<6>(body).ok_or_else(|| too_short(CONTROL_REGISTERS_SIZE))?;
                with_vp(&mut |v| {
                    [v.cr0, v.cr2, v.cr3, v.cr4, v.cr8, v.efer] = r;
                    v.has_control = true;
                })?;
            }
            chunk::DEBUG_REGISTERS => {
                let r = u64_array::<6>(body).ok_or_else(|| too_short(DEBUG_REGISTERS_SIZE))?;
                with_vp(&mut |v| [v.dr0, v.dr1, v.dr2, v.dr3, v.dr6, v.dr7] = r)?;
            }
            chunk::SEGMENT_REGISTERS => {
                if body.len() < SEGMENT_REGISTERS_SIZE {
                    return Err(too_short(SEGMENT_REGISTERS_SIZE));
                }
                let seg = |i: usize| {
                    SegmentRegister::from(Segment::parse(&body[i * 16..]).unwrap_or_default())
                };
                let cpl = body[8 * 16];
                with_vp(&mut |v| {
                    [v.es, v.cs, v.ss, v.ds, v.fs, v.gs, v.ldtr, v.tr] = [
                        seg(0),
                        seg(1),
                        seg(2),
                        seg(3),
                        seg(4),
                        seg(5),
                        seg(6),
                        seg(7),
                    ];
                    v.cpl = cpl;
                    v.has_segments = true;
                })?;
            }
            chunk::TABLE_REGISTERS => {
                if body.len() < TABLE_REGISTERS_SIZE {
                    return Err(too_short(TABLE_REGISTERS_SIZE));
                }
                let idtr =
                    DescriptorTable::from(TableRegister::parse(&body[0..16]).unwrap_or_default());
                let gdtr =
                    DescriptorTable::from(TableRegister::parse(&body[16..32]).unwrap_or_default());
                with_vp(&mut |v| {
                    v.idtr = idtr;
                    v.gdtr = gdtr;
                })?;
            }
            chunk::FP_REGISTERS => {
                if body.len() < FP_REGISTERS_SIZE {
                    return Err(too_short(FP_REGISTERS_SIZE));
                }
                let q = |o: usize| {
                    le::bytes::<16>(body, o)
                        .map(u128::from_le_bytes)
                        .unwrap_or(0)
                };
                let mut fp = FpState::default();
                for i in 0..16 {
                    fp.xmm[i] = q(i * 16);
                }
                for i in 0..8 {
                    fp.st[i] = q(256 + i * 16);
                }
                let c = 384;
                fp.fcw = le::u16(body, c).unwrap_or(0);
                fp.fsw = le::u16(body, c + 2).unwrap_or(0);
                fp.ftw = le::u8(body, c + 4).unwrap_or(0);
                fp.fop = le::u16(body, c + 6).unwrap_or(0);
                fp.fip = le::u64(body, c + 8).unwrap_or(0);
                fp.fdp = le::u64(body, c + 16).unwrap_or(0);
                fp.mxcsr = le::u32(body, c + 24).unwrap_or(0);
                fp.mxcsr_mask = le::u32(body, c + 28).unwrap_or(0);
                with_vp(&mut |v| v.fp = Some(fp))?;
            }
            chunk::VIRTUAL_MSRS => {
                let r = u64_array::<12>(body).ok_or_else(|| too_short(VIRTUAL_MSRS_SIZE))?;
                with_vp(&mut |v| v.virtual_msrs = Some(r))?;
            }
            _ => {}
        }
        if saw_epilog {
            break;
        }
    }
    if !saw_epilog {
        return Err(ctx.corrupt(
            S,
            blob_offset + env.total_size,
            "chunk stream has no epilog",
        ));
    }
    for ((_, vtl), v) in vps {
        if vtl == 0 {
            out.vps.push(v);
        } else {
            out.higher_vtls.push(v);
        }
    }
    if out.vps.is_empty() {
        return Err(ctx.corrupt(S, blob_offset, "no virtual processor in the saved state"));
    }
    if out.vendor == Some(vendor::ARM64) {
        return Err(ctx.unsupported("ARM64 guest (only x86 and x64 guests are read)"));
    }
    // A VP_INDICES count that disagrees is reported, not fatal: the VP chunks are what we read.
    out.vp_indices_count = indices_bitmap.map(|bm| bm.iter().map(|b| b.count_ones()).sum());
    for v in &out.vps {
        if !(v.has_gp && v.has_control && v.has_segments) {
            return Err(ctx.corrupt(
                S,
                blob_offset,
                format!(
                    "VP {} lacks its general, control or segment registers",
                    v.index
                ),
            ));
        }
    }
    Ok(out)
}
