//! Records and predictions: cached with a TTL in the online store, queued durably, exported
//! exactly once to the offline store.
//!
//! - [`config`]: the `records:` block of `quiver.yaml`.
//! - [`namespace`]: a namespace resolved: checks records on write ([`Namespace::accept`]),
//!   wraps them in an [`Envelope`], and turns envelopes into the exported Arrow rows.
//! - [`export`]: draining the queues into the offline store (`quiver export`, the server's
//!   schedule): claim → convert → commit (with the queue position, atomically) → acknowledge.
//!
//! Built-in namespaces: `predictions` (id `request_id`; the latest prediction per model and
//! entity is also cached under an alias) and `served_features` (what the server answered
//! through feature services with `logging`).

pub mod config;
pub mod export;
pub mod namespace;
pub mod served;
pub mod spill;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use quiver_core::QueuePosition;
use quiver_online::RecordStore;
use quiver_online::records::{PutRecord, QueueStats};
use serde_json::{Map, Value as Json};

pub use config::{NamespaceConfig, RecordsConfig};
pub use export::{ExportOptions, ExportReport, NamespaceExport};
pub use namespace::{Envelope, Namespace};

use crate::config::Project;
use crate::error::{Error, Result};
use crate::store::FeatureStore;

/// The built-in namespace of predictions.
pub const PREDICTIONS: &str = "predictions";
/// The built-in namespace of served-feature logs.
pub const SERVED_FEATURES: &str = "served_features";

/// Most records one batch call may hold.
pub const MAX_BATCH: usize = 10_000;

/// The project's namespaces and the store that keeps them.
pub struct Records {
    namespaces: BTreeMap<String, Namespace>,
    store: Option<Arc<dyn RecordStore>>,
    backend: &'static str,
    pub(crate) config: RecordsConfig,
    /// One export at a time per namespace in this process (the cross-process lock is the
    /// store's).
    pub(crate) exporting: tokio::sync::Mutex<()>,
    /// The served-feature log's buffer, started on first use.
    served: std::sync::OnceLock<served::ServedLog>,
    /// Records accepted while the store is unavailable (`records.spill`).
    spill: Option<spill::Spill>,
}

/// Where an accepted record went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Receipt {
    pub id: String,
    /// Its position in the namespace's queue; `None` when it was spilled to the local file
    /// (the store was unavailable) and will be queued when the file is replayed.
    pub position: Option<QueuePosition>,
}

fn builtin(
    name: &str,
    c: &config::BuiltinConfig,
    cache: bool,
    fields: &[(&str, &str)],
) -> NamespaceConfig {
    NamespaceConfig {
        name: name.to_string(),
        id_field: "request_id".to_string(),
        ttl: c.ttl,
        time_field: None,
        fields: fields
            .iter()
            .map(|(n, t)| (n.to_string(), t.to_string()))
            .collect(),
        required: Vec::new(),
        isolation: c.isolation.clone(),
        cache: c.cache.unwrap_or(cache),
    }
}

impl Records {
    /// Resolves the `records:` block. `store` is the online store's record side (`None` for
    /// the memory store: record calls then fail with a clear error).
    pub fn new(project: &Project, store: Option<Arc<dyn RecordStore>>) -> Result<Records> {
        let config = project.config.records.clone();
        config.export.at_minutes().map_err(Error::Config)?;
        let prefix = match &project.config.online_store {
            quiver_online::OnlineStoreConfig::Redis(r)
            | quiver_online::OnlineStoreConfig::RedisCluster(r) => r.key_prefix.clone(),
            _ => "quiver".to_string(),
        };
        let name = &project.config.project;
        let mut all = vec![
            builtin(
                PREDICTIONS,
                &config.predictions,
                true,
                &[
                    ("model", "string"),
                    ("model_version", "string"),
                    ("entity_key", "string"),
                ],
            ),
            builtin(
                SERVED_FEATURES,
                &config.served_features,
                false,
                &[("service", "string"), ("rows", "int64")],
            ),
        ];
        for ns in &config.namespaces {
            if ns.name == PREDICTIONS || ns.name == SERVED_FEATURES {
                return Err(Error::Config(format!(
                    "records namespace `{}` is built in; configure it under `records.{}`",
                    ns.name, ns.name
                )));
            }
            all.push(ns.clone());
        }
        let mut namespaces = BTreeMap::new();
        for c in &all {
            let ns = Namespace::resolve(name, &prefix, c).map_err(Error::Config)?;
            if namespaces.insert(ns.name.clone(), ns).is_some() {
                return Err(Error::Config(format!(
                    "records namespace `{}` is declared twice",
                    c.name
                )));
            }
        }
        if config.export.batch_size == 0 || config.export.attempts == 0 {
            return Err(Error::Config(
                "fields `records.export.batch_size` and `records.export.attempts` must be at least 1"
                    .into(),
            ));
        }
        Ok(Records {
            namespaces,
            backend: project.config.online_store.kind(),
            store,
            exporting: tokio::sync::Mutex::new(()),
            served: std::sync::OnceLock::new(),
            spill: config
                .spill
                .as_ref()
                .map(|s| spill::Spill::new(project.resolve(&s.path))),
            config,
        })
    }

