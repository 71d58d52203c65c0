//! The `online_store:` block of `quiver.yaml`, tagged on `type`:
//!
//! ```yaml
//! online_store:
//!   type: embedded            # embedded (default) | redis | memory
//!   path: .quiver/online.redb # embedded: the database file, relative to the project
//!   codec: msgpack            # msgpack (default) | json: how records are written
//!   compression_threshold: 1024  # zstd-compress payloads larger than this (bytes)
//!   default_ttl: 30d          # for views without `ttl`; absent: never expire
//! ```
//!
//! Redis: `url` (`redis://[user:password@]host:port/db`, `rediss://` for TLS), `connect_timeout`
//! (default `1s`), `command_timeout` (default `500ms`), `key_prefix` (default `quiver`),
//! `connections` (default 4: multiplexed connections, used round-robin).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use quiver_core::{Codec, RecordCodec};
use serde::{Deserialize, Serialize};

use crate::error::{OnlineError, Result};
use crate::{OnlineStore, embedded, memory, redis};

fn default_threshold() -> usize {
    1024
}

fn default_embedded_path() -> String {
    ".quiver/online.redb".to_string()
}

fn default_connect_timeout() -> String {
    "1s".to_string()
}

fn default_command_timeout() -> String {
    "500ms".to_string()
}

fn default_connections() -> usize {
    4
}

fn default_prefix() -> String {
    "quiver".to_string()
}

/// Settings every backend shares.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmbeddedConfig {
    #[serde(default = "default_embedded_path")]
    pub path: String,
    #[serde(default)]
    pub codec: Codec,
    #[serde(default = "default_threshold")]
    pub compression_threshold: usize,
    #[serde(default)]
    pub default_ttl: Option<String>,
}

impl Default for EmbeddedConfig {
    fn default() -> Self {
        EmbeddedConfig {
            path: default_embedded_path(),
            codec: Codec::default(),
            compression_threshold: default_threshold(),
            default_ttl: None,
        }
    }
}

/// Redis (single node).
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisConfig {
    /// `type: redis`: the server (or `rediss://` for TLS).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub url: String,
    /// `type: redis_cluster`: some nodes of the cluster (`redis://host:port`, `rediss://` for
    /// TLS; user and password in the URLs); the client discovers the rest and follows
    /// topology changes, failovers and `MOVED`/`ASK` redirections.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<String>,
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout: String,
    #[serde(default = "default_command_timeout")]
    pub command_timeout: String,
    #[serde(default = "default_prefix")]
    pub key_prefix: String,
    /// Multiplexed connections per store, handed out round-robin (0 counts as 1).
    #[serde(default = "default_connections")]
    pub connections: usize,
    #[serde(default)]
    pub codec: Codec,
    #[serde(default = "default_threshold")]
    pub compression_threshold: usize,
    #[serde(default)]
    pub default_ttl: Option<String>,
    /// Timeouts, read retries and the circuit breaker around every call (see
    /// [`crate::resilient`]).
    #[serde(default)]
    pub resilience: crate::resilient::ResilienceConfig,
    /// `type: redis` behind Sentinel: the primary Sentinel names for `master`, found again
    /// after a failover (instead of `url`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sentinel: Option<SentinelConfig>,
    /// TLS settings of a `rediss://` URL: a CA to verify the server with, and a client
    /// certificate for mutual TLS. Absent: the system's trust store, no client certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<RedisTlsConfig>,
}

/// `online_store.sentinel`: the monitored primary's name and some Sentinels.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SentinelConfig {
    pub master: String,
    /// Sentinel addresses (`redis://127.0.0.1:26379`).
    pub nodes: Vec<String>,
}

/// `online_store.tls`: PEM files (relative paths resolve from the project directory).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisTlsConfig {
    /// Verify the server against these CA certificates instead of the system's trust store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<std::path::PathBuf>,
    /// A client certificate (with `key_file`) for servers that require one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_file: Option<std::path::PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_file: Option<std::path::PathBuf>,
}

