//! Test fixtures for Quiver's integration tests.
//!
//! Layout:
//! - [`redis`]: [`RedisServer`], a real `redis-server` on an ephemeral loopback port, in its own
//!   temporary directory, stopped by pid when dropped.
//! - [`postgres`]: [`PostgresServer`], a fresh `initdb` cluster served by `postgres` on an
//!   ephemeral loopback port (optionally with TimescaleDB), stopped and deleted when dropped.
//!
//! - `process.rs`: what both share (ephemeral ports, start retries, kill by pid).
//!
//! Fixtures use plain `std` (no async runtime), so any test, sync or async, can use them.

pub mod postgres;
mod process;
pub mod prometheus;
pub mod redis;

pub use postgres::PostgresServer;
pub use redis::RedisServer;
