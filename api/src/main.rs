//! `warp-api`: configured from the environment over an optional TOML file (see
//! README.md), serves until Ctrl-C or SIGTERM, then finishes the requests in flight and
//! publishes pending routing changes.

use std::io::IsTerminal;
use std::net::SocketAddr;
use tokio::signal::unix::{signal, SignalKind};
use tracing_subscriber::EnvFilter;
use warp_api::config::Config;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt().with_env_filter(filter);
    if std::io::stdout().is_terminal() {
        logs.init();
    } else {
        logs.json().init();
    }
    let settings = warp_config::Settings::load(&warp_config::API)?;
    let config = Config::from_settings(&settings)?;
    tracing::info!(config = %config, config_file = ?settings.file(), "warp-api starting");
    let listen = config.listen.clone();
    // SIGTERM is how systemd, Docker and Kubernetes stop a service: left at its default
    // it kills the process mid-request, with routing changes still unpublished.
    let mut term = signal(SignalKind::terminate())?;
    let state = warp_api::start(config).await?;
    let (app, _) = warp_api::routes::app(state.clone());
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    tracing::info!(addr = %listener.local_addr()?, "listening");
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        tracing::info!("stopping: finishing the requests in flight");
    })
    .await?;
    warp_api::shutdown(&state).await;
    tracing::info!("stopped");
    Ok(())
}
