//! Page data shared by every request for a moment: a hundred open dashboards cost one
//! set of queries a second, not a hundred. Any change made through the panel clears
//! it, so an admin always sees the effect of their own click at once; what the log
//! pipeline stores shows within a second or two. Once a value is older than
//! `FRESH_FOR`, one request takes a new one while the others are still given the old
//! one, so nobody waits for it.

use std::any::Any;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::WebError;

pub const FRESH_FOR: Duration = Duration::from_secs(1);
/// Given while a new value is being taken, never older than this.
const STALE_AT_MOST: Duration = Duration::from_secs(5);

struct Entry {
    taken: Instant,
    generation: u64,
    value: Arc<dyn Any + Send + Sync>,
    /// A request is taking its successor.
    renewing: bool,
}

#[derive(Default)]
pub struct Snapshots {
    generation: AtomicU64,
    /// Held while a missing entry is computed: requests that want it meanwhile wait
    /// for that one computation instead of each running their own.
    entries: tokio::sync::Mutex<HashMap<String, Entry>>,
}

impl Snapshots {
    /// Everything taken so far is out of date (an admin changed something).
    pub fn invalidate(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
    }

    /// The value for `key` taken less than `FRESH_FOR` ago, or a new one from `take`.
    pub async fn get<T, F, Fut>(&self, key: String, take: F) -> Result<Arc<T>, WebError>
    where
        T: Send + Sync + 'static,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, WebError>>,
    {
        let mut entries = self.entries.lock().await;
        let generation = self.generation.load(Ordering::SeqCst);
        if let Some(e) = entries.get_mut(&key).filter(|e| e.generation == generation) {
            let age = e.taken.elapsed();
            let value = e.value.clone().downcast::<T>().ok();
            match value {
                Some(value) if age < FRESH_FOR || (e.renewing && age < STALE_AT_MOST) => return Ok(value),
                Some(_) if age < STALE_AT_MOST => {
                    // This request renews it, without holding up the others.
                    e.renewing = true;
                    drop(entries);
                    let taken = take().await;
                    let mut entries = self.entries.lock().await;
                    return match taken {
                        Ok(value) => Ok(Self::keep(&mut entries, key, generation, value)),
                        Err(err) => {
                            if let Some(e) = entries.get_mut(&key) {
                                e.renewing = false;
                            }
                            Err(err)
                        }
                    };
                }
                _ => {}
            }
        }
        let value = take().await?;
        Ok(Self::keep(&mut entries, key, generation, value))
    }

    fn keep<T: Send + Sync + 'static>(
        entries: &mut HashMap<String, Entry>,
        key: String,
        generation: u64,
        value: T,
    ) -> Arc<T> {
        let value = Arc::new(value);
        // Keys follow search terms: only those still of use are kept.
        entries.retain(|_, e| e.taken.elapsed() < STALE_AT_MOST);
        entries
            .insert(key, Entry { taken: Instant::now(), generation, value: value.clone(), renewing: false });
        value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_value_is_reused_until_it_is_stale_or_invalidated() {
        let snapshots = Snapshots::default();
        let calls = std::sync::atomic::AtomicU32::new(0);
        let take = || async { Ok::<_, WebError>(calls.fetch_add(1, Ordering::SeqCst)) };
        assert_eq!(*snapshots.get("a".into(), take).await.unwrap(), 0);
        assert_eq!(*snapshots.get("a".into(), take).await.unwrap(), 0, "fresh: reused");
        assert_eq!(*snapshots.get("b".into(), take).await.unwrap(), 1, "another key");
        snapshots.invalidate();
        assert_eq!(*snapshots.get("a".into(), take).await.unwrap(), 2, "invalidated: taken again");
        tokio::time::sleep(FRESH_FOR).await;
        assert_eq!(*snapshots.get("a".into(), take).await.unwrap(), 3, "stale: taken again");
    }

    #[tokio::test]
    async fn while_one_request_renews_a_stale_value_the_others_get_the_old_one() {
        let snapshots = std::sync::Arc::new(Snapshots::default());
        snapshots.get("a".into(), || async { Ok::<_, WebError>(1) }).await.unwrap();
        tokio::time::sleep(FRESH_FOR).await;
        let (started, release) =
            (std::sync::Arc::new(tokio::sync::Notify::new()), tokio::sync::oneshot::channel());
        let (release_tx, release_rx) = release;
        let renewing = tokio::spawn({
            let (snapshots, started) = (snapshots.clone(), started.clone());
            async move {
                let take = || async move {
                    started.notify_one();
                    release_rx.await.ok();
                    Ok::<_, WebError>(2)
                };
                *snapshots.get("a".into(), take).await.unwrap()
            }
        });
        started.notified().await;
        let meanwhile = snapshots.get("a".into(), || async { Ok::<_, WebError>(99) }).await.unwrap();
        assert_eq!(*meanwhile, 1, "the old value, not a second renewal");
        release_tx.send(()).unwrap();
        assert_eq!(renewing.await.unwrap(), 2);
        assert_eq!(*snapshots.get("a".into(), || async { Ok::<_, WebError>(99) }).await.unwrap(), 2);
    }
}
