//! Redis online store (single node).
//!
//! Layout:
//! - [`store`]: [`RedisStore`], the trait implementations over one multiplexed
//!   `ConnectionManager` (reads are one MGET round trip; writes are pipelined script calls).
//! - `script`: the Lua script that makes "newer wins" atomic per key, and glob escaping for SCAN.
//! - `errors`: mapping client errors to [`crate::OnlineError`] without leaking the password.
//!
//! Keys are [`crate::ViewTable::key`] under the configured prefix, e.g.
//! `quiver:shop:user_profile:v1:42`, so `redis-cli --scan --pattern 'quiver:shop:*'` lists a
//! project's records. Values are the shared record bytes; a view's TTL becomes the key's `PX`.

mod errors;
mod script;
pub mod store;

pub use store::RedisStore;
