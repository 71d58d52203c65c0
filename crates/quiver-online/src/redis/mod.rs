//! Redis online store. Being implemented.

use crate::config::RedisConfig;
use crate::error::{OnlineError, Result};

pub struct RedisStore;

impl RedisStore {
    pub async fn connect(_config: &RedisConfig) -> Result<Self> {
        Err(OnlineError::Unsupported("redis"))
    }
}

#[async_trait::async_trait]
impl crate::OnlineStoreRead for RedisStore {
    async fn read(
        &self,
        _t: &crate::ViewTable,
        _k: &[quiver_core::EntityKey],
    ) -> Result<Vec<Option<quiver_core::Record>>> {
        Err(OnlineError::Unsupported("redis"))
    }
    async fn ping(&self) -> Result<std::time::Duration> {
        Err(OnlineError::Unsupported("redis"))
    }
    fn kind(&self) -> &'static str {
        "redis"
    }
}

#[async_trait::async_trait]
impl crate::OnlineStoreWrite for RedisStore {
    async fn write(
        &self,
        _t: &crate::ViewTable,
        _r: &[(quiver_core::EntityKey, quiver_core::Record)],
    ) -> Result<crate::WriteSummary> {
        Err(OnlineError::Unsupported("redis"))
    }
}
