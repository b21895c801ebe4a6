//! The `partition_state` blob: envelope, 'METI' items and the chunk stream with the
//! per-VP register chunks (format reference section 7).

use crate::model::{SynthVm, SynthVp, VpState};
use crate::options::{PartitionStyle, VtlOrder};

/// PROLOG: tag, summary flag, vendor, processor features.
pub const CHUNK_PROLOG: u32 = 0x0000_0000;
/// EPILOG: empty, ends the stream.
pub const CHUNK_EPILOG: u32 = 0xF000_0000;
/// CPUID data (zeros here but for its first u32).
pub const CHUNK_CPUID: u32 = 0x2000_0000;
/// Guest OS identity ([`SynthVm::guest_os_id`]).
pub const CHUNK_OS_ID: u32 = 0x2000_1000;
/// Boot VP index and the bitmap of present VP indices.
pub const CHUNK_VP_INDICES: u32 = 0x3000_0000;
/// Starts the chunks of one VP (u32 index).
pub const CHUNK_VP: u32 = 0x3000_1000;
/// General-purpose registers ([`crate::GpRegs`]).
pub const CHUNK_GP: u32 = 0x3000_5000;
/// x87/SSE registers ([`crate::FpRegs`]).
pub const CHUNK_FP: u32 = 0x3000_6000;
/// Control registers ([`crate::ControlRegs`]).
pub const CHUNK_CONTROL: u32 = 0x3000_7000;
/// Debug registers ([`crate::DebugRegs`]).
pub const CHUNK_DEBUG: u32 = 0x3000_8000;
/// Segment registers ([`crate::SegmentRegs`]).
pub const CHUNK_SEGMENTS: u32 = 0x3000_9000;
/// IDTR and GDTR ([`crate::TableRegs`]).
pub const CHUNK_TABLES: u32 = 0x3000_A000;
/// Virtual MSRs ([`VpState::virtual_msrs`]).
pub const CHUNK_VIRTUAL_MSRS: u32 = 0x3000_B000;
/// PAT and MTRRs (fixed values as in the sample).
pub const CHUNK_MTRR_PAT: u32 = 0x3000_C000;
/// APIC state (zeros).
pub const CHUNK_APIC: u32 = 0x3000_F000;
/// SynIC MSRs (zeros).
pub const CHUNK_SYNIC: u32 = 0x3001_0000;
/// Selects the VTL (u8) the following register chunks belong to.
pub const CHUNK_VP_VTL: u32 = 0x3001_A000;
/// VTL control page, emitted after a VTL-1 register set (zeros).
pub const CHUNK_VP_VTL_CONTROL_PAGE: u32 = 0x3001_8000;

/// The bytes of the PROLOG tag as found in real files.
pub const PROLOG_TAG: [u8; 4] = *b"PTud";

/// Which producer's chunk set to imitate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkFlavor {
    /// As in the `.VMRS` sample (219 chunks for 4 VPs).
    Vmrs,
    /// As in the `.vsv` sample (201 chunks for 4 VPs).
    Vsv,
}

/// One chunk of the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkLoc {
    /// Chunk id.
    pub id: u32,
    /// Offset of the 16-byte chunk header within the blob.
    pub offset: u64,
    /// Body length.
    pub len: u32,
    /// VP the chunk belongs to (after a VP chunk).
    pub vp: Option<u32>,
    /// VTL in force when the chunk was written.
    pub vtl: u8,
}

/// Where things are inside the partition_state blob.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PartitionLayout {
    /// `header_size` of the envelope: offset of the last item header.
    pub header_size: u64,
    /// `total_size` of the envelope: end of the chunk stream.
    pub total_size: u64,
    /// Offset of the first chunk (`header_size + 16`).
    pub stream_start: u64,
    /// Bytes of the stored value (`total_size` + trailing zeros).
    pub value_size: u64,
    /// Every chunk of the stream, in order (the summary PROLOG of the `HvSm` item excluded).
    pub chunks: Vec<ChunkLoc>,
}

