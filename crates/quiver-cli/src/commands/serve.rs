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
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
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
