//! Python bindings of vm2dmp, the native module `vm2dmp._vm2dmp` of the Python package
//! `vm2dmp` (python/vm2dmp in the repository, built by maturin from the root pyproject.toml).
//!
//! | Python | Rust |
//! |---|---|
//! | `vm2dmp.open(path, ...)` -> `SavedState` | [`vm2dmp::input::Input::open`] |
//! | `SavedState.read_phys`, `.ranges`, `.vcpus`, `.summary()`, `.kernel()` | [`vm2dmp::MemorySource`], `info --json`, [`vm2dmp::guest::find_kernel`] |
//! | `SavedState.convert(out, ...)` | [`vm2dmp::convert()`] with a [`progress::PyProgress`] |
//! | `vm2dmp.DumpFile(path)`, `vm2dmp.verify(dump, input)` | [`vm2dmp::DumpFile`], [`vm2dmp::verify()`] |
//!
//! Errors become the exceptions of `vm2dmp.errors` ([`errors::to_py_err`]). Every call that
//! reads files releases the GIL; the classes are frozen and `Sync`, so Python threads share
//! them.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

use pyo3::prelude::*;

pub mod dump;
pub mod errors;
pub mod progress;
pub mod report;
pub mod state;
pub mod vcpu;

/// The native module: `open`, `detect`, `verify`, `SavedState`, `Vcpu`, `DumpFile`.
#[pymodule]
fn _vm2dmp(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(state::open, m)?)?;
    m.add_function(wrap_pyfunction!(state::detect, m)?)?;
    m.add_function(wrap_pyfunction!(dump::verify, m)?)?;
    m.add_class::<state::SavedState>()?;
    m.add_class::<vcpu::Vcpu>()?;
    m.add_class::<dump::DumpFile>()?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
