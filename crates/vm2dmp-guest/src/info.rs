//! What kernel discovery found, each value with how it was found.

use crate::{kdbg, pe, translate};

/// How a value was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum Method {
    /// From the kernel's PDB.
    Symbols,
    /// From guest memory without symbols.
    Heuristic,
    /// Not found.
    NotFound,
}

/// One discovered value and how it was found (or why not).
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct Finding {
    /// The value (an address or a number); `None` exactly when `method` is [`Method::NotFound`].
    pub value: Option<u64>,
    /// How the value was obtained.
    pub method: Method,
    /// The clue that gave the value, or why it is unknown.
    pub how: String,
}

impl Finding {
    pub(crate) fn not_found(why: impl Into<String>) -> Self {
        Self {
            value: None,
            method: Method::NotFound,
            how: why.into(),
        }
    }
    pub(crate) fn heuristic(value: u64, how: impl Into<String>) -> Self {
        Self {
            value: Some(value),
            method: Method::Heuristic,
            how: how.into(),
        }
    }
    pub(crate) fn symbols(value: u64, how: impl Into<String>) -> Self {
        Self {
            value: Some(value),
            method: Method::Symbols,
            how: how.into(),
        }
    }
    pub(crate) fn with(value: u64, method: Method, how: impl Into<String>) -> Self {
        Self {
            value: Some(value),
            method,
            how: how.into(),
        }
    }
    /// The value, if found.
    pub fn get(&self) -> Option<u64> {
        self.value
    }
}

/// What kernel discovery found in a saved state.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct KernelInfo {
    /// The address space the kernel was found in.
    pub dtb: Option<translate::Dtb>,
    /// `DirectoryTableBase` for the dump header: the System process's page-table root when
    /// it could be read, else the validated root the kernel was found through.
    pub directory_table_base: Finding,
    /// Virtual address of the kernel image (`KernBase`).
    pub kernel_base: Finding,
    /// The kernel image (headers, sections, export name, PDB id, file version).
    pub image: Option<pe::PeImage>,
    /// Build number (e.g. 19041).
    pub build: Finding,
    /// `NtBuildNumber` as stored (high nibble 0xF free build, 0xC checked build).
    pub nt_build_number: Option<u32>,
    /// File version of the kernel image, e.g. `10.0.19041.1`.
    pub version: Option<String>,
    /// VA of `KdDebuggerDataBlock`.
    pub kd_debugger_data_block: Finding,
    /// The block is stored encoded in guest memory (x64 Windows 8 and later).
    pub kdbg_encoded: bool,
    /// Keys that decode it, when encoded.
    pub kdbg_keys: Option<kdbg::KdbgKeys>,
    /// `Header.Size` of the block.
    pub kdbg_size: u32,
    /// VA of the list head `PsLoadedModuleList`.
    pub ps_loaded_module_list: Finding,
    /// VA of the list head `PsActiveProcessHead`.
    pub ps_active_process_head: Finding,
    /// Value of `MmPfnDatabase` (the PFN array base).
    pub mm_pfn_database: Finding,
    /// VA of the array `KiProcessorBlock`.
    pub ki_processor_block: Finding,
    /// Processors the kernel runs on (non-NULL `KiProcessorBlock` entries).
    pub number_processors: Finding,
    /// KPRCB address of each processor, by processor number.
    pub prcbs: Vec<u64>,
    /// The symbol file used, when symbols were given and matched the kernel.
    pub symbols: Option<String>,
    /// What the search tried, fell back to or gave up on.
    pub notes: Vec<String>,
    #[cfg_attr(feature = "serde", serde(skip))]
    pub(crate) kdbg: Option<kdbg::Kdbg>,
    #[cfg_attr(feature = "serde", serde(skip))]
    pub(crate) extra: Extra,
}

/// Values for the dump header that need no separate report.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Extra {
    /// `KiBugCheckData`: code and four parameters, when the guest bugchecked.
    pub bugcheck: Option<[u64; 5]>,
    pub product_type: Option<u32>,
    pub suite_mask: Option<u32>,
    pub system_time: Option<u64>,
    pub interrupt_time: Option<u64>,
    /// `KdVersionBlock.KdSecondaryVersion`.
    pub kd_secondary_version: Option<u8>,
}

impl KernelInfo {
    pub(crate) fn empty() -> Self {
        let nf = || Finding::not_found("no Windows kernel found");
        KernelInfo {
            dtb: None,
            directory_table_base: nf(),
            kernel_base: nf(),
            image: None,
            build: nf(),
            nt_build_number: None,
            version: None,
            kd_debugger_data_block: nf(),
            kdbg_encoded: false,
            kdbg_keys: None,
            kdbg_size: 0,
            ps_loaded_module_list: nf(),
            ps_active_process_head: nf(),
            mm_pfn_database: nf(),
            ki_processor_block: nf(),
            number_processors: nf(),
            prcbs: Vec::new(),
            symbols: None,
            notes: Vec::new(),
            kdbg: None,
            extra: Extra::default(),
        }
    }

    /// A Windows kernel image was found.
    pub fn found(&self) -> bool {
        self.kernel_base.value.is_some()
    }

    /// The dump-header fields this discovery could not fill, by header name.
    pub fn unknown_header_fields(&self) -> Vec<&'static str> {
        let mut v = Vec::new();
        if self.kd_debugger_data_block.value.is_none() {
            v.push("KdDebuggerDataBlock");
        }
        if self.ps_loaded_module_list.value.is_none() {
            v.push("PsLoadedModuleList");
        }
        if self.ps_active_process_head.value.is_none() {
            v.push("PsActiveProcessHead");
        }
        if self.mm_pfn_database.value.is_none() {
            v.push("PfnDataBase");
        }
        if self.build.value.is_none() {
            v.push("MinorVersion (build number)");
        }
        v
    }

    /// The named fields in display order.
    pub fn fields(&self) -> [(&'static str, &Finding); 9] {
        [
            ("DirectoryTableBase", &self.directory_table_base),
            ("KernBase", &self.kernel_base),
            ("Build", &self.build),
            ("KdDebuggerDataBlock", &self.kd_debugger_data_block),
            ("PsLoadedModuleList", &self.ps_loaded_module_list),
            ("PsActiveProcessHead", &self.ps_active_process_head),
            ("MmPfnDatabase", &self.mm_pfn_database),
            ("KiProcessorBlock", &self.ki_processor_block),
            ("NumberProcessors", &self.number_processors),
        ]
    }
}
