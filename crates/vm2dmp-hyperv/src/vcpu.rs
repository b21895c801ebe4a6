//! vCPU state from `partition_state` (docs/hyperv-saved-state.md section 7).

use std::collections::BTreeMap;

use vm2dmp_formats::partition::{
    chunk, u64_array, vendor, ChunkHeader, Envelope, Segment, TableRegister,
    CONTROL_REGISTERS_SIZE, DEBUG_REGISTERS_SIZE, FP_REGISTERS_SIZE, GP_REGISTERS_SIZE,
    PROLOG_VENDOR_AT, SEGMENT_REGISTERS_SIZE, TABLE_REGISTERS_SIZE, VIRTUAL_MSRS_SIZE,
};
use vm2dmp_source::le;

use vm2dmp_source::{CpuState, DescriptorTable, FileCtx, FpState, Msrs, Result, SegmentRegister};

/// The registers of one virtual processor at a virtual trust level above 0 (the secure
/// kernel of a guest with virtualization-based security).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct VtlState {
    /// The virtual trust level (1 or 2).
    pub vtl: u8,
    /// Its registers.
    pub cpu: CpuState,
}

fn segment(s: Segment) -> SegmentRegister {
    SegmentRegister {
        base: s.base,
        limit: s.limit,
        selector: s.selector,
        attributes: s.attributes,
    }
}

fn table(t: TableRegister) -> DescriptorTable {
    DescriptorTable {
        limit: t.limit,
        base: t.base,
    }
}

/// The named MSRs of Hyper-V's twelve virtual MSRs: [0] TSC, [1] kernel GS base, [2] APIC
/// base, [7] STAR, [8] LSTAR, [9] CSTAR, [10] SFMASK.
fn msrs(r: [u64; 12]) -> Msrs {
    Msrs {
        tsc: r[0],
        kernel_gs_base: r[1],
        apic_base: r[2],
        star: r[7],
        lstar: r[8],
        cstar: r[9],
        sfmask: r[10],
    }
}

/// Everything read from `partition_state`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct PartitionState {
    /// VTL-0 state of each VP, ordered by VP index.
    pub vps: Vec<CpuState>,
    /// Register sets of higher VTLs, if the file has them.
    pub higher_vtls: Vec<VtlState>,
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

/// The registers one register chunk holds.
enum RegisterUpdate {
    Gp([u64; 18]),
    Control([u64; 6]),
    Debug([u64; 6]),
    Segments([SegmentRegister; 8], u8),
    Tables(DescriptorTable, DescriptorTable),
    Fp(Box<FpState>),
    Msrs(Msrs),
}

impl RegisterUpdate {
    fn apply(&self, v: &mut CpuState) {
        match *self {
            RegisterUpdate::Gp(r) => {
                [
                    v.rax, v.rcx, v.rdx, v.rbx, v.rsp, v.rbp, v.rsi, v.rdi, v.r8, v.r9, v.r10,
                    v.r11, v.r12, v.r13, v.r14, v.r15, v.rip, v.rflags,
                ] = r;
                v.has_gp = true;
            }
            RegisterUpdate::Control(r) => {
                [v.cr0, v.cr2, v.cr3, v.cr4, v.cr8, v.efer] = r;
                v.has_control = true;
            }
            RegisterUpdate::Debug(r) => [v.dr0, v.dr1, v.dr2, v.dr3, v.dr6, v.dr7] = r,
            RegisterUpdate::Segments(s, cpl) => {
                [v.es, v.cs, v.ss, v.ds, v.fs, v.gs, v.ldtr, v.tr] = s;
                v.cpl = cpl;
                v.has_segments = true;
            }
            RegisterUpdate::Tables(idtr, gdtr) => {
                v.idtr = idtr;
                v.gdtr = gdtr;
            }
            RegisterUpdate::Fp(ref fp) => v.fp = Some(**fp),
            RegisterUpdate::Msrs(m) => v.msrs = Some(m),
        }
    }
}

