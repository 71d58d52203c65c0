//! `quiver.yaml`, the project configuration.
//!
//! Precedence: defaults, then the file, then `QUIVER__SECTION__KEY` environment variables
//! (`QUIVER__ONLINE_STORE__URL=redis://127.0.0.1:6379/0`). Setting `QUIVER__ONLINE_STORE__TYPE`
//! (or `__OFFLINE_STORE__TYPE`) to a different backend replaces that whole block, since the other
//! backend's keys would not apply. Values are parsed as YAML scalars, so `8080` is a number.
//! Relative paths resolve from the directory holding `quiver.yaml`.

use std::path::{Path, PathBuf};

use quiver_core::definitions::Fallback;
use quiver_online::OnlineStoreConfig;
use serde::{Deserialize, Serialize};
use serde_yaml_ng::Value as Yaml;

use crate::error::{Error, Result};

/// The configuration file's name in a project directory.
pub const CONFIG_FILE: &str = "quiver.yaml";

fn default_registry() -> RegistryConfig {
    RegistryConfig::File {
        path: ".quiver/registry.json".to_string(),
    }
}

/// Where the registry lives: a JSON file (`registry: path`, or `{type: file, path}`), or
/// PostgreSQL (`{type: postgres, url}`, `url: env:VAR` reads the variable) so several machines
/// share one catalog.
#[derive(Clone, PartialEq)]
pub enum RegistryConfig {
    File { path: String },
    Postgres { url: String },
}

impl std::fmt::Debug for RegistryConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

impl RegistryConfig {
    /// A one-line description with secrets redacted.
    pub fn describe(&self) -> String {
        match self {
            RegistryConfig::File { path } => format!("file {path}"),
            RegistryConfig::Postgres { url } => format!(
                "postgres ({})",
                quiver_offline::store::PostgresConfig::new(url.clone()).redacted_url()
            ),
        }
    }
}

impl<'de> Deserialize<'de> for RegistryConfig {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        use serde::de::Error as _;
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Path(String),
            Table(std::collections::BTreeMap<String, Yaml>),
        }
        let raw = Raw::deserialize(d).map_err(|_| {
            D::Error::custom(
                "field `registry`: expected a file path, `{type: file, path: ...}` or `{type: postgres, url: ...}`",
            )
        })?;
        let table = match raw {
            Raw::Path(path) => return Ok(RegistryConfig::File { path }),
            Raw::Table(t) => t,
        };
        let mut table = table
            .into_iter()
            .map(|(key, value)| match value {
                Yaml::String(s) => Ok((key, s)),
                other => Err(D::Error::custom(format!(
                    "field `registry.{key}` must be a string, got `{}`",
                    serde_yaml_ng::to_string(&other).unwrap_or_default().trim()
                ))),
            })
            .collect::<std::result::Result<std::collections::BTreeMap<String, String>, _>>()?;
        let kind = table.remove("type").unwrap_or_else(|| "file".to_string());
        let config = match kind.as_str() {
            "file" => RegistryConfig::File {
                path: table
                    .remove("path")
                    .unwrap_or_else(|| ".quiver/registry.json".to_string()),
            },
            "postgres" => RegistryConfig::Postgres {
                url: table.remove("url").ok_or_else(|| {
                    D::Error::custom("field `registry.url` is required for `type: postgres`")
                })?,
            },
            other => {
                return Err(D::Error::custom(format!(
                    "field `registry.type`: `{other}` is not a registry type (file, postgres)"
                )));
            }
        };
        if let Some(key) = table.keys().next() {
            return Err(D::Error::custom(format!(
                "field `registry.{key}` is not a setting of a {kind} registry"
            )));
        }
        Ok(config)
    }
}

fn default_features_dir() -> String {
    "features".to_string()
}

/// The offline store block: `type: parquet` (default, `path`) or `type: postgres` (`url`,
/// `schema`, `pool_size`).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum OfflineStoreConfig {
    Parquet(ParquetConfig),
    Postgres(quiver_offline::store::PostgresConfig),
}

