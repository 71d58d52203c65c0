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
    /// Warm the online store from the offline layer in the background at start (every entity
    /// in the offline store; `--warm-top N` for the N most recent per view). `/ready` answers
    /// 503 until it is done.
    #[arg(long)]
    warm: bool,
    /// With `--warm`: only the N entities with the most recent events per view.
    #[arg(long, requires = "warm")]
    warm_top: Option<usize>,
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
    let options = quiver_server::ServeOptions {
        warm: args.warm.then(|| quiver::WarmOptions {
            views: Vec::new(),
            entities: match args.warm_top {
                Some(n) => quiver::WarmEntities::Top(n),
                None => quiver::WarmEntities::All,
            },
        }),
    };
    let scheme = if store.project().config.server.tls.is_some() {
        "https"
    } else {
        "http"
    };
    quiver_server::serve_with(
        store,
        addr,
        options,
        move |bound| say!("Quiver feature server listening on {scheme}://{bound}"),
        shutdown,
    )
    .await
    .with_context(|| format!("cannot serve on {addr}"))
}
