//! The saved state the `kernel` target patches its input into.

use vm2dmp::hyperv::BLOCK_SIZE;

/// A 1 MiB x64 saved state with one vCPU, whose guest memory and vCPU registers the `kernel`
/// target overwrites in place (RAM block and partition_state are file objects, which no
/// checksum covers).
pub struct KernelTemplate {
    /// The `.vmrs` file.
    pub bytes: Vec<u8>,
    /// Offset of guest-physical address 0 (the raw 1 MiB RAM block).
    pub ram: usize,
    /// Offset of the body of VP 0's control-register chunk.
    pub control: usize,
    /// Offset of the body of VP 0's segment-register chunk.
    pub segments: usize,
    /// Offset of the body of VP 0's table-register chunk.
    pub tables: usize,
    /// Offset of the body of VP 0's virtual-MSR chunk.
    pub msrs: usize,
}

impl KernelTemplate {
    /// Bytes of the input's register header: mode, CR3, IDTR base, GS base, kernel GS base,
    /// FS base.
    pub const HEADER: usize = 1 + 5 * 8;

    /// Writes the template with `vm2dmp-synth` (in a temporary directory of its own) and
    /// locates the parts [`build`](Self::build) overwrites.
    pub fn new() -> Self {
        use vm2dmp_formats::partition::chunk;
        use vm2dmp_synth::{BlockEncoding, FlatImage, SynthVm, SynthVp};
        let mut vm = SynthVm::with_ram_mib(1)
            .with_pages(FlatImage::new(vec![0x5A; 4096]))
            .with_vps(vec![SynthVp::x64_long_mode(0, 0x1000, 0, 0)])
            .with_encoding(BlockEncoding::RawBlock);
        vm.vmrs.device_keys = false;
        let dir = tempfile::Builder::new()
            .prefix("vm2dmp-fuzz-template-")
            .tempdir()
            .expect("temporary directory");
        let path = dir.path().join("template.vmrs");
        let layout = vm2dmp_synth::write_vmrs(&vm, &path).expect("template written");
        let bytes = std::fs::read(&path).expect("template read");
        drop(dir);
        let block = &layout.ram_blocks[0];
        assert!(block.raw && block.value_size == BLOCK_SIZE as u64);
        let body = |id| layout.chunk_offset(id, Some(0)).expect("chunk of VP 0") as usize + 16;
        Self {
            ram: block.value_offset as usize,
            control: body(chunk::CONTROL_REGISTERS),
            segments: body(chunk::SEGMENT_REGISTERS),
            tables: body(chunk::TABLE_REGISTERS),
            msrs: body(chunk::VIRTUAL_MSRS),
            bytes,
        }
    }

    /// The template with `input` applied: its header sets the paging mode (bits 0-1 of the
    /// first byte: long mode, 5-level long mode, PAE, 32-bit) and registers; the rest is guest
    /// memory from address 0 (at most 1 MiB; the remainder reads as zero). `None` when the input
    /// is shorter than [`HEADER`](Self::HEADER).
    pub fn build(&self, input: &[u8]) -> Option<Vec<u8>> {
        let (head, mem) = input.split_at_checked(Self::HEADER)?;
        let q = |i: usize| u64::from_le_bytes(head[1 + i * 8..9 + i * 8].try_into().unwrap());
        let mut d = self.bytes.clone();
        let put =
            |d: &mut Vec<u8>, at: usize, v: u64| d[at..at + 8].copy_from_slice(&v.to_le_bytes());
        const PG_PE: u64 = 1 << 31 | 1;
        const PAE: u64 = 1 << 5;
        const LA57: u64 = 1 << 12;
        const LMA_LME: u64 = 1 << 10 | 1 << 8;
        let (cr0, cr4, efer) = match head[0] & 3 {
            0 => (PG_PE, PAE, LMA_LME),
            1 => (PG_PE, PAE | LA57, LMA_LME),
            2 => (PG_PE, PAE, 0),
            _ => (PG_PE, 0, 0),
        };
        put(&mut d, self.control, cr0);
        put(&mut d, self.control + 16, q(0));
        put(&mut d, self.control + 24, cr4);
        put(&mut d, self.control + 40, efer);
        put(&mut d, self.tables + 8, q(1));
        put(&mut d, self.segments + 5 * 16, q(2));
        put(&mut d, self.msrs + 8, q(3));
        put(&mut d, self.segments + 4 * 16, q(4));
        let n = mem.len().min(BLOCK_SIZE);
        d[self.ram..self.ram + n].copy_from_slice(&mem[..n]);
        d[self.ram + n..self.ram + BLOCK_SIZE].fill(0);
        Some(d)
    }
}

impl Default for KernelTemplate {
    fn default() -> Self {
        Self::new()
    }
}
