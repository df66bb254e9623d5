use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use tokio_util::sync::CancellationToken;

use super::GlobalArgs;
use crate::Site;
use crate::config::Config;

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on (overrides [server] listen; default 127.0.0.1:8080).
    #[arg(long)]
    pub listen: Option<SocketAddr>,
}

pub async fn run(global: &GlobalArgs, config: Config, args: ServeArgs) -> anyhow::Result<()> {
    let listen = args.listen.unwrap_or(config.server.listen);
    let grace = Duration::from_secs(config.server.shutdown_grace_secs);
    let site = Site::open(config, global.data_dir()).await?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}\n  hint: is another server using it? pass --listen ADDR to pick another"))?;
    let local = listener.local_addr()?;
    let stop = CancellationToken::new();
    let background = site.start_background(stop.clone());
    let plugins = site.plugins.list();
    tracing::info!(
        address = %local,
        data = %site.data.root().display(),
        database = site.db.backend_name(),
        allocator = ?site.runtime.allocator(),
        plugins = plugins.len(),
        "UCMS is serving"
    );
    eprintln!(
        "UCMS serving on http://{local} ({} plugin(s); data in {})",
        plugins.len(),
        site.data.root().display()
    );
    let router = site.router();
    let shutdown = {
        let stop = stop.clone();
        async move {
            shutdown_signal().await;
            tracing::info!("shutting down: finishing in-flight requests");
            stop.cancel();
        }
    };
    let server = axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown);
    let server = tokio::spawn(async move { server.await });
    stop.cancelled().await;
    match tokio::time::timeout(grace, server).await {
        Ok(result) => result??,
        Err(_) => tracing::warn!(
            grace_secs = grace.as_secs(),
            "requests still running after the grace period; stopping anyway"
        ),
    }
    let _ = background.await;
    site.db.close().await;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}
