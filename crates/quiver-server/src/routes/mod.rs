//! Route handlers: [`feast`] holds the Feast-compatible routes, [`ops`] health and metrics.

pub mod feast;
pub mod ops;
