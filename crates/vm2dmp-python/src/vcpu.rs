//! `vm2dmp.Vcpu`: one virtual processor's registers.

use pyo3::prelude::*;
use vm2dmp::source::{Architecture, PagingMode};
use vm2dmp::CpuState;

use crate::report::to_py;

/// Registers of one virtual processor, as the input saved them (read-only).
///
/// General registers (``rax`` .. ``r15``, ``rip``, ``rflags``), control registers (``cr0``,
/// ``cr2``, ``cr3``, ``cr4``, ``cr8``, ``efer``) and debug registers (``dr0`` .. ``dr7``) are
/// ints; ``to_dict()`` gives every register, segments, descriptor tables, x87/SSE state and
/// MSRs included, as ``info --json`` shows them.
#[pyclass(frozen, module = "vm2dmp", name = "Vcpu")]
pub struct Vcpu {
    pub(crate) state: CpuState,
}

/// The `#[pymethods]` block: a getter for each named register, then the other methods.
macro_rules! vcpu_methods {
    ([$($name:ident),* $(,)?] $($rest:tt)*) => {
        #[pymethods]
        impl Vcpu {
            $($rest)*
            $(
                #[doc = concat!("The ", stringify!($name), " register.")]
                #[getter]
                fn $name(&self) -> u64 {
                    self.state.$name
                }
            )*
        }
    };
}

vcpu_methods! {
    [
        rax, rcx, rdx, rbx, rsp, rbp, rsi, rdi, r8, r9, r10, r11, r12, r13, r14, r15, rip,
        rflags, cr0, cr2, cr3, cr4, cr8, efer, dr0, dr1, dr2, dr3, dr6, dr7,
    ]
    /// Processor number as the input numbers them (the KPRCB index in a Windows guest).
    #[getter]
    fn index(&self) -> u32 {
        self.state.index
    }

    /// Current privilege level (0 to 3).
    #[getter]
    fn cpl(&self) -> u8 {
        self.state.cpl
    }

    /// ``"X64"`` when EFER.LMA is set, else ``"X86"``.
    #[getter]
    fn architecture(&self) -> &'static str {
        match self.state.architecture() {
            Architecture::X64 => "X64",
            Architecture::X86 => "X86",
        }
    }

    /// ``"Long"``, ``"Pae"`` or ``"Bit32"``, from EFER.LMA and CR4.PAE (as Microsoft's
    /// saved-state API reports it, whether or not paging is on).
    #[getter]
    fn paging_mode(&self) -> &'static str {
        match self.state.paging_mode() {
            PagingMode::Long => "Long",
            PagingMode::Pae => "Pae",
            PagingMode::Bit32 => "Bit32",
        }
    }

    /// The mode in words: ``"long mode, 4-level paging"``, ``"real mode"``...
    #[getter]
    fn mode(&self) -> &'static str {
        self.state.mode_description()
    }

    /// CR0.PG: the processor translates addresses through page tables.
    #[getter]
    fn paging_enabled(&self) -> bool {
        self.state.paging_enabled()
    }

    /// Every saved register as a dict (the ``registers`` object of ``info --json``).
    fn to_dict(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        to_py(py, &self.state)
    }

    fn __repr__(&self) -> String {
        format!(
            "<vm2dmp.Vcpu {} {} rip={:#x} cr3={:#x}>",
            self.state.index,
            self.state.mode_description(),
            self.state.rip,
            self.state.cr3
        )
    }
}