/// The Parquet offline store: a directory of Parquet files.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParquetConfig {
    #[serde(default = "default_offline_path")]
    pub path: String,
}

fn default_offline_path() -> String {
    ".quiver/offline".to_string()
}

impl Default for OfflineStoreConfig {
    fn default() -> Self {
        OfflineStoreConfig::Parquet(ParquetConfig {
            path: default_offline_path(),
        })
    }
}

impl OfflineStoreConfig {
    /// A one-line description with secrets redacted.
    pub fn describe(&self) -> String {
        match self {
            OfflineStoreConfig::Parquet(p) => format!("parquet ({})", p.path),
            OfflineStoreConfig::Postgres(p) => format!("postgres ({})", p.redacted_url()),
        }
    }
}

/// The `server:` block.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    #[serde(default = "default_host")]
    pub host: String,
    #[serde(default = "default_port")]
    pub port: u16,
    /// Most entity rows one `/get-online-features` request may ask for.
    #[serde(default = "default_max_entities")]
    pub max_entities: usize,
    /// Largest request body accepted, in bytes.
    #[serde(default = "default_max_body")]
    pub max_body_bytes: usize,
    /// A request never runs longer: it answers what it has (with statuses) or a JSON 503.
    #[serde(
        default = "default_request_timeout",
        with = "quiver_core::duration::serde_req"
    )]
    pub request_timeout: std::time::Duration,
    /// When `/health` says `degraded` (see [`HealthConfig`]).
    #[serde(default)]
    pub health: HealthConfig,
    /// How often the server counts the online records of each view version for `/metrics`
    /// (`quiver_view_online_keys`; on Redis one incremental `SCAN` of the project's keys);
    /// `0s` turns it off.
    #[serde(
        default = "default_key_count_interval",
        with = "quiver_core::duration::serde_req"
    )]
    pub key_count_interval: std::time::Duration,
    /// Bearer tokens with scopes; absent: every route is open (a server on loopback, or
    /// behind a gateway that authenticates).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<AuthConfig>,
    /// Most requests handled at once (past it: 429 with `Retry-After`); absent: no bound.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrent_requests: Option<usize>,
    /// HTTPS (rustls) with this certificate and key, and optionally client certificates;
    /// absent: plain HTTP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<ServerTlsConfig>,
}

/// `server.tls`: the server's certificate chain and key (PEM files; relative paths resolve
/// from the project directory), and the CA client certificates must chain to.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerTlsConfig {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Verify client certificates against these CA certificates (mutual TLS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_ca: Option<PathBuf>,
    /// With `client_ca`: `required` (default: a client without a valid certificate is refused
    /// at the handshake) or `optional` (one without any certificate is let through to the
    /// token check; a presented certificate must still be valid).
    #[serde(default)]
    pub client_auth: ClientAuth,
}

/// Whether a client certificate is required when `client_ca` is set.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientAuth {
    #[default]
    Required,
    Optional,
}

/// `server.auth`: who may call what.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    pub tokens: Vec<TokenConfig>,
    /// Who may read `/metrics`: `open` (default, for scrapers without tokens), `read` or
    /// `admin` (a token with that scope).
    #[serde(default)]
    pub metrics: MetricsAccess,
}

/// A scope a route needs: `read` (features, health, stats, lineage, reading records),
/// `write` (writes, pushes, records and predictions), `admin` (materialize, invalidate,
/// prune, export). Scopes do not imply each other.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    Read,
    Write,
    Admin,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Write => "write",
            Scope::Admin => "admin",
        }
    }
}

/// Who may read `/metrics`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MetricsAccess {
    #[default]
    Open,
    Read,
    Admin,
}

/// One token: its SHA-256 (hex) or the environment variable holding it, its scopes, and an
/// optional request rate.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// Names the token in messages and logs (the token itself never appears).
    pub name: String,
    /// Lowercase hex SHA-256 of the token (`printf %s "$TOKEN" | sha256sum`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// An environment variable holding the token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<String>,
    pub scopes: Vec<Scope>,
    /// Requests per second this token may make on average (past it: 429 with `Retry-After`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<f64>,
    /// Requests it may make at once after a quiet spell (default: the rate, at least 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst: Option<u32>,
}

