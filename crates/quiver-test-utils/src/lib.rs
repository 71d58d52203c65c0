//! Test fixtures for Quiver's integration tests.
//!
//! Layout:
//! - [`redis`]: [`RedisServer`], a real `redis-server` on an ephemeral loopback port, in its own
//!   temporary directory, stopped by pid when dropped.
//! - [`postgres`]: [`PostgresServer`], a fresh `initdb` cluster served by `postgres` on an
//!   ephemeral loopback port (optionally with TimescaleDB), stopped and deleted when dropped.
//!
//! - [`cluster`]: [`RedisCluster`], six cluster-enabled `redis-server`s made into a cluster of
//!   three primaries and three replicas with `redis-cli --cluster create`.
//! - [`sentinel`]: [`RedisSentinel`], a primary, its replica and three Sentinels.
//! - [`tls`]: [`TestPki`], a CA and certificates generated at test time (server, expired,
//!   client, and a CA that signed none of them).
//!
//! - [`browser`]: a page rendered by headless Chromium: screenshot, DOM, console messages.
//!
//! - `process.rs`: what both share (ephemeral ports, start retries, kill by pid).
//!
//! Fixtures use plain `std` (no async runtime), so any test, sync or async, can use them.

pub mod browser;
pub mod cluster;
pub mod postgres;
mod process;
pub mod prometheus;
pub mod redis;
pub mod sentinel;
pub mod tls;

pub use cluster::RedisCluster;
pub use postgres::PostgresServer;
pub use redis::RedisServer;
pub use sentinel::RedisSentinel;
pub use tls::TestPki;
