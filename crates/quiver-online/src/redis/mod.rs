//! Redis online store (single node).
//!
//! Layout:
//! - [`store`]: [`RedisStore`], the trait implementations over a few multiplexed
//!   `ConnectionManager`s used round-robin (reads are one MGET round trip; writes are pipelines
//!   of script calls, each call writing up to 100 keys).
//! - `lock`: [`crate::Locks`] for [`RedisStore`]: `SET key token NX PX ttl` to take a lock, a
//!   compare-and-delete script to release it, keys `{prefix}:lock:{name}`.
//! - [`records`]: [`crate::records::RecordStore`]: cached records and the export queue (a Stream
//!   with a consumer group).
//! - `script`: the Lua scripts (newer-wins writes, owner-only unlock), and glob escaping for SCAN.
//! - `errors`: mapping client errors to [`crate::OnlineError`] without leaking the password.
//!
//! Keys are [`crate::ViewTable::key`] under the configured prefix, e.g.
//! `quiver:shop:user_profile:v1:42`, so `redis-cli --scan --pattern 'quiver:shop:*'` lists a
//! project's records. Values are the shared record bytes; a view's TTL becomes the key's `PX`.

mod errors;
mod lock;
pub mod records;
mod script;
pub mod store;

pub use store::RedisStore;

/// The commands Quiver sends (directly, from its Lua scripts, and on connecting), as Redis ACL
/// rules: everything else can be denied. With the default `key_prefix` every key Quiver
/// touches matches `~quiver:*`, so a least-privilege user is
/// `ACL SETUSER quiver on >PASSWORD resetkeys ~quiver:* resetchannels -@all` followed by these.
/// The README shows the same line; a test runs the whole online-store suite under exactly it.
pub const ACL_COMMANDS: &str = "+ping +info +select +get +set +mget +del +unlink +pexpire +scan +memory|usage +eval +evalsha +script|load +multi +exec +xadd +xrange +xlen +xack +xdel +xgroup|create +xreadgroup +xautoclaim +xpending";
