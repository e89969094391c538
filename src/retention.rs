//! Keeps the database from growing forever: history older than the configured
//! retention is removed a small batch per transaction, with pauses between batches
//! so ingest's transactions never wait long behind it.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::config::Retention;
use crate::domain::UnixMs;
use crate::store::{self, Store, retention::Cutoffs};

/// Rows removed per transaction.
pub const BATCH: i64 = 500;
/// The first pass waits this long after start, so a backlog import goes first.
const FIRST_PASS_AFTER: Duration = Duration::from_secs(60);
const EVERY: Duration = Duration::from_secs(3600);

pub fn cutoffs(retention: &Retention, now: UnixMs) -> Cutoffs {
    let before = |d: Option<Duration>| d.map(|d| now - d.as_millis() as UnixMs);
    Cutoffs {
        failures: before(retention.failures),
        ended_bans: before(retention.ended_bans),
        audit: before(retention.audit),
    }
}

/// One pass: batch after batch until nothing old is left or `stop`. Returns the
/// rows removed. This is the step tests drive.
pub async fn prune_once(
    store: &Store,
    retention: &Retention,
    now: UnixMs,
    pause: Duration,
    stop: &CancellationToken,
) -> store::Result<u64> {
    let cut = cutoffs(retention, now);
    let mut removed = 0;
    while !stop.is_cancelled() {
        let mut tx = store.begin().await?;
        let n = store::retention::prune_batch(&mut tx, &cut, BATCH).await?;
        tx.commit().await?;
        if n == 0 {
            break;
        }
        removed += n;
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = stop.cancelled() => {}
        }
    }
    Ok(removed)
}

pub async fn run(store: Store, retention: Retention, clock: Arc<dyn Clock>, stop: CancellationToken) {
    let mut wait = FIRST_PASS_AFTER;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.cancelled() => return,
        }
        wait = EVERY;
        match prune_once(&store, &retention, clock.now(), Duration::from_millis(20), &stop).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(rows = n, "removed history past its retention"),
            Err(e) => tracing::warn!(error = %e, "could not remove old history; will try again"),
        }
    }
}
