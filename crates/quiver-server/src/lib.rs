//! Quiver's HTTP feature server.
//!
//! Routes (Feast-compatible where Feast has them; default port 6566, Feast's):
//! - `POST /get-online-features`: features for entity rows ([`routes::feast`]).
//! - `POST /write-to-online-store`: write rows to the online store.
//! - `POST /push`: rows of a push source, to the online store of its views, its batch source,
//!   or both (Feast's shape).
//! - `POST /materialize`: materialize views from their sources (the way to materialize into
//!   the embedded store while the server holds its file).
//! - Records and predictions ([`routes::records`]): `PUT|GET|DELETE /records/{ns}/{id}`,
//!   `POST /records/{ns}`, `POST /predictions`, `GET /predictions/{model}`, `POST /export`.
//! - Operations ([`routes::ops`]): `GET /livez` (the process answers), `GET /readyz` (registry
//!   loaded, warm-up done, the online store or a fallback answering; `/ready` is the same),
//!   `GET /health` (components and `healthy | degraded | unhealthy`), `GET /stats` (per view
//!   and layer), `GET /metrics`, `POST /invalidate`, `POST /prune-online`.
//! - Every request gets an id (`x-request-id`, echoed; the client's when it sends one) carried
//!   by its log lines.
//!
//! The server watches the registry file and swaps in the new definitions after a
//! `quiver apply`, without a restart and without dropping requests.
//!
//! Layout: [`error`] maps library errors to statuses in one place; [`metrics`] holds the
//! Prometheus recorder and the request middleware.

pub mod access;
pub mod error;
pub mod feast_json;
pub mod metrics;
pub mod routes;
pub mod tls;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use metrics_exporter_prometheus::PrometheusHandle;
use quiver::FeatureStore;
use tokio::net::TcpListener;

/// How often the registry is checked for changes.
const REGISTRY_POLL: Duration = Duration::from_secs(2);
/// How often buffered histogram samples are drained into their buckets.
const METRICS_UPKEEP: Duration = Duration::from_secs(5);

/// Shared state of the server's handlers.
pub struct AppState {
    /// The current store; replaced wholesale when the registry changes.
    pub store: ArcSwap<FeatureStore>,
    pub max_entities: usize,
    pub max_body_bytes: usize,
    /// No request runs longer (`server.request_timeout`).
    pub request_timeout: Duration,
    /// True while `serve --warm` loads the online store; `/ready` answers 503 meanwhile.
    pub warming: std::sync::atomic::AtomicBool,
    pub metrics: PrometheusHandle,
    /// The online records per view version, counted every `server.key_count_interval`.
    pub online_sizes: std::sync::Mutex<Option<Vec<quiver::online_admin::OnlineVersion>>>,
    /// Tokens, scopes and limits (`server.auth`, `server.max_concurrent_requests`).
    pub access: Arc<access::Access>,
}

impl AppState {
    /// The state of a server for `store`; the error names a misconfigured `server.auth` or
    /// limit.
    pub fn new(store: FeatureStore) -> Result<Arc<AppState>, String> {
        let server = store.project().config.server.clone();
        let access = Arc::new(access::Access::from_config(&server)?);
        Ok(Arc::new(AppState {
            store: ArcSwap::from_pointee(store),
            max_entities: server.max_entities,
            max_body_bytes: server.max_body_bytes,
            request_timeout: server.request_timeout,
            warming: std::sync::atomic::AtomicBool::new(false),
            metrics: metrics::handle(),
            online_sizes: std::sync::Mutex::new(None),
            access,
        }))
    }

    /// Reloads the registry if it changed since `seen` (its [`stamp`]: a file's modification
    /// time, a PostgreSQL registry's revision); returns the stamp now.
    ///
    /// [`stamp`]: quiver::registry_store::RegistryStore::stamp
    pub async fn reload_if_changed(&self, seen: Option<String>) -> Option<String> {
        let current = self.store.load_full();
        let stamp = match current.registry_store().stamp().await {
            Ok(stamp) => stamp,
            Err(e) => {
                tracing::warn!(error = %e, "cannot check the registry for changes");
                return seen;
            }
        };
        if stamp == seen {
            return seen;
        }
        match current.reloaded().await {
            Ok(store) => {
                let serial = store.registry().map(|r| r.serial).ok();
                tracing::info!(?serial, "registry reloaded");
                self.store.store(Arc::new(store));
                stamp
            }
            Err(e) => {
                // Keep serving the definitions we have; try again on the next change.
                tracing::warn!(error = %e, "registry changed but cannot be loaded");
                stamp
            }
        }
    }
}

