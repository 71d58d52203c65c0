//! Quiver's domain model. No I/O lives here: everything is a pure function of its inputs, so the
//! other crates (online stores, offline engine, server, CLI) share one vocabulary and one record format.
//!
//! Layout:
//! - [`value`]: field types ([`ValueType`]) and values ([`Value`]), with their JSON forms.
//! - [`entity_key`]: entity keys and their storage encoding (the readable suffix of an online key).
//! - [`definitions`]: the YAML user format, validated into [`Definitions`] (entities, sources,
//!   feature views, feature services) and the constraint checks rows must pass.
//! - [`record`]: the online record format (header byte, ordered timestamps, MessagePack or JSON
//!   payload, zstd over a threshold) shared by every online store.
//! - [`queue`]: positions in a record namespace's export queue.
//! - [`status`]: serving statuses (PRESENT, NOT_FOUND, NULL_VALUE, OUTSIDE_MAX_AGE).
//! - [`expr`]: write-time transform expressions (parsed and type-checked at `apply`, evaluated
//!   identically by `/push` and the offline engine).
//! - [`duration`]: `30d`-style durations used in definitions and configuration.

pub mod definitions;
pub mod duration;
pub mod entity_key;
pub mod error;
pub mod expr;
pub mod queue;
pub mod record;
pub mod status;
pub mod value;

pub use definitions::{
    Definitions, Entity, FeatureRef, FeatureService, FeatureView, Field, JoinKey, Source,
    SourceFormat,
};
pub use entity_key::{EntityKey, KeyValue};
pub use error::{CoreError, Result};
pub use queue::QueuePosition;
pub use record::{Codec, Record, RecordCodec};
pub use status::FeatureStatus;
pub use value::{ScalarType, Value, ValueType};
