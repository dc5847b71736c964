//! vaultd's crypto core. Pure Rust modules, each one noun; the Python binding (feature `python`) is a
//! thin layer in `python.rs`. This file only declares and exports.

pub mod chunk;
pub mod digest;
pub mod error;
pub mod ingest;
pub mod leaf;
pub mod merkle;
pub mod note;
pub mod receipt;
pub mod seal;
pub mod sign;

#[cfg(feature = "python")]
mod python;

#[cfg(feature = "python")]
#[pyo3::pymodule]
#[pyo3(name = "_vaultcore")]
fn vaultcore_module(m: &pyo3::Bound<'_, pyo3::types::PyModule>) -> pyo3::PyResult<()> {
    python::register(m)
}
