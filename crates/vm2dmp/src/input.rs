//! Any input, recognised by its content: one [`Input`] for every format vm2dmp reads, itself
//! a [`MemorySource`], so converting, verifying and kernel discovery do not care which format
//! it came from.

use std::io::Read;
use std::path::{Path, PathBuf};

use vm2dmp_source::{
    ChunkSpan, CpuState, Error, MachineInfo, MemorySource, PageMask, RamRange, RawChunk, Result,
};

use crate::hyperv::{self, SavedState};
use crate::raw::{RawImage, RawOptions};
use vm2dmp_qemu::elf::ElfCore;
use vm2dmp_qemu::kdump::KdumpFile;
use vm2dmp_vmware::VmwareState;

/// The formats vm2dmp reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub enum Format {
    /// Hyper-V saved state: `.vmrs` (HVS container) or `.vsv` + `.bin` (0x500 container).
    HyperV,
    /// An ELF core: QEMU's `dump-guest-memory` / `virsh dump --memory-only`, or VirtualBox's
    /// `dumpvmcore`.
    Elf,
    /// A kdump-compressed file (makedumpfile's diskdump layout, plain or flattened), as QEMU's
    /// `dump-guest-memory -z/-l/-s`, `virsh dump --format=kdump-*` or makedumpfile write it.
    Kdump,
    /// VMware suspended (`.vmss`) or snapshot (`.vmsn`) state, with its `.vmem`.
    Vmware,
    /// A raw physical memory image (only when asked for: raw images have no signature).
    Raw,
}

impl Format {
    /// The format in words.
    pub fn name(self) -> &'static str {
        match self {
            Format::HyperV => hyperv::KIND,
            Format::Elf => "ELF core",
            Format::Kdump => "kdump-compressed dump",
            Format::Vmware => "VMware suspended or snapshot state",
            Format::Raw => crate::raw::KIND,
        }
    }
}

/// How to open an input.
#[derive(Debug, Clone, Default)]
pub struct OpenOptions {
    /// The memory file of a state file that keeps memory apart (the `.bin` of a `.vsv`, the
    /// `.vmem` of a `.vmss`/`.vmsn`); default: the file beside it with the same stem.
    pub memory_file: Option<PathBuf>,
    /// Read a dirty Hyper-V `.vmrs` as it is, without replaying its pending log entries.
    pub no_replay: bool,
    /// Read the file as a raw physical memory image, whatever its content.
    pub raw: Option<RawOptions>,
}

impl OpenOptions {
    /// The options of a Hyper-V saved state.
    pub fn hyperv(&self) -> hyperv::OpenOptions {
        hyperv::OpenOptions {
            bin: self.memory_file.clone(),
            no_replay: self.no_replay,
        }
    }
}

/// Bytes of a file's start that recognition looks at.
pub const HEAD_LEN: usize = 8192;

/// The format of the file at `path`, from its first bytes; `None` when no format we read
/// starts that way.
pub fn detect(path: &Path) -> Result<Option<Format>> {
    let head = read_head(path)?;
    Ok(detect_bytes(&head))
}

/// The format a file starting with `head` (up to [`HEAD_LEN`] bytes) is in, if any.
pub fn detect_bytes(head: &[u8]) -> Option<Format> {
    if hyperv::is_saved_state(head) {
        return Some(Format::HyperV);
    }
    if vm2dmp_qemu::elf::is_elf(head) {
        return Some(Format::Elf);
    }
    if vm2dmp_qemu::kdump::is_kdump_or_flattened(head) {
        return Some(Format::Kdump);
    }
    if vm2dmp_vmware::is_vmware_state(head) {
        return Some(Format::Vmware);
    }
    None
}

fn read_head(path: &Path) -> Result<Vec<u8>> {
    let io = |action, source| Error::Input {
        path: path.to_path_buf(),
        action,
        source,
    };
    let file = std::fs::File::open(path).map_err(|e| io("cannot open", e))?;
    let mut head = Vec::with_capacity(HEAD_LEN);
    file.take(HEAD_LEN as u64)
        .read_to_end(&mut head)
        .map_err(|e| io("cannot read", e))?;
    Ok(head)
}

/// An opened input of any format.
#[derive(Debug)]
#[non_exhaustive]
pub enum Input {
    /// A Hyper-V saved state.
    HyperV(Box<SavedState>),
    /// An ELF core (QEMU, VirtualBox).
    Elf(ElfCore),
    /// A kdump-compressed file.
    Kdump(KdumpFile),
    /// VMware suspended or snapshot state.
    Vmware(Box<VmwareState>),
    /// A raw physical memory image.
    Raw(RawImage),
}

