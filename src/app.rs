//! Wiring only: open the store, start the workers, stop them cleanly.

use std::sync::Arc;

use anyhow::Context;
use tokio::sync::{Notify, watch};

use crate::asterisk::SourceKind;
use crate::clock::SystemClock;
use crate::config::Config;
use crate::ingest::{self, cleanlog::CleanLog};
use crate::policy::pipeline::Pipeline;
use crate::store::Store;

pub async fn open_store(config: &Config) -> anyhow::Result<Store> {
    std::fs::create_dir_all(&config.data_dir).with_context(|| {
        format!(
            "cannot create the data directory {} (set data_dir / SIPWARDEN_DATA_DIR / --data-dir)",
            config.data_dir.display()
        )
    })?;
    let path = config.database_path();
    Store::open(&path)
        .await
        .with_context(|| format!("cannot open the database {}", path.display()))
}

/// `sipwarden serve`: follow the logs until SIGINT/SIGTERM.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    let store = open_store(&config).await?;
    if config.sources.is_empty() {
        tracing::warn!("no Asterisk log configured or found; set logs / SIPWARDEN_LOG / --log");
    }
    let mut followers = Vec::new();
    for spec in &config.sources {
        tracing::info!(path = %spec.path.display(), kind = ?spec.kind, "following log");
        followers.push(
            ingest::follower_for(&store, spec.path.clone(), spec.kind, config.start_at).await?,
        );
    }
    let security_source_present = config
        .sources
        .iter()
        .any(|s| s.kind == Some(SourceKind::Security))
        || followers
            .iter()
            .any(|f| f.kind() == Some(SourceKind::Security));
    let pipeline = Pipeline {
        store: store.clone(),
        ladder: config.ladder.clone(),
        trusted: config.trusted.clone(),
        clock: Arc::new(SystemClock),
        security_source_present,
        clean_log: Some(CleanLog::new(config.clean_log.clone())),
        bans_changed: Arc::new(Notify::new()),
    };
    let (stop_tx, stop_rx) = watch::channel(false);
    let ingest_task = tokio::spawn(ingest::run(
        followers,
        pipeline,
        config.poll_interval,
        stop_rx,
    ));
    tracing::info!(data_dir = %config.data_dir.display(), "sipwarden running");
    shutdown_signal().await;
    tracing::info!("shutting down");
    let _ = stop_tx.send(true);
    let _ = ingest_task.await;
    store.close().await;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler installs");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