impl std::fmt::Debug for TokenConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenConfig")
            .field("name", &self.name)
            .field("env", &self.env)
            .field("scopes", &self.scopes)
            .field("rate", &self.rate)
            .finish_non_exhaustive()
    }
}

/// `server.health`: the thresholds past which `/health` reports `degraded` (it stays ready:
/// degraded means serving, with something to look at). `unhealthy` is fixed: no registry, or
/// neither the online store nor a fallback layer can answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthConfig {
    /// The online store's ping is slower than this.
    #[serde(
        default = "default_max_ping",
        with = "quiver_core::duration::serde_req"
    )]
    pub max_ping: std::time::Duration,
    /// The online store uses more than this share of its memory limit.
    #[serde(default = "default_max_memory_ratio")]
    pub max_memory_ratio: f64,
    /// A record waits for export longer than this.
    #[serde(
        default = "default_max_queue_age",
        with = "quiver_core::duration::serde_req"
    )]
    pub max_export_queue_age: std::time::Duration,
}

fn default_max_ping() -> std::time::Duration {
    std::time::Duration::from_millis(100)
}
fn default_max_memory_ratio() -> f64 {
    0.9
}
fn default_max_queue_age() -> std::time::Duration {
    std::time::Duration::from_secs(26 * 3600)
}
fn default_key_count_interval() -> std::time::Duration {
    std::time::Duration::from_secs(60)
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            max_ping: default_max_ping(),
            max_memory_ratio: default_max_memory_ratio(),
            max_export_queue_age: default_max_queue_age(),
        }
    }
}

fn default_request_timeout() -> std::time::Duration {
    std::time::Duration::from_secs(1)
}

fn default_host() -> String {
    "127.0.0.1".to_string()
}
fn default_port() -> u16 {
    6566
}
fn default_max_entities() -> usize {
    10_000
}
fn default_max_body() -> usize {
    8 << 20
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            host: default_host(),
            port: default_port(),
            max_entities: default_max_entities(),
            max_body_bytes: default_max_body(),
            request_timeout: default_request_timeout(),
            health: HealthConfig::default(),
            key_count_interval: default_key_count_interval(),
            auth: None,
            max_concurrent_requests: None,
            tls: None,
        }
    }
}

/// The `materialize:` block.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaterializeConfig {
    /// Records per online-store write call (one Redis pipeline).
    #[serde(default = "default_batch")]
    pub batch_size: usize,
    /// Abort a view's materialization on the first row that violates a constraint.
    #[serde(default)]
    pub strict: bool,
}

fn default_batch() -> usize {
    2_000
}

impl Default for MaterializeConfig {
    fn default() -> Self {
        MaterializeConfig {
            batch_size: default_batch(),
            strict: false,
        }
    }
}

/// The `serving:` block: how reads behave beyond the online store.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServingConfig {
    /// The fallback of views without their own `fallback:` (default `none`).
    #[serde(default = "Fallback::none", deserialize_with = "fallback_policy")]
    pub fallback: Fallback,
    /// Write values the fallback layer found back to the online store (newer wins).
    #[serde(default = "default_true")]
    pub read_through: bool,
    /// Most time a request spends computing a derived view's features on a miss; rows beyond
    /// it are NOT_FOUND, not slow.
    #[serde(
        default = "default_compute_budget",
        with = "quiver_core::duration::serde_req"
    )]
    pub compute_budget: std::time::Duration,
}

fn default_true() -> bool {
    true
}

fn default_compute_budget() -> std::time::Duration {
    std::time::Duration::from_millis(200)
}

fn fallback_policy<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Fallback, D::Error> {
    let def = quiver_core::definitions::FallbackDef::deserialize(d)?;
    def.policy().map_err(serde::de::Error::custom)
}

