//! The shared store away: batches go to the spool (judged there from this node's
//! records alone, their bans enforced at once) and are stored in order once it is back.

use super::spool::{HoldError, Spool};
use super::{Batch, Cursor};
use crate::ingest::pipeline::Pipeline;
use crate::store::{self, StoreError};

/// Whether `error` says the store cannot be reached (rather than refusing a statement).
pub fn unreachable(pipeline: &Pipeline, error: &StoreError) -> bool {
    let lost = matches!(error, StoreError::Sql(e) if store::connection_lost(e) || matches!(e, sqlx::Error::PoolClosed));
    lost || pipeline.store.unreachable().is_some()
}

/// Keeps `batch` in the spool; its bans go to the kernel at once.
pub fn keep(spool: &Spool, pipeline: &Pipeline, batch: &Batch) -> Result<(), HoldError> {
    let now = pipeline.clock.now();
    let bans = {
        let attempts = pipeline.attempts.lock().unwrap_or_else(|p| p.into_inner());
        spool.hold(batch, |e| pipeline.counts(batch.kind, e), &attempts, now)?
    };
    for ban in &bans {
        tracing::warn!(ip = %ban.ip, until = ?ban.until, "ban decided from this PBX's own log (shared store unreachable)");
    }
    if !bans.is_empty() {
        pipeline.bans_changed.notify_one();
    }
    Ok(())
}

/// The store's cursor for `batch`'s file when it is the same file.
async fn stored_cursor(pipeline: &Pipeline, batch: &Batch) -> store::Result<Option<Cursor>> {
    let mut conn = pipeline.store.acquire().await?;
    let saved = store::sources::get(&mut conn, &batch.path).await?;
    Ok(saved.as_ref().map(Cursor::from).filter(|c| c.inode == batch.cursor.inode))
}

/// Stores the kept batches, oldest first, until one fails (tried at most once a
/// second). Returns the failures stored.
pub async fn flush(spool: &Spool, pipeline: &Pipeline) -> u64 {
    if !spool.holding() || !spool.may_try() {
        return 0;
    }
    let mut stored = 0;
    while let Some((number, batch)) = spool.oldest() {
        // A run stopped between a commit and the spool's note stored part of it already.
        let rest = match stored_cursor(pipeline, &batch).await {
            Ok(Some(c)) if c.offset >= batch.cursor.offset => None,
            Ok(Some(c)) => Some(batch.after(c.offset)),
            Ok(None) => Some(batch),
            Err(_) => return stored,
        };
        if let Some(rest) = rest {
            match pipeline.apply(&rest).await {
                Ok(applied) => {
                    stored += applied.failures;
                    for ban in &applied.bans {
                        tracing::info!(ip = %ban.ip, until = ?ban.until, reason = %ban.reason, "ban decided");
                    }
                    super::store_contacts(pipeline, &rest).await;
                    super::watch_batch(pipeline, &rest, false).await;
                }
                Err(e) => {
                    pipeline.health.failed(pipeline.clock.now(), e.to_string());
                    return stored;
                }
            }
        }
        if let Err(e) = spool.stored(number) {
            tracing::error!(path = %spool.path().display(), error = %e, "cannot note a kept batch as stored");
        }
    }
    let _ = pipeline.health.recovered();
    tracing::info!("the log records kept while the shared store was unreachable are stored");
    // The store's decisions replace the local ones in the kernel.
    pipeline.bans_changed.notify_one();
    stored
}
