//! Quiver's HTTP feature server.
//!
//! Routes (Feast-compatible where Feast has them; default port 6566, Feast's):
//! - `POST /get-online-features`: features for entity rows ([`routes::feast`]).
//! - `POST /write-to-online-store`: write rows to the online store.
//! - `GET /health`, `GET /metrics` ([`routes::ops`]).
//!
//! Layout: [`error`] maps library errors to statuses in one place; [`metrics`] holds the
//! Prometheus recorder and the request middleware.

pub mod error;
pub mod metrics;
pub mod routes;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use metrics_exporter_prometheus::PrometheusHandle;
use quiver::FeatureStore;
use tokio::net::TcpListener;

/// Shared state of the server's handlers.
pub struct AppState {
    pub store: FeatureStore,
    pub max_entities: usize,
    pub max_body_bytes: usize,
    pub metrics: PrometheusHandle,
}

/// Builds the router for a store, with limits from the project's `server:` block.
pub fn router(store: FeatureStore) -> Router {
    let server = store.project().config.server.clone();
    let state = Arc::new(AppState {
        store,
        max_entities: server.max_entities,
        max_body_bytes: server.max_body_bytes,
        metrics: metrics::handle(),
    });
    Router::new()
        .route(
            "/get-online-features",
            post(routes::feast::get_online_features),
        )
        .route(
            "/write-to-online-store",
            post(routes::feast::write_to_online_store),
        )
        .route("/health", get(routes::ops::health))
        .route("/metrics", get(routes::ops::metrics))
        .layer(axum::middleware::from_fn(metrics::track))
        .layer(DefaultBodyLimit::max(server.max_body_bytes))
        .with_state(state)
}

/// Binds `addr` and serves until `shutdown` resolves. Returns the bound address through
/// `on_bound` first (useful with port 0).
pub async fn serve(
    store: FeatureStore,
    addr: SocketAddr,
    on_bound: impl FnOnce(SocketAddr),
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    on_bound(bound);
    tracing::info!(addr = %bound, "feature server listening");
    axum::serve(listener, router(store))
        .with_graceful_shutdown(shutdown)
        .await
}