/// The registers of a register chunk (`None` for any other chunk); `Err(bytes needed)` when
/// the body is shorter than the chunk's layout.
fn decode_registers(id: u32, body: &[u8]) -> std::result::Result<Option<RegisterUpdate>, usize> {
    Ok(Some(match id {
        chunk::GP_REGISTERS => RegisterUpdate::Gp(u64_array::<18>(body).ok_or(GP_REGISTERS_SIZE)?),
        chunk::CONTROL_REGISTERS => {
            RegisterUpdate::Control(u64_array::<6>(body).ok_or(CONTROL_REGISTERS_SIZE)?)
        }
        chunk::DEBUG_REGISTERS => {
            RegisterUpdate::Debug(u64_array::<6>(body).ok_or(DEBUG_REGISTERS_SIZE)?)
        }
        chunk::SEGMENT_REGISTERS => {
            if body.len() < SEGMENT_REGISTERS_SIZE {
                return Err(SEGMENT_REGISTERS_SIZE);
            }
            let seg = |i: usize| segment(Segment::parse(&body[i * 16..]).unwrap_or_default());
            RegisterUpdate::Segments(std::array::from_fn(seg), body[8 * 16])
        }
        chunk::TABLE_REGISTERS => {
            if body.len() < TABLE_REGISTERS_SIZE {
                return Err(TABLE_REGISTERS_SIZE);
            }
            RegisterUpdate::Tables(
                table(TableRegister::parse(&body[0..16]).unwrap_or_default()),
                table(TableRegister::parse(&body[16..32]).unwrap_or_default()),
            )
        }
        chunk::FP_REGISTERS => {
            if body.len() < FP_REGISTERS_SIZE {
                return Err(FP_REGISTERS_SIZE);
            }
            RegisterUpdate::Fp(Box::new(fp_state(body)))
        }
        chunk::VIRTUAL_MSRS => {
            RegisterUpdate::Msrs(msrs(u64_array::<12>(body).ok_or(VIRTUAL_MSRS_SIZE)?))
        }
        _ => return Ok(None),
    }))
}

/// x87/SSE state from an FP_REGISTERS chunk body (at least `FP_REGISTERS_SIZE` bytes).
fn fp_state(body: &[u8]) -> FpState {
    let q = |o: usize| le::u128(body, o).unwrap_or(0);
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
    fp
}

/// At most this many VPs (Hyper-V's limit is lower).
const MAX_VPS: usize = 4096;

/// Where the chunk stream of a `partition_state` value lies: `(first byte, end)` in `blob`.
fn chunk_stream(ctx: &FileCtx, blob: &[u8], blob_offset: u64) -> Result<(usize, usize)> {
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
    Ok((env.header_size as usize + 16, env.total_size as usize))
}

const S: &str = "partition_state";

/// Parses a `partition_state` value found at `blob_offset` of its file.
pub(crate) fn parse(ctx: &FileCtx, blob: &[u8], blob_offset: u64) -> Result<PartitionState> {
    let (mut pos, end) = chunk_stream(ctx, blob, blob_offset)?;
    let mut vps: BTreeMap<(u32, u8), CpuState> = BTreeMap::new();
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
        let mut with_vp = |f: &mut dyn FnMut(&mut CpuState)| -> Result<()> {
            let key = current.ok_or_else(|| {
                ctx.corrupt(
                    "partition_state chunk",
                    at,
                    format!("register chunk {:#010x} before any VP chunk", h.id),
                )
            })?;
            let v = vps.entry(key).or_insert_with(|| CpuState {
                index: key.0,
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
                    CpuState {
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
            id => {
                if let Some(update) = decode_registers(id, body).map_err(too_short)? {
                    with_vp(&mut |v| update.apply(v))?;
                }
            }
        }
        if saw_epilog {
            break;
        }
    }
    if !saw_epilog {
        return Err(ctx.corrupt(S, blob_offset + end as u64, "chunk stream has no epilog"));
    }
    finish(ctx, blob_offset, vps, indices_bitmap, out)
}

/// Sorts the registers read into VTL-0 processors and higher VTLs and checks that every
/// processor has what a dump needs.
fn finish(
    ctx: &FileCtx,
    blob_offset: u64,
    vps: BTreeMap<(u32, u8), CpuState>,
    indices_bitmap: Option<Vec<u8>>,
    mut out: PartitionState,
) -> Result<PartitionState> {
    for ((_, vtl), cpu) in vps {
        if vtl == 0 {
            out.vps.push(cpu);
        } else {
            out.higher_vtls.push(VtlState { vtl, cpu });
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