    /// The served-feature log (started on the current runtime on first use); `None` when the
    /// online store keeps no records.
    pub fn served_log(&self) -> Option<&served::ServedLog> {
        if let Some(log) = self.served.get() {
            return Some(log);
        }
        let store = self.store.clone()?;
        let space = self.namespaces.get(SERVED_FEATURES)?.space.clone();
        tokio::runtime::Handle::try_current().ok()?;
        Some(
            self.served
                .get_or_init(|| served::ServedLog::start(store, space)),
        )
    }

    /// The served-feature log when this process started it (no log is started by asking).
    pub fn served_started(&self) -> Option<&served::ServedLog> {
        self.served.get()
    }

    /// Logs one answer served through `service`: entity keys, values, statuses, event times and
    /// which layer answered each row. Returns the log record's id (the request id).
    pub fn log_served(
        &self,
        service: &str,
        request: &crate::OnlineRequest,
        response: &crate::OnlineResponse,
    ) -> Option<String> {
        let log = self.served_log()?;
        let now = now_ns();
        let id = new_request_id();
        let (service, entities, response) = (
            service.to_string(),
            request.entities.clone(),
            response.clone(),
        );
        let request_id = id.clone();
        log.log(Box::new(move || {
            served_record(request_id, service, now, &entities, &response)
        }));
        Some(id)
    }

    pub fn namespaces(&self) -> impl Iterator<Item = &Namespace> {
        self.namespaces.values()
    }