impl PartitionLayout {
    /// The first chunk with this id, VP and VTL (e.g. the GP chunk of VP 2 in VTL 0).
    pub fn find(&self, id: u32, vp: Option<u32>, vtl: u8) -> Option<&ChunkLoc> {
        self.chunks
            .iter()
            .find(|c| c.id == id && c.vp == vp && c.vtl == vtl)
    }
}

struct Stream {
    buf: Vec<u8>,
    base: u64,
    chunks: Vec<ChunkLoc>,
    vp: Option<u32>,
    vtl: u8,
}

impl Stream {
    fn chunk(&mut self, id: u32, body: &[u8]) {
        debug_assert_eq!(body.len() % 16, 0, "chunk {id:#x}");
        if id == CHUNK_VP {
            self.vp = Some(u32::from_le_bytes(body[..4].try_into().unwrap()));
            self.vtl = 0;
        }
        if id == CHUNK_VP_VTL {
            self.vtl = body[0];
        }
        self.chunks.push(ChunkLoc {
            id,
            offset: self.base + self.buf.len() as u64,
            len: body.len() as u32,
            vp: self.vp,
            vtl: self.vtl,
        });
        self.buf.extend_from_slice(&id.to_le_bytes());
        self.buf
            .extend_from_slice(&(body.len() as u32).to_le_bytes());
        self.buf.extend_from_slice(&[0u8; 8]);
        self.buf.extend_from_slice(body);
    }

    fn zeros(&mut self, id: u32, len: usize) {
        self.chunk(id, &vec![0u8; len]);
    }
}

