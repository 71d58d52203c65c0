//! Quiver's HTTP feature server.
//!
//! Routes (Feast-compatible where Feast has them; default port 6566, Feast's):
//! - `POST /get-online-features`: features for entity rows ([`routes::feast`]).
//! - `POST /write-to-online-store`: write rows to the online store.
//! - `POST /materialize`: materialize views from their sources (the way to materialize into
//!   the embedded store while the server holds its file).
//! - `GET /health` (liveness and the online store), `GET /ready` (503 while warming),
//!   `GET /metrics` ([`routes::ops`]).
//!
//! The server watches the registry file and swaps in the new definitions after a
//! `quiver apply`, without a restart and without dropping requests.
//!
//! Layout: [`error`] maps library errors to statuses in one place; [`metrics`] holds the
//! Prometheus recorder and the request middleware.

pub mod error;
pub mod feast_json;
pub mod metrics;
pub mod routes;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use metrics_exporter_prometheus::PrometheusHandle;
use quiver::FeatureStore;
use tokio::net::TcpListener;

/// How often the registry file is checked for changes.
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
}

impl AppState {
    pub fn new(store: FeatureStore) -> Arc<AppState> {
        let server = store.project().config.server.clone();
        Arc::new(AppState {
            store: ArcSwap::from_pointee(store),
            max_entities: server.max_entities,
            max_body_bytes: server.max_body_bytes,
            request_timeout: server.request_timeout,
            warming: std::sync::atomic::AtomicBool::new(false),
            metrics: metrics::handle(),
        })
    }

    /// Reloads the registry if its file changed since `seen`; returns the new modification time.
    pub fn reload_if_changed(&self, seen: Option<SystemTime>) -> Option<SystemTime> {
        let current = self.store.load();
        let modified = std::fs::metadata(current.registry_path())
            .and_then(|m| m.modified())
            .ok();
        if modified == seen {
            return seen;
        }
        let reloaded = current.reloaded();
        match reloaded {
            Ok(store) => {
                let serial = store.registry().map(|r| r.serial).ok();
                tracing::info!(?serial, "registry reloaded");
                self.store.store(Arc::new(store));
                modified
            }
            Err(e) => {
                // Keep serving the definitions we have; try again on the next change.
                tracing::warn!(error = %e, "registry changed but cannot be loaded");
                modified
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
        .route("/ready", get(routes::ops::ready))
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
        .route("/materialize", post(routes::ops::materialize))
        .route("/metrics", get(routes::ops::metrics))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn(metrics::track))
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

/// Unknown routes answer in the JSON error shape like every other error.
async fn not_found(uri: axum::http::Uri) -> error::ApiError {
    error::ApiError::new(
        axum::http::StatusCode::NOT_FOUND,
        "not_found",
        format!(
            "no route `{}`; routes: POST /get-online-features, POST /write-to-online-store, \
             POST /materialize, GET /health, GET /metrics",
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
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let state = AppState::new(store);
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
        let mut seen = std::fs::metadata(state.store.load().registry_path())
            .and_then(|m| m.modified())
            .ok();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(REGISTRY_POLL);
            loop {
                tick.tick().await;
                let s = state.clone();
                seen = tokio::task::spawn_blocking(move || s.reload_if_changed(seen))
                    .await
                    .unwrap_or(seen);
            }
        })
    };
    // The recorder keeps every histogram sample until it is drained; without a scrape of
    // /metrics that grew the server by ~1 MiB a minute under load (10-minute soak). Upkeep
    // drains them into the buckets.
    let upkeep = {
        let handle = state.metrics.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(METRICS_UPKEEP);
            loop {
                tick.tick().await;
                handle.run_upkeep();
            }
        })
    };
    on_bound(bound);
    tracing::info!(addr = %bound, "feature server listening");
    let result = axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await;
    watcher.abort();
    upkeep.abort();
    result
}
