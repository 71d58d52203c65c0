//! Where the registry is kept: a JSON file (the default) or PostgreSQL, behind one interface.
//!
//! Every write is a compare-and-swap on the registry serial or a read-modify-write, both under
//! a lock: a lock file beside the JSON file (`registry.json.lock`, an OS file lock), or a
//! PostgreSQL transaction holding an advisory lock per project. So two processes (or machines)
//! applying at once are serialized, and the one whose plan was made against an older serial
//! gets [`Error::Conflict`] ("registry changed since you planned") instead of overwriting the
//! other's apply. Runs and watermarks, which every materialization records, are read-modify-
//! writes under the same lock, so none is lost to a concurrent writer.
//!
//! In PostgreSQL the registry is the table `quiver_registry` (one row per project: serial, a
//! revision that every write bumps, the document as `jsonb`), and every apply is also a row of
//! `quiver_registry_applies` (serial, time, user, host, definitions hash, changes), so the
//! audit trail can be queried with SQL. Servers notice a new revision by polling it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::config::{Project, RegistryConfig};
use crate::error::{Error, Result};
use crate::file_lock::FileLock;
use crate::registry::Registry;

/// How long opening a PostgreSQL connection may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The registry's storage.
#[derive(Debug)]
pub enum RegistryStore {
    File(PathBuf),
    Postgres(Box<PostgresRegistry>),
}

/// The registry as tables in PostgreSQL.
pub struct PostgresRegistry {
    config: tokio_postgres::Config,
    /// The URL with its password hidden, for messages.
    target: String,
    project: String,
}

impl std::fmt::Debug for PostgresRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresRegistry")
            .field("target", &self.target)
            .field("project", &self.project)
            .finish()
    }
}

fn conflict(expected: u64, found: u64) -> Error {
    Error::Conflict(format!(
        "registry changed since you planned: it was at serial {expected} and is now at serial {found} (another apply or rollback ran meanwhile); run `quiver plan` again and apply what it shows"
    ))
}

impl RegistryStore {
    /// Opens the configured registry storage; for PostgreSQL, checks the server answers and
    /// creates the tables if missing.
    pub async fn open(project: &Project) -> Result<RegistryStore> {
        match &project.config.registry {
            RegistryConfig::File { path } => Ok(RegistryStore::File(project.resolve(path))),
            RegistryConfig::Postgres { url } => {
                let registry = PostgresRegistry::new(url, &project.config.project)?;
                registry.create_tables().await?;
                Ok(RegistryStore::Postgres(Box::new(registry)))
            }
        }
    }

    /// What it is, for messages (no secrets).
    pub fn describe(&self) -> String {
        match self {
            RegistryStore::File(path) => format!("registry file `{}`", path.display()),
            RegistryStore::Postgres(pg) => {
                format!(
                    "PostgreSQL registry {} (project `{}`)",
                    pg.target, pg.project
                )
            }
        }
    }

    /// The registry; `None` before the first apply.
    pub async fn load(&self) -> Result<Option<Registry>> {
        match self {
            RegistryStore::File(path) => {
                let path = path.clone();
                blocking(move || Registry::load(&path)).await
            }
            RegistryStore::Postgres(pg) => pg.load().await,
        }
    }

