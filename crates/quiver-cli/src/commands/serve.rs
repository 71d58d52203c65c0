//! `quiver serve`.

use std::net::SocketAddr;
use std::path::Path;

use anyhow::Context;

#[derive(clap::Args)]
pub struct Args {
    /// Address to bind (default: `server.host` from quiver.yaml, 127.0.0.1).
    #[arg(long)]
    host: Option<String>,
    /// Port (default: `server.port`, 6566; 0 picks a free one).
    #[arg(long)]
    port: Option<u16>,
}

pub async fn run(project: &Path, args: Args) -> anyhow::Result<()> {
    let store = quiver::FeatureStore::open(project).await?;
    store.registry()?;
    let server = &store.project().config.server;
    let host = args.host.unwrap_or_else(|| server.host.clone());
    let port = args.port.unwrap_or(server.port);
    let addr: SocketAddr = format!("{host}:{port}")
        .parse()
        .with_context(|| format!("`{host}:{port}` is not an IP address and port"))?;
    // Stop accepting on Ctrl-C or SIGTERM, finish in-flight requests, then exit.
    let shutdown = async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("cannot listen for SIGTERM")?;
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        anyhow::Ok(())
    };
    let shutdown = async move {
        if let Err(e) = shutdown.await {
            tracing::error!(error = %e, "signal handling failed; stopping");
        }
    };
    quiver_server::serve(
        store,
        addr,
        |bound| println!("Quiver feature server listening on http://{bound}"),
        shutdown,
    )
    .await
    .with_context(|| format!("cannot serve on {addr}"))
}