impl RedisTlsConfig {
    /// The same settings with relative paths resolved from `dir`.
    pub fn resolved(&self, dir: &Path) -> RedisTlsConfig {
        let resolve = |p: &Option<std::path::PathBuf>| {
            p.as_ref().map(|p| {
                if p.is_absolute() {
                    p.clone()
                } else {
                    dir.join(p)
                }
            })
        };
        RedisTlsConfig {
            ca_file: resolve(&self.ca_file),
            cert_file: resolve(&self.cert_file),
            key_file: resolve(&self.key_file),
        }
    }
}

impl std::fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisConfig")
            .field("url", &redact_url(&self.url))
            .field(
                "nodes",
                &self.nodes.iter().map(|n| redact_url(n)).collect::<Vec<_>>(),
            )
            .field("connect_timeout", &self.connect_timeout)
            .field("command_timeout", &self.command_timeout)
            .field("key_prefix", &self.key_prefix)
            .field("connections", &self.connections)
            .field("codec", &self.codec)
            .field("compression_threshold", &self.compression_threshold)
            .field("default_ttl", &self.default_ttl)
            .field("resilience", &self.resilience)
            .field("sentinel", &self.sentinel)
            .field("tls", &self.tls)
            .finish()
    }
}

/// In-process memory (tests, and embedding Quiver where nothing must persist).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemoryConfig {
    #[serde(default)]
    pub codec: Codec,
    #[serde(default = "default_threshold")]
    pub compression_threshold: usize,
    #[serde(default)]
    pub default_ttl: Option<String>,
}

/// Which online store to use, and its settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum OnlineStoreConfig {
    Embedded(EmbeddedConfig),
    Redis(RedisConfig),
    /// Redis Cluster: the same settings, with `nodes` instead of `url`.
    #[serde(rename = "redis_cluster")]
    RedisCluster(RedisConfig),
    Memory(MemoryConfig),
}

impl Default for OnlineStoreConfig {
    fn default() -> Self {
        OnlineStoreConfig::Embedded(EmbeddedConfig::default())
    }
}

/// Replaces the password in a URL with `***` for logs and messages.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let creds = &url[scheme_end + 3..at];
            let user = creds.split(':').next().unwrap_or("");
            if creds.contains(':') {
                format!("{}{user}:***{}", &url[..scheme_end + 3], &url[at..])
            } else {
                url.to_string()
            }
        }
        _ => url.to_string(),
    }
}

pub(crate) fn parse_duration(field: &str, text: &str) -> Result<Duration> {
    quiver_core::duration::parse(text)
        .map_err(|e| OnlineError::Config(format!("field `{field}`: {e}")))
}

impl OnlineStoreConfig {
    pub fn kind(&self) -> &'static str {
        match self {
            OnlineStoreConfig::Embedded(_) => "embedded",
            OnlineStoreConfig::Redis(_) => "redis",
            OnlineStoreConfig::RedisCluster(_) => "redis_cluster",
            OnlineStoreConfig::Memory(_) => "memory",
        }
    }

    /// The writer settings for records.
    pub fn record_codec(&self) -> RecordCodec {
        let (codec, compression_threshold) = match self {
            OnlineStoreConfig::Embedded(c) => (c.codec, c.compression_threshold),
            OnlineStoreConfig::Redis(c) | OnlineStoreConfig::RedisCluster(c) => {
                (c.codec, c.compression_threshold)
            }
            OnlineStoreConfig::Memory(c) => (c.codec, c.compression_threshold),
        };
        RecordCodec {
            codec,
            compression_threshold,
            ..RecordCodec::default()
        }
    }

    /// TTL for views that set none.
    pub fn default_ttl(&self) -> Result<Option<Duration>> {
        let text = match self {
            OnlineStoreConfig::Embedded(c) => &c.default_ttl,
            OnlineStoreConfig::Redis(c) | OnlineStoreConfig::RedisCluster(c) => &c.default_ttl,
            OnlineStoreConfig::Memory(c) => &c.default_ttl,
        };
        text.as_deref()
            .map(|t| parse_duration("online_store.default_ttl", t))
            .transpose()
    }

    /// A one-line description with secrets redacted.
    pub fn describe(&self) -> String {
        match self {
            OnlineStoreConfig::Embedded(c) => format!("embedded ({})", c.path),
            OnlineStoreConfig::Redis(c) => format!("redis ({})", redact_url(&c.url)),
            OnlineStoreConfig::RedisCluster(c) => format!(
                "redis_cluster ({})",
                c.nodes
                    .iter()
                    .map(|n| redact_url(n))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            OnlineStoreConfig::Memory(_) => "memory".to_string(),
        }
    }
}