fn u64s(v: &[u64]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn prolog(vm: &SynthVm, summary: bool) -> Vec<u8> {
    let mut b = vec![0u8; 0xFE0];
    b[0..4].copy_from_slice(&PROLOG_TAG);
    b[4] = summary as u8;
    b[8..12].copy_from_slice(&vm.vendor.code().to_le_bytes());
    b[16..24].copy_from_slice(&vm.processor_features.to_le_bytes());
    b[32..40].copy_from_slice(&8u64.to_le_bytes());
    b[40..48].copy_from_slice(&vm.implemented_physical_address_bits.to_le_bytes());
    b
}

/// The register chunks of one register set.
fn register_chunks(s: &mut Stream, r: &VpState, flavor_full: bool, with_misc: bool) {
    let misc = |s: &mut Stream, id: u32, len: usize| {
        if with_misc {
            s.zeros(id, len);
        }
    };
    misc(s, 0x3000_3000, 0x20);
    s.chunk(CHUNK_GP, &u64s(&r.gp.to_array()));
    // FP / XMM
    let mut fp = Vec::with_capacity(0x1A0);
    for x in r.fp.xmm {
        fp.extend_from_slice(&x.to_le_bytes());
    }
    for x in r.fp.st {
        fp.extend_from_slice(&x.to_le_bytes());
    }
    fp.extend_from_slice(&r.fp.fcw.to_le_bytes());
    fp.extend_from_slice(&r.fp.fsw.to_le_bytes());
    fp.push(r.fp.ftw);
    fp.push(0);
    fp.extend_from_slice(&r.fp.fop.to_le_bytes());
    fp.extend_from_slice(&r.fp.fp_ip.to_le_bytes());
    fp.extend_from_slice(&r.fp.fp_dp.to_le_bytes());
    fp.extend_from_slice(&r.fp.mxcsr.to_le_bytes());
    fp.extend_from_slice(&r.fp.mxcsr_mask.to_le_bytes());
    s.chunk(CHUNK_FP, &fp);
    let c = &r.control;
    s.chunk(
        CHUNK_CONTROL,
        &u64s(&[c.cr0, c.cr2, c.cr3, c.cr4, c.cr8, c.efer]),
    );
    misc(s, 0x3000_4000, 0x10);
    let d = &r.debug;
    s.chunk(
        CHUNK_DEBUG,
        &u64s(&[d.dr0, d.dr1, d.dr2, d.dr3, d.dr6, d.dr7]),
    );
    let g = &r.segments;
    let mut seg = Vec::with_capacity(0x90);
    for x in [g.es, g.cs, g.ss, g.ds, g.fs, g.gs, g.ldtr, g.tr] {
        seg.extend_from_slice(&x.base.to_le_bytes());
        seg.extend_from_slice(&x.limit.to_le_bytes());
        seg.extend_from_slice(&x.selector.to_le_bytes());
        seg.extend_from_slice(&x.attributes.to_le_bytes());
    }
    seg.push(g.cpl);
    seg.extend_from_slice(&[0u8; 15]);
    s.chunk(CHUNK_SEGMENTS, &seg);
    let mut t = Vec::with_capacity(0x20);
    for x in [r.tables.idtr, r.tables.gdtr] {
        t.extend_from_slice(&[0u8; 6]);
        t.extend_from_slice(&x.limit.to_le_bytes());
        t.extend_from_slice(&x.base.to_le_bytes());
    }
    s.chunk(CHUNK_TABLES, &t);
    s.chunk(CHUNK_VIRTUAL_MSRS, &u64s(&r.virtual_msrs));
    if with_misc {
        let mut mtrr = [0u64; 46];
        mtrr[0] = 0x0007_0406_0007_0406;
        mtrr[1] = 0x508;
        mtrr[2] = 0xC00;
        for m in &mut mtrr[3..14] {
            *m = 0x0606_0606_0606_0606;
        }
        s.chunk(CHUNK_MTRR_PAT, &u64s(&mtrr));
        s.zeros(0x3001_5000, 0x30);
        s.zeros(0x3001_6000, 0x10);
        s.zeros(CHUNK_APIC, 0xE0);
        s.zeros(CHUNK_SYNIC, 0xA0);
        if flavor_full {
            s.zeros(0x3001_7000, 0x20);
        }
        s.zeros(0x3001_1000, 0x40);
        for id in [0x3001_2000u32, 0x3001_3000] {
            for i in 0..16u32 {
                let mut b = vec![0u8; 0x110];
                b[..4].copy_from_slice(&i.to_le_bytes());
                s.chunk(id, &b);
            }
        }
        if flavor_full {
            s.zeros(0x3001_F000, 0x10);
            s.zeros(0x3002_7000, 0x10);
            s.zeros(0x3002_9000, 0x10);
        }
    }
}

fn vtl_chunk(s: &mut Stream, vtl: u8) {
    let mut b = [0u8; 16];
    b[0] = vtl;
    s.chunk(CHUNK_VP_VTL, &b);
}

fn vp_chunks(s: &mut Stream, vm: &SynthVm, vp: &SynthVp, first: bool, flavor: ChunkFlavor) {
    let full = flavor == ChunkFlavor::Vmrs;
    let mut b = [0u8; 16];
    b[..4].copy_from_slice(&vp.index.to_le_bytes());
    s.chunk(CHUNK_VP, &b);
    if first {
        let mut os = [0u8; 16];
        os[..8].copy_from_slice(&vm.guest_os_id.to_le_bytes());
        s.chunk(CHUNK_OS_ID, &os);
        s.zeros(0x2000_2000, 0x10);
        let mut r = [0u8; 16];
        r[0] = 2;
        s.chunk(0x2000_3000, &r);
        if full {
            s.zeros(0x2000_B000, 0x20);
            s.zeros(0x2000_C000, 0x20);
        }
    }
    match (vp.vtl1.as_ref(), vm.partition.vtl_order) {
        (None, _) => register_chunks(s, &vp.vtl0, full, true),
        (Some(v1), VtlOrder::Vtl0First) => {
            register_chunks(s, &vp.vtl0, full, true);
            vtl_chunk(s, 1);
            register_chunks(s, v1, full, false);
            s.zeros(CHUNK_VP_VTL_CONTROL_PAGE, 0x10);
        }
        (Some(v1), VtlOrder::Vtl1First) => {
            vtl_chunk(s, 1);
            register_chunks(s, v1, full, false);
            s.zeros(CHUNK_VP_VTL_CONTROL_PAGE, 0x10);
            vtl_chunk(s, 0);
            register_chunks(s, &vp.vtl0, full, true);
        }
    }
}

fn item(out: &mut Vec<u8>, tag: &[u8; 4], data_len: u32) {
    out.extend_from_slice(b"METI");
    out.extend_from_slice(tag);
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&data_len.to_le_bytes());
}

