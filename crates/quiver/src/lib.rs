//! Quiver, a feature store: definitions in YAML, point-in-time-correct training data offline,
//! the same features served online with low latency.
//!
//! This crate is the library facade: everything the `quiver` CLI and the HTTP server do is a
//! call on [`FeatureStore`], so a Rust service can embed Quiver without HTTP.
//!
//! ```no_run
//! # async fn demo() -> quiver::Result<()> {
//! use quiver::{FeatureStore, FeatureSelection, OnlineRequest};
//! let mut store = FeatureStore::open("my_project").await?;
//! store.apply().await?;
//! store.materialize(&Default::default(), &quiver::NoProgress).await?;
//! let response = store.get_online_features(&OnlineRequest::new(
//!     FeatureSelection::Features(vec!["user_profile:age".into()]),
//!     vec![("user_id".into(), vec![quiver::core::KeyValue::Int(42)])],
//! )).await?;
//! # Ok(()) }
//! ```
//!
//! Layout:
//! - [`config`]: `quiver.yaml` (defaults, file, `QUIVER__*` environment overrides).
//! - [`definitions`]: loading `features/*.yaml`.
//! - [`registry`]: applied definitions with view versions and apply history.
//! - [`store`]: [`FeatureStore`], which owns its parts: the [`catalog`] (the applied registry,
//!   resolved), the online store and the offline store, each opened once.
//! - [`selection`]: which features a request wants, resolved against the catalog.
//! - The operations, each depending on `store` and never on each other: [`apply`],
//!   [`materialize`], [`serving`] (plan → read → assemble, and writes), [`offline`] (`build`, training sets,
//!   `prune`), [`warm`]. Feature evaluation lives in [`quiver_offline::engine`], the row check in
//!   [`quiver_core::FeatureView::check_row`].
//! - [`records`]: record namespaces and predictions, cached with a TTL, queued durably and
//!   exported exactly once to the offline store.
//! - [`init`]: the example project `quiver init` writes.

pub mod apply;
pub mod catalog;
pub mod config;
pub mod definitions;
pub mod error;
mod file_lock;
pub mod freshness;
pub mod init;
pub mod lineage;
pub mod materialize;
pub mod offline;
pub mod online_admin;
pub mod push;
pub mod records;
pub mod registry;
pub mod registry_store;
pub mod rollback;
pub mod selection;
pub mod serving;
pub mod skew;
pub mod stats;
pub mod store;
pub mod versions;
pub mod warm;

pub use apply::{ApplyReport, Plan};
pub use catalog::{Catalog, ServedView};
pub use config::{Project, ProjectConfig};
pub use error::{Error, ErrorKind, Result};
pub use freshness::ViewFreshness;
pub use init::{InitReport, init_project};
pub use materialize::{MaterializeOptions, MaterializeReport, NoProgress, Progress, ViewReport};
pub use offline::{
    BuildOptions, BuildViewReport, HistoricalOptions, SourceRowsSkipped, TrainingSet,
};
pub use records::{ExportOptions, ExportReport, Receipt};
pub use rollback::RollbackPlan;
pub use selection::FeatureSelection;
pub use serving::{FeatureColumn, Layer, OnlineRequest, OnlineResponse};
pub use skew::{SkewOptions, SkewReport};
pub use store::FeatureStore;
pub use versions::{VersionsReport, ViewVersion};
pub use warm::{WarmEntities, WarmOptions, WarmReport};

pub use quiver_core as core;
pub use quiver_offline as offline_store;
pub use quiver_offline::io as offline_io;
pub use quiver_online as online_store;
