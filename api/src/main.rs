//! `warp-api`: configured from the environment (see README.md), serves until Ctrl-C.

use std::io::IsTerminal;
use std::net::SocketAddr;
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
    let config = Config::from_env()?;
    tracing::info!(config = %config, "warp-api starting");
    let listen = config.listen.clone();
    let state = warp_api::start(config).await?;
    let (app, _) = warp_api::routes::app(state);
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    tracing::info!(addr = %listener.local_addr()?, "listening");
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    Ok(())
}