/// Opens the configured store. Relative paths resolve from `base_dir` (the project directory).
pub async fn open(config: &OnlineStoreConfig, base_dir: &Path) -> Result<Arc<dyn OnlineStore>> {
    config.default_ttl()?;
    Ok(match config {
        OnlineStoreConfig::Embedded(c) => {
            Arc::new(embedded::EmbeddedStore::open(c, base_dir).await?)
        }
        // A remote store never hangs a caller: every call is bounded, reads are retried within
        // the caller's deadline, and a circuit breaker fails fast while the server is down.
        OnlineStoreConfig::Redis(c) | OnlineStoreConfig::RedisCluster(c) => {
            let mut c = c.clone();
            match (config, c.url.is_empty(), c.nodes.is_empty()) {
                (OnlineStoreConfig::Redis(_), true, _) if c.sentinel.is_none() => {
                    return Err(OnlineError::Config(
                        "field `online_store.url` is missing (`redis://host:6379`, or `sentinel: {master, nodes}`)".into(),
                    ));
                }
                (OnlineStoreConfig::Redis(_), false, false) => {
                    return Err(OnlineError::Config(
                        "field `online_store.nodes` is for `type: redis_cluster`; `type: redis` takes one `url`".into(),
                    ));
                }
                (_, _, true) if matches!(config, OnlineStoreConfig::RedisCluster(_)) => {
                    return Err(OnlineError::Config(
                        "field `online_store.nodes` is missing: give some nodes of the cluster (`[redis://127.0.0.1:7000, ...]`)".into(),
                    ));
                }
                (OnlineStoreConfig::RedisCluster(_), false, _) => {
                    return Err(OnlineError::Config(
                        "field `online_store.url` is for `type: redis`; `type: redis_cluster` takes `nodes`".into(),
                    ));
                }
                _ => {}
            }
            c.tls = c.tls.as_ref().map(|t| t.resolved(base_dir));
            Arc::new(crate::resilient::Resilient::new(
                redis::RedisStore::connect(&c).await?,
                c.resilience.clone(),
            )?)
        }
        OnlineStoreConfig::Memory(_) => Arc::new(memory::MemoryStore::new(config.record_codec())),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact_url("redis://app:s3cret@127.0.0.1:6379/2"),
            "redis://app:***@127.0.0.1:6379/2"
        );
        assert_eq!(
            redact_url("redis://127.0.0.1:6379"),
            "redis://127.0.0.1:6379"
        );
        let cfg: OnlineStoreConfig =
            serde_json::from_str(r#"{"type":"redis","url":"redis://u:pw@127.0.0.1/0"}"#).unwrap();
        assert!(!format!("{cfg:?}").contains("pw"));
    }

    #[test]
    fn defaults_to_embedded() {
        let cfg: OnlineStoreConfig = serde_json::from_str(r#"{"type":"embedded"}"#).unwrap();
        assert_eq!(cfg, OnlineStoreConfig::default());
        assert!(
            serde_json::from_str::<OnlineStoreConfig>(r#"{"type":"embedded","pth":"x"}"#).is_err()
        );
    }
}
