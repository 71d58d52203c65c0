//! The same reads as the HTTP case through the Rust library (`FeatureStore::get_online_features`):
//! the serving path without HTTP and JSON, so the difference is the cost of the HTTP layer.

use std::sync::Arc;

use quiver::core::FeatureStatus;
use quiver::{FeatureSelection, FeatureStore, OnlineRequest};

use super::{feature_refs, load_point, request_ids};
use crate::cli::Args;
use crate::load::Worker;
use crate::report::{LoadRow, ReadPath, SHAPES, Shape};
use crate::setup::ServingSetup;

pub(crate) struct LibraryWorker {
    store: Arc<FeatureStore>,
    requests: Arc<[OnlineRequest]>,
    next: usize,
}

impl LibraryWorker {
    pub(crate) fn new(
        store: Arc<FeatureStore>,
        requests: Arc<[OnlineRequest]>,
        next: usize,
    ) -> Self {
        LibraryWorker {
            store,
            requests,
            next,
        }
    }
}

impl Worker for LibraryWorker {
    async fn call(&mut self) -> anyhow::Result<()> {
        let request = &self.requests[self.next % self.requests.len()];
        self.next += 1;
        let response = self.store.get_online_features(request).await?;
        anyhow::ensure!(
            response.rows() == request.entities[0].1.len(),
            "{} rows in the response",
            response.rows()
        );
        Ok(())
    }
}

pub(crate) fn requests(shape: Shape) -> Arc<[OnlineRequest]> {
    let features = feature_refs(shape);
    request_ids(shape)
        .into_iter()
        .map(|ids| OnlineRequest {
            features: FeatureSelection::Features(features.clone()),
            entities: vec![(
                "id".into(),
                ids.into_iter().map(quiver::core::KeyValue::Int).collect(),
            )],
            full_feature_names: false,
            as_of: None,
        })
        .collect()
}

/// Fails unless `request` finds every value PRESENT (the setup wrote everything).
pub(crate) async fn ensure_present(
    store: &FeatureStore,
    request: &OnlineRequest,
    shape: Shape,
) -> anyhow::Result<()> {
    let first = store.get_online_features(request).await?;
    anyhow::ensure!(
        first
            .columns
            .iter()
            .skip(1)
            .all(|c| c.statuses.iter().all(|s| *s == FeatureStatus::Present)),
        "{shape}: not every value is PRESENT"
    );
    Ok(())
}

/// Every shape at every concurrency; tasks share one store (one Redis connection), as the server
/// does.
pub async fn run(serving: &ServingSetup, args: &Args) -> anyhow::Result<Vec<LoadRow>> {
    let store = Arc::new(serving.open_store().await?);
    let mut loads = Vec::new();
    for shape in SHAPES {
        let requests = requests(shape);
        ensure_present(&store, &requests[0], shape).await?;
        for &concurrency in &args.concurrency {
            let workers = (0..concurrency)
                .map(|i| LibraryWorker {
                    store: store.clone(),
                    requests: requests.clone(),
                    next: i * 37,
                })
                .collect();
            loads.push(load_point(ReadPath::Library, shape, workers, args).await?);
        }
    }
    Ok(loads)
}
