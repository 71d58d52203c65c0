//! Quiver for Python: the extension module `quiver._quiver`, wrapped by the `quiver` package
//! in `python/quiver/` (which adds pandas and pyarrow conveniences and the type stubs).
//!
//! - [`store::FeatureStore`]: the library in-process (embedded or Redis online store), with
//!   Feast's method names; every call releases the GIL.
//! - [`client::Client`]: the same reads and writes against `quiver serve` over HTTP.
//! - [`response::OnlineResponse`]: what `get_online_features` returns, either way.
//! - [`errors`]: `QuiverError` and one subclass per error kind, with the library's messages.
//!
//! Arrow data (entity DataFrames in, training sets out) crosses through the Arrow C data
//! interface (PyCapsules), without copies.

mod args;
mod client;
mod convert;
mod errors;
mod response;
mod store;

use pyo3::prelude::*;

#[pymodule]
fn _quiver(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<store::FeatureStore>()?;
    m.add_class::<client::Client>()?;
    m.add_class::<response::OnlineResponse>()?;
    errors::register(m)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
