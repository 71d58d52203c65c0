//! Route handlers: [`feast`] holds the Feast-compatible routes, [`ops`] health and metrics,
//! [`records`] records, predictions and export.

pub mod feast;
pub mod ops;
pub mod records;
