//! Embedded online store (redb). Being implemented.

use std::path::Path;

use crate::config::EmbeddedConfig;
use crate::error::{OnlineError, Result};

pub struct EmbeddedStore;

impl EmbeddedStore {
    pub async fn open(_config: &EmbeddedConfig, _base_dir: &Path) -> Result<Self> {
        Err(OnlineError::Unsupported("embedded"))
    }
}

#[async_trait::async_trait]
impl crate::OnlineStoreRead for EmbeddedStore {
    async fn read(
        &self,
        _t: &crate::ViewTable,
        _k: &[quiver_core::EntityKey],
    ) -> Result<Vec<Option<quiver_core::Record>>> {
        Err(OnlineError::Unsupported("embedded"))
    }
    async fn ping(&self) -> Result<std::time::Duration> {
        Err(OnlineError::Unsupported("embedded"))
    }
    fn kind(&self) -> &'static str {
        "embedded"
    }
}

#[async_trait::async_trait]
impl crate::OnlineStoreWrite for EmbeddedStore {
    async fn write(
        &self,
        _t: &crate::ViewTable,
        _r: &[(quiver_core::EntityKey, quiver_core::Record)],
    ) -> Result<crate::WriteSummary> {
        Err(OnlineError::Unsupported("embedded"))
    }
}
