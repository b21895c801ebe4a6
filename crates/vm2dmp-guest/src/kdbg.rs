//! The kernel debugger data block (`KDDEBUGGER_DATA64`, tag `KDBG`) and the encoding x64
//! Windows 8 and later apply to it (docs/windows-crash-dump.md §6.1, §6.3).

use vm2dmp_source::le;

/// Offsets in `KDDEBUGGER_DATA64` (the same on x86, where pointers are sign-extended).
pub mod offsets {
    /// `Header.List.Flink`.
    pub const LIST_FLINK: usize = 0x00;
    /// `Header.List.Blink`.
    pub const LIST_BLINK: usize = 0x08;
    /// `Header.OwnerTag` (u32): `KDBG` in a valid block.
    pub const OWNER_TAG: usize = 0x10;
    /// `Header.Size` (u32): bytes of the whole block.
    pub const SIZE: usize = 0x14;
    /// `KernBase`: the kernel image's base address.
    pub const KERN_BASE: usize = 0x18;
    /// `PsLoadedModuleList`: address of the loaded-module list head.
    pub const PS_LOADED_MODULE_LIST: usize = 0x48;
    /// `PsActiveProcessHead`: address of the active-process list head.
    pub const PS_ACTIVE_PROCESS_HEAD: usize = 0x50;
    /// `KiBugcheckData`: address of the bug-check code and its four parameters.
    pub const KI_BUGCHECK_DATA: usize = 0x88;
    /// `MmPfnDatabase`: address of the variable holding the PFN database's address.
    pub const MM_PFN_DATABASE: usize = 0xC0;
    /// `KiProcessorBlock`: address of the array of KPRCB pointers, one per processor.
    pub const KI_PROCESSOR_BLOCK: usize = 0x218;
    /// `OffsetEprocessDirectoryTableBase` (u16): offset of `DirectoryTableBase` in EPROCESS.
    pub const OFFSET_EPROCESS_DIRECTORY_TABLE_BASE: usize = 0x2AE;
    /// `SizePrcb` (u16): bytes of a KPRCB.
    pub const SIZE_PRCB: usize = 0x2B0;
    /// `OffsetPrcbCurrentThread` (u16): offset of `CurrentThread` in the KPRCB.
    pub const OFFSET_PRCB_CURRENT_THREAD: usize = 0x2B4;
    /// `OffsetPrcbProcStateContext` (u16): offset of `ProcessorState.ContextFrame` in the
    /// KPRCB.
    pub const OFFSET_PRCB_PROC_STATE_CONTEXT: usize = 0x2BC;
    /// `OffsetPrcbNumber` (u16): offset of the processor number in the KPRCB.
    pub const OFFSET_PRCB_NUMBER: usize = 0x2BE;
    /// `OffsetPrcbProcStateSpecialReg` (u16): offset of `ProcessorState.SpecialRegisters` in
    /// the KPRCB.
    pub const OFFSET_PRCB_PROC_STATE_SPECIAL_REG: usize = 0x2F2;
    /// `OffsetPrcbContext` (u16, Windows 7 and later): offset of the `Context` pointer in the
    /// KPRCB.
    pub const OFFSET_PRCB_CONTEXT: usize = 0x338;
}

/// `KDBG` as a little-endian u32.
pub const OWNER_TAG: u32 = 0x4742_444B;
/// Smallest `Header.Size` accepted (Windows XP's block is 0x290 bytes; Windows 10/11 blocks
/// are below 0x400).
pub const MIN_SIZE: u32 = 0x200;
/// Largest `Header.Size` accepted.
pub const MAX_SIZE: u32 = 0x1000;

/// The values that encode the block: `KiWaitNever`, `KiWaitAlways` (values of those u64
/// globals) and the address of the byte `KdpDataBlockEncoded`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct KdbgKeys {
    /// Value of `nt!KiWaitNever`.
    pub ki_wait_never: u64,
    /// Value of `nt!KiWaitAlways`.
    pub ki_wait_always: u64,
    /// Address of the byte `nt!KdpDataBlockEncoded`.
    pub kdp_data_block_encoded: u64,
}

