//! Error types.

/// Errors of [`crate::KernelDump`] parsing and reads. Structure-level variants name the
/// structure and the absolute file offset of the offending field or structure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DumpError {
    /// A structure does not fit in the bytes available.
    #[error(
        "{structure} at file offset {offset:#x}: needs {needed:#x} bytes, {available:#x} available"
    )]
    Truncated {
        /// Structure name.
        structure: &'static str,
        /// File offset of the structure.
        offset: u64,
        /// Bytes needed.
        needed: u64,
        /// Bytes available from `offset`.
        available: u64,
    },
    /// A signature field does not hold an accepted value.
    #[error("{structure} at file offset {offset:#x}: signature {found:#010x} is not {expected}")]
    BadSignature {
        /// Structure name.
        structure: &'static str,
        /// File offset of the signature field.
        offset: u64,
        /// Value found.
        found: u32,
        /// Accepted value(s).
        expected: &'static str,
    },
    /// `DumpType` is not one whose physical memory this reader reads (1, 5 and 6 are; the
    /// header of any other type is still parsed).
    #[error("DumpType {0} ({name}) holds no physical memory this reader can read: only full (1) and bitmap (5, 6) dumps do", name = crate::consts::dump_type_name(*.0))]
    UnsupportedDumpType(u32),
    /// `NumberOfRuns` is larger than the run buffer holds.
    #[error("{structure} at file offset {offset:#x}: {count} runs, at most {max} fit")]
    TooManyRuns {
        /// Structure name.
        structure: &'static str,
        /// File offset of `NumberOfRuns`.
        offset: u64,
        /// Value of `NumberOfRuns`.
        count: u64,
        /// Largest accepted value.
        max: u64,
    },
    /// An address, count or size computed from header fields overflows.
    #[error("{structure} at file offset {offset:#x}: {what} overflows")]
    Overflow {
        /// Structure name.
        structure: &'static str,
        /// File offset of the field.
        offset: u64,
        /// What overflowed.
        what: &'static str,
    },
    /// Two runs of the run list cover the same PFN.
    #[error(
        "{structure} at file offset {offset:#x}: run starting at PFN {pfn:#x} overlaps another run"
    )]
    OverlappingRuns {
        /// Structure name.
        structure: &'static str,
        /// File offset of the run entry.
        offset: u64,
        /// First PFN of the run.
        pfn: u64,
    },
    /// The page data of a bitmap dump would start inside its header or bitmap.
    #[error("{structure} at file offset {offset:#x}: FirstPage {first_page:#x} lies inside the header and bitmap, which end at {header_end:#x}")]
    PagesOverlapHeader {
        /// Structure name.
        structure: &'static str,
        /// File offset of the FirstPage field.
        offset: u64,
        /// FirstPage as written.
        first_page: u64,
        /// End of the bitmap.
        header_end: u64,
    },
    /// Page data described by the header would extend past the end of the file.
    #[error("{structure} at file offset {offset:#x}: page data would end at {end:#x}, past the end of the file ({file_size:#x})")]
    DataPastEnd {
        /// Structure name.
        structure: &'static str,
        /// File offset of the field describing the data.
        offset: u64,
        /// End offset of the data.
        end: u64,
        /// Actual file size.
        file_size: u64,
    },
    /// A physical page is not in the dump.
    #[error("physical page {pfn:#x} (address {gpa:#x}) is not in the dump")]
    PageNotPresent {
        /// Missing PFN.
        pfn: u64,
        /// Physical address whose read needed it.
        gpa: u64,
    },
    /// A read range wraps around the physical address space.
    #[error("read of {len:#x} bytes at physical address {gpa:#x} overflows")]
    AddressOverflow {
        /// Start address.
        gpa: u64,
        /// Length.
        len: u64,
    },
    /// The bytes handed to a read do not contain a page the header locates.
    #[error(
        "page {pfn:#x} at file offset {offset:#x} lies outside the {available:#x} bytes given"
    )]
    PageOutsideInput {
        /// PFN.
        pfn: u64,
        /// File offset of the page.
        offset: u64,
        /// Length of the given bytes.
        available: u64,
    },
}

/// Errors of the writer-side planning API ([`crate::DumpLayout`], [`crate::MemoryRun`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LayoutError {
    /// A full (run-list) dump needs more runs than the header holds; use a bitmap dump.
    #[error("{runs} memory runs, a full dump header holds at most {max}")]
    TooManyRuns {
        /// Runs after merging touching ones.
        runs: usize,
        /// Capacity of the header.
        max: usize,
    },
    /// At least one run is needed.
    #[error("no memory runs")]
    NoRuns,
    /// A run has zero pages.
    #[error("memory run {index} is empty")]
    EmptyRun {
        /// Index in the list given.
        index: usize,
    },
    /// Runs are not in ascending order or overlap.
    #[error("memory run {index} (PFN {base_page:#x}) is not above the previous run")]
    RunsNotAscending {
        /// Index in the list given.
        index: usize,
        /// Its first PFN.
        base_page: u64,
    },
    /// A run ends beyond the physical addresses the architecture's dump format can describe.
    #[error(
        "memory run {index} ends at PFN {end:#x}, beyond the limit {limit:#x} of this architecture"
    )]
    RunBeyondLimit {
        /// Index in the list given.
        index: usize,
        /// End PFN (exclusive), saturated on overflow.
        end: u64,
        /// First PFN not describable.
        limit: u64,
    },
    /// A page marked present lies outside every run.
    #[error("page {pfn:#x} is marked present but lies outside every memory run")]
    PresentPageOutsideRuns {
        /// The PFN.
        pfn: u64,
    },
}
