//! Embedded online store: one redb file, no server. The default for a project.
//!
//! Layout:
//! - [`store`]: [`EmbeddedStore`], the trait implementations and the background expiry sweep.
//! - `file`: opening the file, the schema-version check, and moving an incompatible file aside
//!   (the store is a cache of the offline store: a fresh file is re-materialized, never repaired).
//! - `records`: [`crate::records::RecordStore`]: per namespace the tables `records:{ns}` (id →
//!   expiry + payload), `queue:{ns}` (sequence → queued time + payload) and `dead:{ns}`, and
//!   the sequence counters in `queue_seq`, written in one transaction per call.
//! - `entry`: the stored value, an expiry time in front of the shared record bytes.
//!
//! All redb calls block (file I/O, fsync on commit), so they run in `spawn_blocking`.

mod entry;
mod file;
mod records;
pub mod store;

pub use store::EmbeddedStore;
