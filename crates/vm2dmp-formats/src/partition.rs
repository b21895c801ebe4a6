//! `partition_state`: the envelope and the chunk stream holding per-VP registers.
//!
//! Source: docs/hyperv-saved-state.md section 7 (x86/x64 layouts; GP, control, segment and table
//! register chunks verified on the real sample).

use crate::le;

/// Envelope at the start of the blob: three u64.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Envelope {
    /// Offset 0: size of these three fields (24).
    pub descriptor_size: u64,
    /// Offset 8: offset of the last item header; the chunk stream starts 16 bytes later.
    pub header_size: u64,
    /// Offset 16: end of the meaningful bytes (the chunk stream ends here).
    pub total_size: u64,
}

impl Envelope {
    /// Bytes of the envelope.
    pub const SIZE: usize = 24;

    /// Reads the fields from the start of `b`; `None` if `b` is shorter than [`Self::SIZE`].
    /// Nothing is validated.
    pub fn parse(b: &[u8]) -> Option<Self> {
        Some(Self {
            descriptor_size: le::u64(b, 0)?,
            header_size: le::u64(b, 8)?,
            total_size: le::u64(b, 16)?,
        })
    }
}

/// Chunk header: u32 id, u32 length, 8 bytes padding; `length` bytes of body follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkHeader {
    /// Offset 0: chunk id, one of [`chunk`] or an id to skip.
    pub id: u32,
    /// Offset 4: bytes of body after the 16-byte header.
    pub length: u32,
}

impl ChunkHeader {
    /// Bytes of the header, padding included; the body follows at this offset.
    pub const SIZE: usize = 16;

    /// Reads `id` and `length` from the start of `b`; `None` if `b` is shorter than 8 bytes
    /// (the padding is not required). Nothing is validated.
    pub fn parse(b: &[u8]) -> Option<Self> {
        Some(Self {
            id: le::u32(b, 0)?,
            length: le::u32(b, 4)?,
        })
    }
}

/// Chunk ids a converter uses; all others are skipped by length.
pub mod chunk {
    /// First chunk: tag, summary flag, processor vendor at [`super::PROLOG_VENDOR_AT`].
    pub const PROLOG: u32 = 0x0000_0000;
    /// Last chunk, empty; the stream ends after it.
    pub const EPILOG: u32 = 0xF000_0000;
    /// u64 guest OS identity (0 if the guest never set it).
    pub const OS_ID: u32 = 0x2000_1000;
    /// u8 VTL of the partition.
    pub const PARTITION_VTL: u32 = 0x2000_8000;
    /// u32 boot processor index, then a bitmap of present VP indices.
    pub const VP_INDICES: u32 = 0x3000_0000;
    /// u32 VP index; the register chunks that follow belong to this VP (VTL 0).
    pub const VP: u32 = 0x3000_1000;
    /// u8 VTL; the register chunks that follow belong to this VTL of the current VP.
    pub const VP_VTL: u32 = 0x3001_A000;
    /// General-purpose registers, [`super::GP_REGISTERS_SIZE`] bytes.
    pub const GP_REGISTERS: u32 = 0x3000_5000;
    /// XMM, x87 and their control/status registers, [`super::FP_REGISTERS_SIZE`] bytes.
    pub const FP_REGISTERS: u32 = 0x3000_6000;
    /// Control registers and EFER, [`super::CONTROL_REGISTERS_SIZE`] bytes.
    pub const CONTROL_REGISTERS: u32 = 0x3000_7000;
    /// Debug registers, [`super::DEBUG_REGISTERS_SIZE`] bytes.
    pub const DEBUG_REGISTERS: u32 = 0x3000_8000;
    /// Segment registers and CPL, [`super::SEGMENT_REGISTERS_SIZE`] bytes.
    pub const SEGMENT_REGISTERS: u32 = 0x3000_9000;
    /// IDTR and GDTR, [`super::TABLE_REGISTERS_SIZE`] bytes.
    pub const TABLE_REGISTERS: u32 = 0x3000_A000;
    /// Virtual MSRs (TSC, kernel GS base, APIC base, syscall MSRs...),
    /// [`super::VIRTUAL_MSRS_SIZE`] bytes.
    pub const VIRTUAL_MSRS: u32 = 0x3000_B000;
}

/// PROLOG processor vendor codes (u32 at body offset 8).
pub mod vendor {
    /// AMD.
    pub const AMD: u32 = 0;
    /// Intel.
    pub const INTEL: u32 = 1;
    /// Hygon.
    pub const HYGON: u32 = 2;
    /// ARM64 (the register chunks then have other layouts).
    pub const ARM64: u32 = 0x10;
}