/// Build the stored partition_state value.
pub fn build(vm: &SynthVm, flavor: ChunkFlavor) -> (Vec<u8>, PartitionLayout) {
    let opts = &vm.partition;
    let mut head = Vec::new();
    head.extend_from_slice(&24u64.to_le_bytes());
    head.extend_from_slice(&0u64.to_le_bytes()); // header_size, patched below
    head.extend_from_slice(&0u64.to_le_bytes()); // total_size, patched below
    let header_size: u64;
    match opts.style {
        PartitionStyle::Items => {
            item(&mut head, b"sreV", 4);
            head.extend_from_slice(&0x100u32.to_le_bytes());
            item(&mut head, b"tCpV", 4);
            let vpct = opts.vp_count_item.unwrap_or(vm.vps.len() as u32);
            head.extend_from_slice(&vpct.to_le_bytes());
            let mut summary = Stream {
                buf: Vec::new(),
                base: 0,
                chunks: Vec::new(),
                vp: None,
                vtl: 0,
            };
            summary.chunk(CHUNK_PROLOG, &prolog(vm, true));
            item(&mut head, b"mSvH", summary.buf.len() as u32);
            head.extend_from_slice(&summary.buf);
            header_size = head.len() as u64;
            item(&mut head, b"tSvH", 0); // data size patched below
        }
        PartitionStyle::Bare => {
            header_size = 24;
            head.extend_from_slice(&[0u8; 16]);
        }
    }
    let stream_start = head.len() as u64;
    debug_assert_eq!(stream_start, header_size + 16);
    let mut s = Stream {
        buf: Vec::new(),
        base: stream_start,
        chunks: Vec::new(),
        vp: None,
        vtl: 0,
    };
    s.chunk(CHUNK_PROLOG, &prolog(vm, false));
    let mut cpuid = vec![0u8; 0x610];
    cpuid[..4].copy_from_slice(&1u32.to_le_bytes());
    s.chunk(CHUNK_CPUID, &cpuid);
    s.zeros(0x0200_6000, 0x10);
    let mut idx = [0u8; 16];
    idx[..4].copy_from_slice(&opts.boot_vp.to_le_bytes());
    for vp in &vm.vps {
        let bit = vp.index as usize;
        if bit < 96 {
            idx[4 + bit / 8] |= 1 << (bit % 8);
        }
    }
    s.chunk(CHUNK_VP_INDICES, &idx);
    let mut tsc = [0u8; 16];
    tsc[..8].copy_from_slice(&0x0270_F273u64.to_le_bytes());
    s.chunk(0x2000_5000, &tsc);
    for (i, vp) in vm.vps.iter().enumerate() {
        vp_chunks(&mut s, vm, vp, i == 0, flavor);
    }
    for (id, body) in &opts.extra_chunks {
        s.chunk(*id, body);
    }
    s.chunk(CHUNK_EPILOG, &[]);
    let total_size = stream_start + s.buf.len() as u64;
    head[8..16].copy_from_slice(&header_size.to_le_bytes());
    head[16..24].copy_from_slice(&total_size.to_le_bytes());
    if opts.style == PartitionStyle::Items {
        let at = header_size as usize + 12;
        let data = (total_size - header_size - 16) as u32;
        head[at..at + 4].copy_from_slice(&data.to_le_bytes());
    }
    let mut blob = head;
    blob.extend_from_slice(&s.buf);
    blob.extend(std::iter::repeat_n(0u8, opts.trailing_zeros));
    let layout = PartitionLayout {
        header_size,
        total_size,
        stream_start,
        value_size: blob.len() as u64,
        chunks: s.chunks,
    };
    (blob, layout)
}
