//! The offline engine's hot-path operators over Arrow columns: entity-key interning, the
//! point-in-time (as-of) join, rolling-window aggregations and price time-series helpers.
//!
//! Every operator works on dense `u32` key ids rather than on the join-key columns themselves:
//! [`keys::KeyInterner`] turns one or more Arrow join-key columns into ids once, and the
//! operators then sort and merge plain integers. Row order of the inputs is arbitrary; every
//! output is in the caller's original row order.
//!
//! Layout:
//! - [`keys`]: [`KeyInterner`], join-key columns → `u32` ids; null keys become [`NULL_KEY`].
//! - [`asof`]: [`asof_join`], Feast's point-in-time join (latest feature row at or before each
//!   entity row, within an optional TTL), and [`take_columns`] to gather the matched rows.
//! - [`window`]: [`aggregate_windows`] / [`aggregate_at_events`], aggregations over
//!   `(t − window, t]` per key.
//! - [`timeseries`]: per-ticker N-period return, momentum and rolling volatility.
//! - `group.rs`: the shared radix grouping of rows by key id and the two-core work split.
//! - `stats.rs`: the sliding-window building blocks (two-stack aggregation, moments, monotonic
//!   deque) shared by [`window`] and [`timeseries`].
//!
//! Null handling common to all operators: a row whose key is [`NULL_KEY`] never matches
//! anything (Feast drops null join keys), and inputs are validated up front, so a length
//! mismatch or a bad parameter is a [`ComputeError`], never a panic.

pub mod asof;
mod group;
pub mod keys;
mod stats;
pub mod timeseries;
pub mod window;

pub use asof::{asof_join, take_columns};
pub use keys::{KeyInterner, NULL_KEY};
pub use timeseries::{momentum, period_returns, rolling_volatility};
pub use window::{
    AggFunction, EventValues, Events, WindowSpec, aggregate_at_events, aggregate_windows,
};

use arrow_schema::DataType;

/// Errors from the compute operators: inputs that do not fit together or parameters out of range.
#[derive(Debug, thiserror::Error)]
pub enum ComputeError {
    /// Two columns that describe the same rows have different lengths.
    #[error("`{column}` has {found} rows but `{reference}` has {expected}")]
    LengthMismatch {
        column: &'static str,
        found: usize,
        reference: &'static str,
        expected: usize,
    },

    /// A join-key column has a type that cannot be a join key.
    #[error("join key column {index} is {data_type}; expected an integer or string column")]
    UnsupportedKeyType { index: usize, data_type: DataType },

    /// A join-key column is an integer on one input and a string on another, so no key could
    /// ever match; reported rather than silently returning no matches.
    #[error("join key column {index} is {found} here but was {expected} in earlier input")]
    KeyKindMismatch {
        index: usize,
        found: &'static str,
        expected: &'static str,
    },

    /// A different number of join-key columns than the interner saw first.
    #[error("expected {expected} join key columns, got {found}")]
    KeyColumnCount { expected: usize, found: usize },

    /// More distinct entity keys than `u32` ids (minus the null sentinel).
    #[error("more than {max} distinct entity keys")]
    TooManyKeys { max: u32 },

    /// A parameter out of its range (a non-positive window, a negative TTL, zero periods).
    #[error("{message}")]
    InvalidArgument { message: String },

    /// An Arrow kernel failed on input we built ourselves.
    #[error("this is a bug in Quiver: {message}")]
    Internal { message: String },
}

/// The compute module's result type.
pub type Result<T, E = ComputeError> = std::result::Result<T, E>;

/// Checks that a per-row column has as many rows as its reference column.
pub(crate) fn check_len(
    column: &'static str,
    found: usize,
    reference: &'static str,
    expected: usize,
) -> Result<()> {
    if found == expected {
        Ok(())
    } else {
        Err(ComputeError::LengthMismatch {
            column,
            found,
            reference,
            expected,
        })
    }
}