impl Default for ServingConfig {
    fn default() -> Self {
        ServingConfig {
            fallback: Fallback::none(),
            read_through: true,
            compute_budget: default_compute_budget(),
        }
    }
}

/// The whole project configuration.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProjectConfig {
    /// Project name; part of every online key (`quiver:{project}:...`).
    pub project: String,
    /// Where the registry lives (see [`RegistryConfig`]).
    #[serde(default = "default_registry")]
    pub registry: RegistryConfig,
    /// Directory of `*.yaml` definition files.
    #[serde(default = "default_features_dir")]
    pub features: String,
    #[serde(default)]
    pub online_store: OnlineStoreConfig,
    #[serde(default)]
    pub offline_store: OfflineStoreConfig,
    #[serde(default)]
    pub server: ServerConfig,
    #[serde(default)]
    pub materialize: MaterializeConfig,
    #[serde(default)]
    pub serving: ServingConfig,
    /// Record namespaces, predictions and their export (see [`crate::records::config`]).
    #[serde(default)]
    pub records: crate::records::RecordsConfig,
    /// How many versions of each view keep their online records, the active one (and any a
    /// feature service pins) included: an apply that bumps a version prunes the older ones
    /// beyond it. `None`: keep every version until `quiver prune-online`. A view's own
    /// `max_versions` overrides it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_versions: Option<u32>,
}

/// A loaded configuration and the directory its relative paths resolve from.
#[derive(Clone, Debug)]
pub struct Project {
    pub dir: PathBuf,
    pub config: ProjectConfig,
}

impl Project {
    /// Loads `dir/quiver.yaml` with environment overrides from the process environment.
    pub fn load(dir: &Path) -> Result<Project> {
        Self::load_with_env(dir, std::env::vars())
    }

    /// Loads `dir/quiver.yaml` applying `QUIVER__*` overrides from `env`.
    pub fn load_with_env(
        dir: &Path,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Project> {
        let path = dir.join(CONFIG_FILE);
        let text = std::fs::read_to_string(&path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Error::Config(format!(
                    "no `{CONFIG_FILE}` in `{}`; run `quiver init` or pass `--project DIR`",
                    dir.display()
                ))
            } else {
                Error::io(&path, e)
            }
        })?;
        let config = parse_config(&text, env)
            .map_err(|e| Error::Config(format!("{}: {e}", path.display())))?;
        Ok(Project {
            dir: dir.to_path_buf(),
            config,
        })
    }

    /// Resolves a configured path against the project directory.
    pub fn resolve(&self, path: &str) -> PathBuf {
        let p = Path::new(path);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.dir.join(p)
        }
    }
}

/// Parses configuration text and applies `QUIVER__*` overrides.
pub fn parse_config(
    text: &str,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<ProjectConfig, String> {
    let mut doc: Yaml = serde_yaml_ng::from_str(text).map_err(|e| e.to_string())?;
    if doc.is_null() {
        doc = Yaml::Mapping(Default::default());
    }
    let mut overrides: Vec<(Vec<String>, String)> = env
        .into_iter()
        .filter_map(|(k, v)| {
            let rest = k.strip_prefix("QUIVER__")?;
            let path: Vec<String> = rest.split("__").map(|s| s.to_ascii_lowercase()).collect();
            (!path.iter().any(|p| p.is_empty())).then_some((path, v))
        })
        .collect();
    // `type` first, so a backend switch clears the block before its other keys are set.
    overrides.sort_by_key(|(path, _)| path.last().map(|l| l != "type"));
    for (path, value) in overrides {
        apply_override(&mut doc, &path, &value)?;
    }
    let config: ProjectConfig = serde_yaml_ng::from_value(doc).map_err(|e| e.to_string())?;
    validate_project_name(&config.project)?;
    if config.max_versions == Some(0) {
        return Err("field `max_versions` must be at least 1 (the active version)".into());
    }
    Ok(config)
}

fn validate_project_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "field `project`: `{name}` is invalid; use letters, digits, `_` and `-` (it is part of every online key)"
        ))
    }
}