/// Builds the router over shared state.
pub fn router(state: Arc<AppState>) -> Router {
    // Reads are bounded by `server.request_timeout`; writes and `/materialize` run to the end
    // (cutting a write short would leave it applied in part without saying how far).
    let bounded = Router::new()
        .route(
            "/get-online-features",
            post(routes::feast::get_online_features),
        )
        .route("/health", get(routes::ops::health))
        .route("/livez", get(routes::ops::livez))
        .route("/readyz", get(routes::ops::readyz))
        .route("/ready", get(routes::ops::readyz))
        .route("/stats", get(routes::ops::stats))
        .route("/lineage", get(routes::ops::lineage))
        .route(
            "/predictions/{model}",
            get(routes::records::latest_prediction),
        )
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            bounded_by_request_timeout,
        ));
    Router::new()
        .merge(bounded)
        .route(
            "/write-to-online-store",
            post(routes::feast::write_to_online_store),
        )
        .route("/push", post(routes::feast::push))
        .route("/materialize", post(routes::ops::materialize))
        .route("/invalidate", post(routes::ops::invalidate))
        .route("/prune-online", post(routes::ops::prune_online))
        .route(
            "/records/{namespace}/{id}",
            get(routes::records::get_record)
                .put(routes::records::put_record)
                .delete(routes::records::delete_record),
        )
        .route("/records/{namespace}", post(routes::records::put_records))
        .route("/predictions", post(routes::records::put_prediction))
        .route("/export", post(routes::records::export))
        .route("/export/queue", get(routes::records::queue))
        .route(
            "/export/dead-letters/{namespace}",
            get(routes::records::dead_letters),
        )
        .route(
            "/export/dead-letters/{namespace}/replay",
            post(routes::records::replay),
        )
        .route("/metrics", get(routes::ops::metrics))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            state.access.clone(),
            access::guard,
        ))
        .layer(axum::middleware::from_fn(metrics::track))
        .layer(axum::middleware::from_fn(request_id))
        .layer(DefaultBodyLimit::max(state.max_body_bytes))
        .with_state(state)
}

/// Answers a JSON 503 when the request runs past `server.request_timeout`.
async fn bounded_by_request_timeout(
    axum::extract::State(state): axum::extract::State<Arc<AppState>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    match tokio::time::timeout(state.request_timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => error::ApiError::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            format!(
                "the request took longer than {:?} (`server.request_timeout`); the stores did not answer in time",
                state.request_timeout
            ),
        )
        .into_response(),
    }
}

/// Gives every request an id — the client's `x-request-id` when it sends one (up to 128
/// visible ASCII characters), else a new one — logs the request inside a span carrying it, and
/// echoes it in the response's `x-request-id`.
async fn request_id(
    mut request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use tracing::Instrument as _;
    const HEADER: &str = "x-request-id";
    let id = request
        .headers()
        .get(HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_string)
        .unwrap_or_else(quiver::records::new_request_id);
    let value = axum::http::HeaderValue::from_str(&id).ok();
    if let Some(v) = &value {
        request.headers_mut().insert(HEADER, v.clone());
    }
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let span = tracing::info_span!("request", request_id = %id, %method, %path);
    let started = std::time::Instant::now();
    let mut response = next.run(request).instrument(span.clone()).await;
    span.in_scope(|| {
        tracing::info!(
            status = response.status().as_u16(),
            ms = started.elapsed().as_secs_f64() * 1e3,
            "request"
        )
    });
    if let Some(v) = value {
        response.headers_mut().insert(HEADER, v);
    }
    response
}