/// Offset of the vendor field in the PROLOG body.
pub const PROLOG_VENDOR_AT: usize = 8;

/// GP registers chunk body: rax rcx rdx rbx rsp rbp rsi rdi r8..r15 rip rflags.
pub const GP_REGISTERS_SIZE: usize = 18 * 8;
/// Control registers chunk body: cr0 cr2 cr3 cr4 cr8 efer.
pub const CONTROL_REGISTERS_SIZE: usize = 6 * 8;
/// Debug registers chunk body: dr0 dr1 dr2 dr3 dr6 dr7.
pub const DEBUG_REGISTERS_SIZE: usize = 6 * 8;
/// Segment registers chunk body: es cs ss ds fs gs ldtr tr (16 bytes each), then u8 cpl.
pub const SEGMENT_REGISTERS_SIZE: usize = 8 * 16 + 1;
/// Table registers chunk body: idtr, gdtr (3 x u16 pad, u16 limit, u64 base each).
pub const TABLE_REGISTERS_SIZE: usize = 2 * 16;
/// FP registers chunk body: xmm0-15, st0-7, FP control/status, XMM control/status.
pub const FP_REGISTERS_SIZE: usize = 16 * 16 + 8 * 16 + 16 + 16;
/// Virtual MSRs chunk body: 12 x u64.
pub const VIRTUAL_MSRS_SIZE: usize = 12 * 8;

/// One segment register as saved: u64 base, u32 limit, u16 selector, u16 attributes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Segment {
    /// Offset 0: base address.
    pub base: u64,
    /// Offset 8: limit.
    pub limit: u32,
    /// Offset 12: selector.
    pub selector: u16,
    /// Offset 14: attributes, Hyper-V layout: type, S, DPL, P in bits 0..8; AVL, L, D/B, G
    /// in bits 12..16.
    pub attributes: u16,
}

impl Segment {
    /// Bytes of one saved segment register.
    pub const SIZE: usize = 16;

    /// Reads the fields from the start of `b`; `None` if `b` is shorter than [`Self::SIZE`].
    pub fn parse(b: &[u8]) -> Option<Self> {
        Some(Self {
            base: le::u64(b, 0)?,
            limit: le::u32(b, 8)?,
            selector: le::u16(b, 12)?,
            attributes: le::u16(b, 14)?,
        })
    }
}

/// A descriptor-table register as saved: 3 x u16 padding, u16 limit, u64 base.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TableRegister {
    /// Offset 6: limit.
    pub limit: u16,
    /// Offset 8: base address.
    pub base: u64,
}

impl TableRegister {
    /// Bytes of one saved table register.
    pub const SIZE: usize = 16;

    /// Reads the fields from the start of `b`; `None` if `b` is shorter than [`Self::SIZE`].
    pub fn parse(b: &[u8]) -> Option<Self> {
        Some(Self {
            limit: le::u16(b, 6)?,
            base: le::u64(b, 8)?,
        })
    }
}

/// Reads `N` consecutive little-endian u64 from the start of `b`; `None` if `b` is shorter
/// than `8 * N` bytes.
pub fn u64_array<const N: usize>(b: &[u8]) -> Option<[u64; N]> {
    let mut out = [0u64; N];
    for (i, v) in out.iter_mut().enumerate() {
        *v = le::u64(b, i * 8)?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_and_table_layout() {
        let mut b = [0u8; 16];
        b[0..8].copy_from_slice(&0xF0000u64.to_le_bytes());
        b[8..12].copy_from_slice(&0xFFFFu32.to_le_bytes());
        b[12..14].copy_from_slice(&0xF000u16.to_le_bytes());
        b[14..16].copy_from_slice(&0x9Bu16.to_le_bytes());
        let s = Segment::parse(&b).unwrap();
        assert_eq!(
            (s.base, s.limit, s.selector, s.attributes),
            (0xF0000, 0xFFFF, 0xF000, 0x9B)
        );
        let mut t = [0u8; 16];
        t[6..8].copy_from_slice(&0x20u16.to_le_bytes());
        t[8..16].copy_from_slice(&0xF13F0u64.to_le_bytes());
        assert_eq!(
            TableRegister::parse(&t),
            Some(TableRegister {
                limit: 0x20,
                base: 0xF13F0
            })
        );
        assert_eq!(
            u64_array::<2>(&[1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0]),
            Some([1, 2])
        );
        assert_eq!(u64_array::<3>(&[0; 16]), None);
    }
}