    /// A marker that changes on every write (file: modification time and length; PostgreSQL:
    /// the revision); `None` before the first apply. What servers poll to reload.
    pub async fn stamp(&self) -> Result<Option<String>> {
        match self {
            RegistryStore::File(path) => match std::fs::metadata(path) {
                Ok(m) => {
                    let modified = m
                        .modified()
                        .ok()
                        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                        .map_or(0, |d| d.as_nanos());
                    Ok(Some(format!("{modified}:{}", m.len())))
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(Error::io(path, e)),
            },
            RegistryStore::Postgres(pg) => pg.revision().await.map(|r| r.map(|r| r.to_string())),
        }
    }

    /// Writes `next` if the stored registry is still at serial `expected` (0: none yet), else
    /// [`Error::Conflict`]. Applies and rollbacks write through this.
    pub async fn commit(&self, expected: u64, next: &Registry) -> Result<()> {
        match self {
            RegistryStore::File(path) => {
                let (path, next) = (path.clone(), next.clone());
                blocking(move || {
                    let _lock = lock_of(&path)?;
                    let found = Registry::load(&path)?.map_or(0, |r| r.serial);
                    if found != expected {
                        return Err(conflict(expected, found));
                    }
                    next.save(&path)
                })
                .await
            }
            RegistryStore::Postgres(pg) => pg.commit(expected, next).await,
        }
    }

    /// Loads, changes and saves the registry under the lock (runs, watermarks: records that do
    /// not change the definitions, so the serial stays). `Ok(None)`: there is no registry.
    pub async fn update(
        &self,
        change: impl FnOnce(&mut Registry) + Send + 'static,
    ) -> Result<Option<Registry>> {
        match self {
            RegistryStore::File(path) => {
                let path = path.clone();
                blocking(move || {
                    let _lock = lock_of(&path)?;
                    let Some(mut registry) = Registry::load(&path)? else {
                        return Ok(None);
                    };
                    change(&mut registry);
                    registry.save(&path)?;
                    Ok(Some(registry))
                })
                .await
            }
            RegistryStore::Postgres(pg) => pg.update(change).await,
        }
    }
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| Error::Internal(format!("registry task failed: {e}")))?
}

fn lock_of(registry: &Path) -> Result<FileLock> {
    FileLock::acquire(&registry.with_extension("json.lock"))
}