    /// A namespace, or a not-found error listing the known ones.
    pub fn namespace(&self, name: &str) -> Result<&Namespace> {
        self.namespaces.get(name).ok_or_else(|| {
            Error::NotFound(format!(
                "records namespace `{name}` is not declared; known: {}",
                self.namespaces
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })
    }

    /// The record store, or an error when the online store keeps no records.
    pub fn store(&self) -> Result<&Arc<dyn RecordStore>> {
        self.store.as_ref().ok_or_else(|| {
            Error::FailedPrecondition(format!(
                "the `{}` online store keeps no records; use `embedded` or `redis`",
                self.backend
            ))
        })
    }
}

fn now_ns() -> i64 {
    quiver_online::now_ns()
}

/// A request id when the caller gave none: time and a process-wide counter, unique per process
/// and sortable.
pub fn new_request_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    static PROCESS: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    let process = *PROCESS.get_or_init(|| std::process::id() ^ (now_ns() as u32).rotate_left(16));
    format!(
        "{:x}-{process:08x}-{:x}",
        now_ns(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// The log record of one served answer. Features in columns: `features` (names), and per
/// feature `values`, `statuses` and `event_timestamps` (ns), each with one entry per row.
fn served_record(
    id: String,
    service: String,
    now: i64,
    entities: &[(String, Vec<quiver_core::KeyValue>)],
    response: &crate::OnlineResponse,
) -> Envelope {
    let mut record = Map::new();
    record.insert("request_id".into(), Json::String(id.clone()));
    record.insert("service".into(), Json::String(service));
    record.insert(
        "time".into(),
        Json::String(quiver_core::value::format_timestamp(now)),
    );
    record.insert("rows".into(), Json::from(response.rows()));
    record.insert(
        "entities".into(),
        Json::Object(
            entities
                .iter()
                .map(|(k, vs)| {
                    (
                        k.clone(),
                        Json::Array(vs.iter().map(|v| v.to_json()).collect()),
                    )
                })
                .collect(),
        ),
    );
    let keys = entities.len();
    let features = response.feature_names.iter().skip(keys);
    let columns = || response.columns.iter().skip(keys);
    record.insert(
        "features".into(),
        Json::Array(features.map(|n| Json::String(n.clone())).collect()),
    );
    record.insert(
        "values".into(),
        Json::Array(
            columns()
                .map(|c| Json::Array(c.values.iter().map(|v| v.to_json()).collect()))
                .collect(),
        ),
    );
    record.insert(
        "statuses".into(),
        Json::Array(
            columns()
                .map(|c| {
                    Json::Array(
                        c.statuses
                            .iter()
                            .map(|s| Json::String(s.as_str().into()))
                            .collect(),
                    )
                })
                .collect(),
        ),
    );
    record.insert(
        "event_timestamps".into(),
        Json::Array(
            columns()
                .map(|c| Json::Array(c.event_timestamps.iter().map(|t| Json::from(*t)).collect()))
                .collect(),
        ),
    );
    record.insert(
        "layers".into(),
        Json::Array(
            response
                .layers
                .iter()
                .map(|row| {
                    Json::Array(
                        row.iter()
                            .map(|l| Json::String(l.as_str().into()))
                            .collect(),
                    )
                })
                .collect(),
        ),
    );
    Envelope {
        id,
        accepted_at: now,
        time: now,
        record,
    }
}

/// `k1=v1,k2=v2` over the entity's keys in name order: the alias of the latest prediction.
/// A JSON number and the same digits as text give the same key (query strings are text).
pub fn entity_alias(entity: &Map<String, Json>) -> Result<String> {
    if entity.is_empty() {
        return Err(Error::InvalidRequest(
            "field `entity` must name at least one join key, e.g. {\"user_id\": 42}".into(),
        ));
    }
    let mut parts: Vec<(String, String)> = Vec::with_capacity(entity.len());
    for (k, v) in entity {
        let text = match v {
            Json::String(s) => s.clone(),
            Json::Number(n) if n.is_i64() || n.is_u64() => n.to_string(),
            other => {
                return Err(Error::InvalidRequest(format!(
                    "field `entity.{k}`: a join key is a string or an integer, not {other}"
                )));
            }
        };
        parts.push((k.clone(), text));
    }
    parts.sort();
    let escape = |s: &str| {
        s.replace('%', "%25")
            .replace(',', "%2C")
            .replace('=', "%3D")
    };
    Ok(parts
        .iter()
        .map(|(k, v)| format!("{}={}", escape(k), escape(v)))
        .collect::<Vec<_>>()
        .join(","))
}

fn latest_alias(model: &str, entity_key: &str) -> String {
    format!("latest:{model}:{entity_key}")
}

impl FeatureStore {
    /// The project's record namespaces.
    pub fn records(&self) -> &Records {
        &self.records
    }

    /// Accepts records into a namespace, all or none: every record is checked first (an error
    /// names the record's index and the field), then all are cached and queued in one call.
    /// `path_id` applies to a single record (`PUT /records/{ns}/{id}`).
    pub async fn put_records(
        &self,
        namespace: &str,
        records: Vec<(Option<String>, Json)>,
    ) -> Result<Vec<Receipt>> {
        let ns = self.records.namespace(namespace)?;
        self.records.store()?;
        if records.len() > MAX_BATCH {
            return Err(Error::InvalidRequest(format!(
                "{} records in one call; at most {MAX_BATCH}",
                records.len()
            )));
        }
        let now = now_ns();
        let many = records.len() > 1;
        let mut put = Vec::with_capacity(records.len());
        for (i, (id, record)) in records.into_iter().enumerate() {
            let envelope = ns.accept(id.as_deref(), record, now).map_err(|e| {
                Error::InvalidRequest(if many {
                    format!("namespace `{namespace}` record {i}: {e}")
                } else {
                    format!("namespace `{namespace}`: {e}")
                })
            })?;
            put.push(PutRecord {
                id: envelope.id.clone(),
                payload: envelope.to_bytes(),
                aliases: Vec::new(),
            });
        }
        self.put_checked(ns, put).await
    }

    async fn put_checked(&self, ns: &Namespace, put: Vec<PutRecord>) -> Result<Vec<Receipt>> {
        let store = self.records.store()?;
        let positions = match &self.records.spill {
            None => Some(store.put(&ns.space, &put).await?),
            Some(spill) => {
                let spaces =
                    |name: &str| self.records.namespaces.get(name).map(|n| n.space.clone());
                spill
                    .put_or_spill(store.as_ref(), &spaces, &ns.space, &put)
                    .await?
            }
        };
        Ok(match positions {
            Some(positions) => put
                .into_iter()
                .zip(positions)
                .map(|(p, position)| Receipt {
                    id: p.id,
                    position: Some(position),
                })
                .collect(),
            None => put
                .into_iter()
                .map(|p| Receipt {
                    id: p.id,
                    position: None,
                })
                .collect(),
        })
    }

    /// Replays the spill file into the record store (the server does this every second while
    /// it holds records); returns whether records remain in it. `false` without a spill file.
    pub async fn replay_spill(&self) -> Result<bool> {
        let Some(spill) = &self.records.spill else {
            return Ok(false);
        };
        let store = self.records.store()?;
        let spaces = |name: &str| self.records.namespaces.get(name).map(|n| n.space.clone());
        spill.replay(store.as_ref(), &spaces).await
    }

    /// Accepts one record under `id`.
    pub async fn put_record(&self, namespace: &str, id: &str, record: Json) -> Result<Receipt> {
        let mut r = self
            .put_records(namespace, vec![(Some(id.to_string()), record)])
            .await?;
        r.pop()
            .ok_or_else(|| Error::Internal("a record was accepted without a receipt".into()))
    }

    /// The cached record (`None`: never written, expired, or deleted).
    pub async fn get_record(&self, namespace: &str, id: &str) -> Result<Option<Envelope>> {
        let ns = self.records.namespace(namespace)?;
        let bytes = self.records.store()?.get(&ns.space, id).await?;
        bytes
            .map(|b| Envelope::from_bytes(&b).map_err(Error::Internal))
            .transpose()
    }

    /// Deletes the cached record (its queued copy is still exported); whether it existed.
    pub async fn delete_record(&self, namespace: &str, id: &str) -> Result<bool> {
        let ns = self.records.namespace(namespace)?;
        Ok(self.records.store()?.delete(&ns.space, id).await?)
    }

    /// Accepts a prediction: `{model, model_version, entity: {user_id: 42}, request_id,
    /// prediction, decision, features}` (`request_id` generated when absent). Also cached as
    /// the latest prediction of that model for that entity.
    pub async fn put_prediction(&self, prediction: Json) -> Result<Receipt> {
        let ns = self.records.namespace(PREDICTIONS)?;
        let Json::Object(mut p) = prediction else {
            return Err(Error::InvalidRequest(
                "a prediction must be a JSON object".into(),
            ));
        };
        let model = match p.get("model") {
            Some(Json::String(m)) if !m.is_empty() => m.clone(),
            _ => {
                return Err(Error::InvalidRequest(
                    "field `model` is required (a non-empty string)".into(),
                ));
            }
        };
        let entity_key = match p.get("entity") {
            Some(Json::Object(e)) => entity_alias(e)?,
            _ => {
                return Err(Error::InvalidRequest(
                    "field `entity` is required: the join keys, e.g. {\"user_id\": 42}".into(),
                ));
            }
        };
        if !p.contains_key("prediction") {
            return Err(Error::InvalidRequest(
                "field `prediction` is required".into(),
            ));
        }
        if p.get("request_id").is_none_or(Json::is_null) {
            p.insert("request_id".into(), Json::String(new_request_id()));
        }
        p.insert("entity_key".into(), Json::String(entity_key.clone()));
        let envelope = ns
            .accept(None, Json::Object(p), now_ns())
            .map_err(|e| Error::InvalidRequest(format!("prediction: {e}")))?;
        let put = PutRecord {
            id: envelope.id.clone(),
            payload: envelope.to_bytes(),
            aliases: vec![latest_alias(&model, &entity_key)],
        };
        let mut r = self.put_checked(ns, vec![put]).await?;
        r.pop()
            .ok_or_else(|| Error::Internal("a prediction was accepted without a receipt".into()))
    }

    /// The latest prediction of `model` for an entity (`{"user_id": 42}`).
    pub async fn latest_prediction(
        &self,
        model: &str,
        entity: &Map<String, Json>,
    ) -> Result<Option<Envelope>> {
        let alias = latest_alias(model, &entity_alias(entity)?);
        self.get_record(PREDICTIONS, &alias).await
    }

    /// Each namespace's queue.
    pub async fn queue_stats(&self) -> Result<Vec<(String, QueueStats)>> {
        let store = self.records.store()?;
        let mut out = Vec::new();
        for ns in self.records.namespaces() {
            out.push((ns.name.clone(), store.stats(&ns.space).await?));
        }
        Ok(out)
    }

    /// The first `limit` dead letters of a namespace.
    pub async fn dead_letters(
        &self,
        namespace: &str,
        limit: usize,
    ) -> Result<Vec<quiver_online::records::DeadLetter>> {
        let ns = self.records.namespace(namespace)?;
        Ok(self.records.store()?.dead_letters(&ns.space, limit).await?)
    }

    /// Queues a namespace's dead letters again; how many.
    pub async fn replay_dead_letters(&self, namespace: &str) -> Result<u64> {
        let ns = self.records.namespace(namespace)?;
        Ok(self.records.store()?.replay_dead_letters(&ns.space).await?)
    }
}