/// Unknown routes answer in the JSON error shape like every other error.
async fn not_found(uri: axum::http::Uri) -> error::ApiError {
    error::ApiError::new(
        axum::http::StatusCode::NOT_FOUND,
        "not_found",
        format!(
            "no route `{}`; routes: POST /get-online-features, POST /write-to-online-store, POST /push, \
             POST /materialize, PUT|GET|DELETE /records/{{ns}}/{{id}}, POST /records/{{ns}}, \
             POST /predictions, GET /predictions/{{model}}, POST /export, GET /export/queue, \
             POST /invalidate, POST /prune-online, GET /stats, GET /livez, GET /readyz, \
             GET /health, GET /metrics",
            uri.path()
        ),
    )
}

async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> error::ApiError {
    error::ApiError::new(
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("`{}` does not accept {method}", uri.path()),
    )
}

/// Binds `addr` and serves until `shutdown` resolves. `on_bound` receives the bound address
/// first (useful with port 0).
pub async fn serve(
    store: FeatureStore,
    addr: SocketAddr,
    on_bound: impl FnOnce(SocketAddr),
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(store, addr, ServeOptions::default(), on_bound, shutdown).await
}

/// How to serve beyond the address.
#[derive(Clone, Debug, Default)]
pub struct ServeOptions {
    /// Warm the online store from the offline layer in the background at start; `/ready`
    /// answers 503 "warming" until it is done (liveness, `/health`, is unaffected).
    pub warm: Option<quiver::WarmOptions>,
}

/// [`serve`] with options.
pub async fn serve_with(
    store: FeatureStore,
    addr: SocketAddr,
    options: ServeOptions,
    on_bound: impl FnOnce(SocketAddr),
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // TLS settings are checked before the port is bound: a bad certificate stops the start.
    let acceptor = match &store.project().config.server.tls {
        Some(config) => Some(tls::acceptor(config, &store.project().dir)?),
        None => None,
    };
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let state = AppState::new(store)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    if let Some(warm) = options.warm {
        state
            .warming
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let state = state.clone();
        tokio::spawn(async move {
            let store = state.store.load_full();
            match store.warm(&warm).await {
                Ok(reports) => {
                    for r in reports {
                        tracing::info!(view = %r.view, entities = r.entities, written = r.written, "warmed");
                    }
                }
                Err(e) => tracing::error!(error = %e, "warm-up failed; serving without it"),
            }
            state
                .warming
                .store(false, std::sync::atomic::Ordering::SeqCst);
        });
    }
    let watcher = {
        let state = state.clone();
        let first = state.store.load_full();
        let mut seen = first.registry_store().stamp().await.ok().flatten();
        drop(first);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(REGISTRY_POLL);
            loop {
                tick.tick().await;
                seen = state.reload_if_changed(seen).await;
            }
        })
    };
    // The recorder keeps every histogram sample until it is drained; without a scrape of
    // /metrics that grew the server by ~1 MiB a minute under load (10-minute soak). Upkeep
    // drains them into the buckets.
    // Upkeep also keeps the serving statistics' last-minute snapshots.
    let upkeep = {
        let state = state.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(METRICS_UPKEEP);
            loop {
                tick.tick().await;
                state.metrics.run_upkeep();
                state.store.load().stats().tick();
            }
        })
    };
    let key_counts = key_counter(state.clone());
    let exporter = export_schedule(state.clone());
    let spill = spill_replayer(state.clone());
    on_bound(bound);
    let result = match acceptor {
        Some(acceptor) => {
            tracing::info!(addr = %bound, tls = true, "feature server listening");
            tls::serve(listener, router(state.clone()), acceptor, shutdown).await
        }
        None => {
            tracing::info!(addr = %bound, "feature server listening");
            axum::serve(listener, router(state.clone()))
                .with_graceful_shutdown(shutdown)
                .await
        }
    };
    watcher.abort();
    upkeep.abort();
    if let Some(k) = key_counts {
        k.abort();
    }
    if let Some(e) = exporter {
        e.abort();
    }
    if let Some(s) = spill {
        s.abort();
    }
    // Write what the served-feature log still buffers (bounded: the store may be down).
    let current = state.store.load_full();
    if let Some(log) = current.records().served_log() {
        let _ = tokio::time::timeout(Duration::from_secs(2), log.flush()).await;
    }
    result
}