impl Input {
    /// Opens the file at `path` in the format its content shows (or as a raw image when
    /// `opts.raw` says so). A file in no format we read is an [`Error::Corrupt`] naming its
    /// first bytes.
    pub fn open(path: impl AsRef<Path>, opts: &OpenOptions) -> Result<Self> {
        let path = path.as_ref();
        if let Some(raw) = &opts.raw {
            return Ok(Input::Raw(RawImage::open(path, raw)?));
        }
        let head = read_head(path)?;
        match detect_bytes(&head) {
            Some(Format::HyperV) => Ok(Input::HyperV(Box::new(SavedState::open_with(
                path,
                &opts.hyperv(),
            )?))),
            Some(Format::Elf) => Ok(Input::Elf(ElfCore::open(path)?)),
            Some(Format::Kdump) => Ok(Input::Kdump(KdumpFile::open(path)?)),
            Some(Format::Vmware) => Ok(Input::Vmware(Box::new(VmwareState::open_with(
                path,
                opts.memory_file.as_deref(),
            )?))),
            // Too short to tell: the Hyper-V reader says what is missing.
            _ if head.len() < 4 => Ok(Input::HyperV(Box::new(SavedState::open_with(
                path,
                &opts.hyperv(),
            )?))),
            Some(Format::Raw) | None => match vmem_owner(path) {
                // A .vmem given alone: its state file beside it holds the rest.
                Some(state) => Ok(Input::Vmware(Box::new(VmwareState::open_with(
                    state,
                    Some(path),
                )?))),
                None => Err(unrecognised(path, &head)),
            },
        }
    }

    /// The format this input is in.
    pub fn format(&self) -> Format {
        match self {
            Input::HyperV(_) => Format::HyperV,
            Input::Elf(_) => Format::Elf,
            Input::Kdump(_) => Format::Kdump,
            Input::Vmware(_) => Format::Vmware,
            Input::Raw(_) => Format::Raw,
        }
    }

    /// The Hyper-V saved state, when this input is one.
    pub fn as_hyperv(&self) -> Option<&SavedState> {
        match self {
            Input::HyperV(s) => Some(s),
            _ => None,
        }
    }

    /// The input as a memory source.
    pub fn source(&self) -> &dyn MemorySource {
        match self {
            Input::HyperV(s) => s.as_ref(),
            Input::Elf(s) => s,
            Input::Kdump(s) => s,
            Input::Vmware(s) => s.as_ref(),
            Input::Raw(s) => s,
        }
    }
}

/// The `.vmss` or `.vmsn` beside a `.vmem`, when there is one.
fn vmem_owner(path: &Path) -> Option<PathBuf> {
    let ext = path.extension()?.to_str()?;
    if !ext.eq_ignore_ascii_case("vmem") {
        return None;
    }
    hyperv::sibling_file(path, "vmss").or_else(|| hyperv::sibling_file(path, "vmsn"))
}

fn unrecognised(path: &Path, head: &[u8]) -> Error {
    let shown: Vec<String> = head.iter().take(8).map(|b| format!("{b:02x}")).collect();
    vm2dmp_source::FileCtx::new(path).corrupt(
        "file signature",
        0,
        format!(
            "{} is not the start of any format vm2dmp reads (Hyper-V .vmrs/.vsv/.bin, QEMU ELF or kdump-compressed, VMware .vmss/.vmsn); a raw memory image has no signature: give --raw",
            if shown.is_empty() { "an empty file".to_string() } else { shown.join(" ") }
        ),
    )
}

impl MemorySource for Input {
    fn files(&self) -> Vec<PathBuf> {
        self.source().files()
    }
    fn ram_ranges(&self) -> &[RamRange] {
        self.source().ram_ranges()
    }
    fn chunk_count(&self) -> usize {
        self.source().chunk_count()
    }
    fn chunk_spans(&self, n: usize) -> Vec<ChunkSpan> {
        self.source().chunk_spans(n)
    }
    fn decode_chunk(&self, n: usize, out: &mut [u8]) -> Result<PageMask> {
        self.source().decode_chunk(n, out)
    }
    fn raw_chunk(&self, n: usize) -> Option<RawChunk<'_>> {
        self.source().raw_chunk(n)
    }
    fn zero_pages(&self, n: usize) -> Result<PageMask> {
        self.source().zero_pages(n)
    }
    fn read_phys(&self, gpa: u64, buf: &mut [u8]) -> Result<()> {
        self.source().read_phys(gpa, buf)
    }
    fn vcpus(&self) -> &[CpuState] {
        self.source().vcpus()
    }
    fn machine(&self) -> MachineInfo {
        self.source().machine()
    }
}
