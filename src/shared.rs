//! Several PBXes on one PostgreSQL store: each node says it is alive, and its firewall
//! is woken when another node bans or releases. The wake-up is a hint (`NOTIFY`,
//! lost while disconnected); the enforcer catches up by id after every wake-up, after
//! every reconnect and once a second, so nothing depends on a notification arriving.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::clock::{Clock, SystemClock};
use crate::store::{self, Store};

/// How often a node catches up without a notification, and says it is alive.
pub const CATCH_UP: Duration = Duration::from_secs(1);
const HEARTBEAT_EVERY: u32 = 10;

/// Lists this node in the store (at start).
pub async fn register(store: &Store) -> store::Result<()> {
    let mut conn = store.acquire().await?;
    store::nodes::register(&mut conn, env!("CARGO_PKG_VERSION"), SystemClock.now()).await
}

/// Until `stop`: on a shared store, wakes the enforcer (`poke`) on every change another
/// node stores, and at least every [`CATCH_UP`]. Nothing to do on SQLite.
pub async fn run(store: Store, poke: Arc<Notify>, stop: CancellationToken) {
    let Some(pool) = store.postgres_pool().cloned() else { return };
    let mut backoff = Duration::from_millis(500);
    loop {
        let mut listener = match sqlx::postgres::PgListener::connect_with(&pool).await {
            Ok(mut l) => match l.listen(store::changes::CHANNEL).await {
                Ok(()) => l,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot listen for other nodes' changes; catching up by polling");
                    if pause(backoff, &stop).await {
                        return;
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                    continue;
                }
            },
            Err(e) => {
                tracing::warn!(error = %e, "shared store unreachable; enforcing what the firewall holds");
                if pause(backoff, &stop).await {
                    return;
                }
                backoff = (backoff * 2).min(Duration::from_secs(30));
                continue;
            }
        };
        backoff = Duration::from_millis(500);
        // Whatever was stored while nobody listened.
        poke.notify_one();
        let mut tick = tokio::time::interval(CATCH_UP);
        let mut ticks = 0u32;
        loop {
            tokio::select! {
                n = listener.try_recv() => match n {
                    Ok(Some(_)) => poke.notify_one(),
                    // The connection was lost; the next call reconnects. Catch up.
                    Ok(None) => poke.notify_one(),
                    Err(e) => {
                        tracing::warn!(error = %e, "lost the shared store's notifications; reconnecting");
                        break;
                    }
                },
                _ = tick.tick() => {
                    poke.notify_one();
                    ticks += 1;
                    if ticks % HEARTBEAT_EVERY == 0 {
                        heartbeat(&store).await;
                    }
                }
                _ = stop.cancelled() => return,
            }
        }
    }
}

async fn heartbeat(store: &Store) {
    let beat = async {
        let mut conn = store.acquire().await?;
        store::nodes::heartbeat(&mut conn, SystemClock.now()).await
    };
    if let Err(e) = beat.await {
        tracing::debug!(error = %e, "heartbeat not stored");
    }
}

/// Waits `d` unless stopped first (then true).
async fn pause(d: Duration, stop: &CancellationToken) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => false,
        _ = stop.cancelled() => true,
    }
}