/// When the next scheduled export is due: every `every` from `at` (UTC minutes after
/// midnight), or from now.
pub fn next_export(
    now: chrono::DateTime<chrono::Utc>,
    every: Duration,
    at: Option<u32>,
) -> Duration {
    let Some(at) = at else {
        return every;
    };
    let every_s = every.as_secs().max(1) as i64;
    let midnight = now
        .date_naive()
        .and_hms_opt(0, 0, 0)
        .map(|m| m.and_utc().timestamp());
    let anchor = midnight.unwrap_or(now.timestamp()) + i64::from(at) * 60;
    let elapsed = now.timestamp() - anchor;
    let wait = elapsed.rem_euclid(every_s);
    let wait = if wait == 0 { 0 } else { every_s - wait };
    Duration::from_secs(wait as u64)
}

/// Counts the online records of each view version every `server.key_count_interval` (for
/// `quiver_view_online_keys`); off when the interval is zero or the store cannot count.
fn key_counter(state: Arc<AppState>) -> Option<tokio::task::JoinHandle<()>> {
    let every = state
        .store
        .load()
        .project()
        .config
        .server
        .key_count_interval;
    if every.is_zero() {
        return None;
    }
    Some(tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            let store = state.store.load_full();
            match store.online_versions().await {
                Ok(sizes) => {
                    *state.online_sizes.lock().unwrap_or_else(|p| p.into_inner()) = Some(sizes)
                }
                Err(quiver::Error::Online(quiver::online_store::OnlineError::Unsupported(_))) => {
                    return;
                }
                Err(e) => tracing::debug!(error = %e, "counting online records failed"),
            }
        }
    }))
}

/// Replays the records spill file every second while it holds records (`records.spill`).
fn spill_replayer(state: Arc<AppState>) -> Option<tokio::task::JoinHandle<()>> {
    state.store.load().project().config.records.spill.as_ref()?;
    Some(tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            let store = state.store.load_full();
            if let Err(e) = store.replay_spill().await {
                tracing::error!(error = %e, "replaying the records spill file failed");
            }
        }
    }))
}

/// Runs `quiver export` inside the server on `records.export.every` (from `at`), if set.
fn export_schedule(state: Arc<AppState>) -> Option<tokio::task::JoinHandle<()>> {
    let config = state.store.load().project().config.records.export.clone();
    let every = config.every?;
    let at = config.at_minutes().ok().flatten();
    Some(tokio::spawn(async move {
        loop {
            let wait = next_export(chrono::Utc::now(), every, at);
            tracing::info!(in_seconds = wait.as_secs(), "next scheduled export");
            tokio::time::sleep(wait.max(Duration::from_secs(1))).await;
            let store = state.store.load_full();
            match store.export(&quiver::ExportOptions::default()).await {
                Ok(report) => {
                    metrics::record_export(&report);
                    for n in &report.namespaces {
                        match &n.error {
                            None => {
                                tracing::info!(namespace = %n.namespace, exported = n.exported, remaining = n.remaining, "scheduled export")
                            }
                            Some(e) => {
                                tracing::error!(namespace = %n.namespace, exported = n.exported, error = %e, "scheduled export stopped early")
                            }
                        }
                    }
                }
                Err(e) => tracing::error!(error = %e, "scheduled export failed"),
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> chrono::DateTime<chrono::Utc> {
        chrono::DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&chrono::Utc)
    }

    #[test]
    fn scheduled_exports_run_at_the_configured_time_of_day() {
        let day = Duration::from_secs(86_400);
        // Daily at 02:00 UTC: from 01:00 the next run is in an hour; from 03:00, in 23 hours.
        assert_eq!(
            next_export(at("2026-12-05T01:00:00Z"), day, Some(120)),
            Duration::from_secs(3600)
        );
        assert_eq!(
            next_export(at("2026-12-05T03:00:00Z"), day, Some(120)),
            Duration::from_secs(23 * 3600)
        );
        // Every 6 h from 02:00: 08:00, 14:00, ...
        assert_eq!(
            next_export(at("2026-12-05T09:30:00Z"), day / 4, Some(120)),
            Duration::from_secs(4 * 3600 + 1800)
        );
        // No time of day: one period from now.
        assert_eq!(next_export(at("2026-12-05T09:30:00Z"), day, None), day);
    }
}
