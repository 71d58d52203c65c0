//! The feature server in the test process, on an ephemeral loopback port.

use std::net::SocketAddr;

use quiver::FeatureStore;
use quiver_server::ServeOptions;

/// A running server; it shuts down when this is dropped.
pub struct Running {
    pub addr: SocketAddr,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

/// Serves `store` on 127.0.0.1 with a free port; returns once the port is bound.
pub async fn spawn(store: FeatureStore, options: ServeOptions) -> Running {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let (addr_tx, addr_rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        quiver_server::serve_with(
            store,
            "127.0.0.1:0".parse().unwrap(),
            options,
            move |a| {
                let _ = addr_tx.send(a);
            },
            async {
                let _ = rx.await;
            },
        )
        .await
        .unwrap();
    });
    Running {
        addr: addr_rx.await.unwrap(),
        _shutdown: tx,
    }
}
