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
//! let response = store.get_online_features(&OnlineRequest {
//!     features: FeatureSelection::Features(vec!["user_profile:age".into()]),
//!     entities: vec![("user_id".into(), vec![42.into()])],
//!     full_feature_names: false,
//! }).await?;
//! # Ok(()) }
//! ```
//!
//! Layout:
//! - [`config`]: `quiver.yaml` (defaults, file, `QUIVER__*` environment overrides).
//! - [`definitions`]: loading `features/*.yaml`.
//! - [`registry`]: applied definitions with view versions and apply history.
//! - [`store`]: [`FeatureStore`], opening a project and its online store.
//! - [`apply`], [`materialize`], [`online`]: the operations.
//! - [`offline`]: `build` into the offline store, point-in-time training sets, derived views.
//! - [`init`]: the example project `quiver init` writes.

pub mod apply;
pub mod config;
pub mod definitions;
pub mod error;
pub mod init;
pub mod materialize;
pub mod offline;
pub mod online;
pub mod registry;
pub mod store;

pub use apply::ApplyReport;
pub use config::{Project, ProjectConfig};
pub use error::{Error, ErrorKind, Result};
pub use init::{InitReport, init_project};
pub use materialize::{MaterializeOptions, MaterializeReport, NoProgress, Progress, ViewReport};
pub use offline::{
    BuildOptions, BuildViewReport, HistoricalOptions, SourceRowsSkipped, TrainingSet,
};
pub use online::{FeatureColumn, FeatureSelection, OnlineRequest, OnlineResponse};
pub use store::{FeatureStore, ServedView};

pub use quiver_core as core;
pub use quiver_offline::io as offline_io;
pub use quiver_online as online_store;