const CREATE_TABLES: &str = "
CREATE TABLE IF NOT EXISTS quiver_registry (
    project text PRIMARY KEY,
    serial bigint NOT NULL,
    revision bigint NOT NULL,
    document jsonb NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS quiver_registry_applies (
    project text NOT NULL,
    serial bigint NOT NULL,
    applied_at text NOT NULL,
    user_name text,
    host text,
    definitions_hash text,
    changes jsonb NOT NULL,
    PRIMARY KEY (project, serial)
);";

impl PostgresRegistry {
    fn new(url: &str, project: &str) -> Result<PostgresRegistry> {
        let target = crate::config::RegistryConfig::Postgres {
            url: url.to_string(),
        }
        .describe();
        let url = match url.strip_prefix("env:") {
            Some(var) => std::env::var(var).map_err(|_| {
                Error::Config(format!(
                    "field `registry.url`: environment variable `{var}` is not set"
                ))
            })?,
            None => url.to_string(),
        };
        // The parse error does not echo the URL.
        let mut config: tokio_postgres::Config = url
            .parse()
            .map_err(|e| Error::Config(format!("field `registry.url`: {target}: {e}")))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        Ok(PostgresRegistry {
            config,
            target,
            project: project.to_string(),
        })
    }

    fn unavailable(&self, doing: &str, e: tokio_postgres::Error) -> Error {
        Error::Unavailable(format!("{} {doing}: {e}", self.describe()))
    }

    fn describe(&self) -> String {
        format!("registry {}", self.target)
    }

    /// The advisory lock of this project's registry.
    fn lock_key(&self) -> i64 {
        xxhash_rust::xxh3::xxh3_64(format!("quiver-registry:{}", self.project).as_bytes()) as i64
    }

    /// A connection per call: registry calls are rare (applies, runs, a server's poll every
    /// few seconds), and a fresh connection never finds a server restart behind it.
    async fn connect(&self) -> Result<tokio_postgres::Client> {
        let (client, connection) = self
            .config
            .connect(tokio_postgres::NoTls)
            .await
            .map_err(|e| self.unavailable("cannot connect", e))?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "registry connection ended");
            }
        });
        Ok(client)
    }

    /// A transaction holding this project's advisory lock (released at commit or rollback).
    async fn locked<'c>(
        &self,
        client: &'c mut tokio_postgres::Client,
    ) -> Result<tokio_postgres::Transaction<'c>> {
        let tx = client
            .transaction()
            .await
            .map_err(|e| self.unavailable("cannot begin", e))?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&self.lock_key()])
            .await
            .map_err(|e| self.unavailable("cannot lock", e))?;
        Ok(tx)
    }

    async fn create_tables(&self) -> Result<()> {
        let mut client = self.connect().await?;
        // Concurrent `CREATE TABLE IF NOT EXISTS` can still collide: serialize them.
        let tx = self.locked(&mut client).await?;
        tx.batch_execute(CREATE_TABLES)
            .await
            .map_err(|e| self.unavailable("cannot create its tables", e))?;
        tx.commit()
            .await
            .map_err(|e| self.unavailable("cannot create its tables", e))
    }

    fn decode(&self, text: &str) -> Result<Registry> {
        serde_json::from_str(text).map_err(|e| {
            Error::Config(format!(
                "{} holds an unreadable registry for project `{}`: {e}",
                self.describe(),
                self.project
            ))
        })
    }

    async fn load(&self) -> Result<Option<Registry>> {
        let client = self.connect().await?;
        let row = client
            .query_opt(
                "SELECT document::text FROM quiver_registry WHERE project = $1",
                &[&self.project],
            )
            .await
            .map_err(|e| self.unavailable("cannot be read", e))?;
        row.map(|r| self.decode(r.get::<_, &str>(0))).transpose()
    }

    async fn revision(&self) -> Result<Option<i64>> {
        let client = self.connect().await?;
        let row = client
            .query_opt(
                "SELECT revision FROM quiver_registry WHERE project = $1",
                &[&self.project],
            )
            .await
            .map_err(|e| self.unavailable("cannot be read", e))?;
        Ok(row.map(|r| r.get(0)))
    }

    /// Writes `registry` as this project's row (inserted, or its revision bumped).
    async fn write(&self, tx: &tokio_postgres::Transaction<'_>, registry: &Registry) -> Result<()> {
        let document = serde_json::to_string(registry)
            .map_err(|e| Error::Internal(format!("cannot serialize the registry: {e}")))?;
        tx.execute(
            "INSERT INTO quiver_registry (project, serial, revision, document, updated_at)
             VALUES ($1, $2, 1, CAST($3::text AS jsonb), now())
             ON CONFLICT (project) DO UPDATE SET serial = EXCLUDED.serial,
                 revision = quiver_registry.revision + 1, document = EXCLUDED.document,
                 updated_at = now()",
            &[&self.project, &(registry.serial as i64), &document],
        )
        .await
        .map_err(|e| self.unavailable("cannot be written", e))?;
        Ok(())
    }

    async fn commit(&self, expected: u64, next: &Registry) -> Result<()> {
        let mut client = self.connect().await?;
        let tx = self.locked(&mut client).await?;
        let found = tx
            .query_opt(
                "SELECT serial FROM quiver_registry WHERE project = $1",
                &[&self.project],
            )
            .await
            .map_err(|e| self.unavailable("cannot be read", e))?
            .map_or(0, |r| r.get::<_, i64>(0) as u64);
        if found != expected {
            return Err(conflict(expected, found));
        }
        self.write(&tx, next).await?;
        for record in next.history.iter().filter(|r| r.serial > expected) {
            let changes = serde_json::to_string(&record.changes)
                .map_err(|e| Error::Internal(format!("cannot serialize changes: {e}")))?;
            tx.execute(
                "INSERT INTO quiver_registry_applies
                     (project, serial, applied_at, user_name, host, definitions_hash, changes)
                 VALUES ($1, $2, $3, $4, $5, $6, CAST($7::text AS jsonb))
                 ON CONFLICT (project, serial) DO NOTHING",
                &[
                    &self.project,
                    &(record.serial as i64),
                    &record.at,
                    &record.user,
                    &record.host,
                    &record.definitions_hash,
                    &changes,
                ],
            )
            .await
            .map_err(|e| self.unavailable("cannot record the apply", e))?;
        }
        tx.commit()
            .await
            .map_err(|e| self.unavailable("cannot commit", e))
    }

    async fn update(
        &self,
        change: impl FnOnce(&mut Registry) + Send + 'static,
    ) -> Result<Option<Registry>> {
        let mut client = self.connect().await?;
        let tx = self.locked(&mut client).await?;
        let row = tx
            .query_opt(
                "SELECT document::text FROM quiver_registry WHERE project = $1",
                &[&self.project],
            )
            .await
            .map_err(|e| self.unavailable("cannot be read", e))?;
        let Some(row) = row else {
            return Ok(None);
        };
        let mut registry = self.decode(row.get::<_, &str>(0))?;
        change(&mut registry);
        self.write(&tx, &registry).await?;
        tx.commit()
            .await
            .map_err(|e| self.unavailable("cannot commit", e))?;
        Ok(Some(registry))
    }
}
