//! `website-operator`: installs the Website CRD and reconciles Websites in every namespace of
//! the cluster `KUBECONFIG` (or the in-cluster config) names, until Ctrl-C or SIGTERM.

use std::time::Duration;

use anyhow::Context;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    let client = kube::Client::try_default()
        .await
        .context("no cluster to talk to (set KUBECONFIG)")?;
    website_operator::install_crd(&client, Duration::from_secs(30)).await?;
    tracing::info!("websites.example.ferry.dev is established; reconciling");
    website_operator::run(client, shutdown_signal()).await;
    Ok(())
}

/// Ctrl-C or SIGTERM, whichever comes first.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut terminate) => {
            tokio::select! {
                _ = ctrl_c => {}
                _ = terminate.recv() => {}
            }
        }
        Err(_) => {
            let _ = ctrl_c.await;
        }
    }
}