impl KdbgKeys {
    /// Decodes one stored qword: `KiWaitAlways ^ bswap(&KdpDataBlockEncoded ^
    /// rotl(q ^ KiWaitNever, KiWaitNever & 0xFF))`.
    pub fn decode(&self, q: u64) -> u64 {
        let n = self.ki_wait_never;
        let t = (q ^ n).rotate_left((n & 0xFF) as u32 % 64);
        (t ^ self.kdp_data_block_encoded).swap_bytes() ^ self.ki_wait_always
    }

    /// The inverse of [`KdbgKeys::decode`]: what the kernel stores for `plain`.
    pub fn encode(&self, plain: u64) -> u64 {
        let n = self.ki_wait_never;
        let t = (plain ^ self.ki_wait_always).swap_bytes() ^ self.kdp_data_block_encoded;
        t.rotate_right((n & 0xFF) as u32 % 64) ^ n
    }

    /// Decodes a block in place (whole qwords; a trailing partial qword is left as is).
    pub fn decode_block(&self, block: &mut [u8]) {
        for c in block.chunks_exact_mut(8) {
            let q = u64::from_le_bytes(c.try_into().unwrap_or([0; 8]));
            c.copy_from_slice(&self.decode(q).to_le_bytes());
        }
    }

    /// Encodes a block in place.
    pub fn encode_block(&self, block: &mut [u8]) {
        for c in block.chunks_exact_mut(8) {
            let q = u64::from_le_bytes(c.try_into().unwrap_or([0; 8]));
            c.copy_from_slice(&self.encode(q).to_le_bytes());
        }
    }

    /// The `&KdpDataBlockEncoded` that makes stored qword `q` decode to `plain` with these
    /// `KiWaitNever` / `KiWaitAlways` (used to solve for the address from a known field).
    pub fn solve_address(ki_wait_never: u64, ki_wait_always: u64, q: u64, plain: u64) -> u64 {
        let n = ki_wait_never;
        (q ^ n).rotate_left((n & 0xFF) as u32 % 64) ^ (plain ^ ki_wait_always).swap_bytes()
    }
}

/// Whether the 0x18-byte header `h` is a plausible plain `KDBG` header: its `Header.Size`
/// when the tag is `KDBG` and the size is a multiple of 8 in [`MIN_SIZE`]`..=`[`MAX_SIZE`];
/// `None` otherwise (or when `h` is too short).
pub fn header_ok(h: &[u8]) -> Option<u32> {
    let tag = le::u32(h, offsets::OWNER_TAG)?;
    let size = le::u32(h, offsets::SIZE)?;
    (tag == OWNER_TAG && (MIN_SIZE..=MAX_SIZE).contains(&size) && size % 8 == 0).then_some(size)
}

/// A decoded (or plain) block with typed accessors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kdbg {
    /// The block's bytes, header included.
    pub bytes: Vec<u8>,
    /// Pointers are 32-bit values sign-extended to 64 (x86 kernels).
    pub x86: bool,
}

impl Kdbg {
    /// A pointer field (x86: its low 32 bits); `None` when the block is too short to hold it.
    pub fn ptr(&self, off: usize) -> Option<u64> {
        let v = le::u64(&self.bytes, off)?;
        Some(if self.x86 { v & 0xFFFF_FFFF } else { v })
    }
    /// A u16 field; `None` when the block is too short to hold it.
    pub fn u16(&self, off: usize) -> Option<u16> {
        le::u16(&self.bytes, off)
    }
    /// The block's size field; `None` when the block is too short to hold it.
    pub fn size(&self) -> Option<u32> {
        le::u32(&self.bytes, offsets::SIZE)
    }
    /// `KernBase`, the kernel image's base address.
    pub fn kern_base(&self) -> Option<u64> {
        self.ptr(offsets::KERN_BASE)
    }
}