fn apply_override(doc: &mut Yaml, path: &[String], value: &str) -> Result<(), String> {
    let var = format!("QUIVER__{}", path.join("__").to_ascii_uppercase());
    let parsed: Yaml = serde_yaml_ng::from_str(value).unwrap_or(Yaml::String(value.to_string()));
    let mut node = doc;
    for (i, key) in path.iter().enumerate() {
        let map = node
            .as_mapping_mut()
            .ok_or_else(|| format!("{var}: `{}` is not a section", path[..i].join(".")))?;
        let k = Yaml::String(key.clone());
        if i == path.len() - 1 {
            if key == "type" && map.get(&k) != Some(&parsed) {
                map.clear();
            }
            map.insert(k, parsed);
            return Ok(());
        }
        node = map
            .entry(k)
            .or_insert_with(|| Yaml::Mapping(Default::default()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "project: shop\nonline_store:\n  type: embedded\n  path: x.redb\n";

    #[test]
    fn defaults_then_file() {
        let c = parse_config(BASE, []).unwrap();
        assert_eq!(c.project, "shop");
        assert_eq!(c.server.port, 6566);
        assert_eq!(
            c.registry,
            RegistryConfig::File {
                path: ".quiver/registry.json".into()
            }
        );
        assert_eq!(c.online_store.kind(), "embedded");
    }

    #[test]
    fn registry_is_a_path_or_a_typed_block_and_says_what_is_wrong() {
        let with = |block: &str| parse_config(&format!("{BASE}registry: {block}\n"), []);
        assert_eq!(
            with("reg.json").unwrap().registry,
            RegistryConfig::File {
                path: "reg.json".into()
            }
        );
        let pg = with("{type: postgres, url: \"postgres://u:secret@127.0.0.1/db\"}").unwrap();
        assert!(matches!(&pg.registry, RegistryConfig::Postgres { url } if url.contains("secret")));
        assert!(
            !format!("{:?}", pg.registry).contains("secret"),
            "the password is redacted"
        );
        let err = with("{type: postgres}").unwrap_err();
        assert!(err.contains("`registry.url` is required"), "{err}");
        let err = with("{type: mysql, url: x}").unwrap_err();
        assert!(
            err.contains("`registry.type`: `mysql` is not a registry type"),
            "{err}"
        );
        let err = with("{type: postgres, url: x, pool: \"3\"}").unwrap_err();
        assert!(err.contains("`registry.pool` is not a setting"), "{err}");
        let err = with("{type: postgres, url: 5432}").unwrap_err();
        assert!(err.contains("`registry.url` must be a string"), "{err}");
        // The environment can switch it, like any key.
        let env = [(
            "QUIVER__REGISTRY".to_string(),
            "{type: postgres, url: \"host=127.0.0.1\"}".to_string(),
        )];
        let c = parse_config(BASE, env).unwrap();
        assert!(matches!(c.registry, RegistryConfig::Postgres { .. }));
    }

    #[test]
    fn env_overrides_and_backend_switch() {
        let env = vec![
            (
                "QUIVER__ONLINE_STORE__URL".to_string(),
                "redis://127.0.0.1:7000/1".to_string(),
            ),
            (
                "QUIVER__ONLINE_STORE__TYPE".to_string(),
                "redis".to_string(),
            ),
            ("QUIVER__SERVER__PORT".to_string(), "8080".to_string()),
            ("UNRELATED".to_string(), "x".to_string()),
        ];
        let c = parse_config(BASE, env).unwrap();
        assert_eq!(c.server.port, 8080);
        match c.online_store {
            OnlineStoreConfig::Redis(r) => assert_eq!(r.url, "redis://127.0.0.1:7000/1"),
            other => panic!("expected redis, got {other:?}"),
        }
    }

    #[test]
    fn errors_name_the_field() {
        let err = parse_config("project: shop\nserver:\n  prot: 1\n", []).unwrap_err();
        assert!(err.contains("unknown field `prot`"), "{err}");
        let err = parse_config("project: 'a b'\n", []).unwrap_err();
        assert!(err.contains("field `project`"), "{err}");
    }
}
