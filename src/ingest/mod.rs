//! Log followers and the loop that feeds them to the pipeline.

pub mod cleanlog;
pub mod follower;
mod health;

use std::path::PathBuf;
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use tokio::sync::{mpsc, watch};

pub use follower::{Batch, Cursor, Follower, StartAt};
pub use health::{IngestHealth, IngestProblem};

use crate::asterisk::SourceKind;
use crate::policy::pipeline::Pipeline;
use crate::store;

/// Builds a follower for `path`, resuming from its stored cursor if there is one.
pub async fn follower_for(
    store: &store::Store,
    path: PathBuf,
    kind: Option<SourceKind>,
    start_at: StartAt,
) -> store::Result<Follower> {
    let mut conn = store.pool().acquire().await?;
    let saved = store::sources::get(&mut conn, &path.display().to_string()).await?;
    let cursor = saved.as_ref().map(|s| Cursor {
        inode: s.inode as u64,
        first_line_hash: s.first_line_hash.clone(),
        offset: s.read_offset as u64,
    });
    let kind = kind.or_else(|| match saved.as_ref().map(|s| s.kind.as_str()) {
        Some("security") => Some(SourceKind::Security),
        Some("messages") => Some(SourceKind::Messages),
        _ => None,
    });
    Ok(Follower::new(path, kind, cursor, start_at))
}

/// Shows how far the import of a big backlog has come: a bar on a terminal, and a
/// log line every few seconds (the panel shows the same from the stored cursor).
struct ImportProgress {
    bar: Option<indicatif::ProgressBar>,
    last_line: std::time::Instant,
}

impl ImportProgress {
    fn new() -> Self {
        ImportProgress { bar: None, last_line: std::time::Instant::now() }
    }

    fn update(&mut self, path: &std::path::Path, offset: u64, more: bool) {
        let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        if !more {
            if let Some(bar) = self.bar.take() {
                bar.finish_and_clear();
                tracing::info!(path = %path.display(), "import finished");
            }
            return;
        }
        let bar = self.bar.get_or_insert_with(|| {
            tracing::info!(path = %path.display(), bytes = size, "importing existing log");
            indicatif::ProgressBar::new(size).with_style(
                indicatif::ProgressStyle::with_template(
                    "{spinner} importing {msg} {bar:40} {bytes}/{total_bytes} ({eta})",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            )
        });
        bar.set_length(size);
        bar.set_position(offset);
        bar.set_message(path.display().to_string());
        if self.last_line.elapsed() >= std::time::Duration::from_secs(5) {
            self.last_line = std::time::Instant::now();
            let pct = (offset * 100).checked_div(size).unwrap_or(100);
            tracing::info!(path = %path.display(), percent = pct, "importing");
        }
    }
}

/// Reads every follower until nothing new is left, storing each batch before its
/// cursor moves. Returns how many failures were stored. This is the step tests drive.
pub async fn poll_all(followers: &mut [Follower], pipeline: &Pipeline) -> u64 {
    let mut stored = 0;
    let mut progress = ImportProgress::new();
    for follower in followers.iter_mut() {
        loop {
            let batch = match follower.poll(pipeline.clock.now()) {
                Ok(Some(batch)) => batch,
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(path = %follower.path().display(), error = %e, "cannot read log");
                    break;
                }
            };
            match pipeline.apply(&batch).await {
                Ok(applied) => {
                    if let Some(p) = pipeline.health.recovered() {
                        tracing::info!(since = p.since, attempts = p.attempts, "storing log records again");
                    }
                    stored += applied.failures;
                    for ban in &applied.bans {
                        tracing::info!(ip = %ban.ip, until = ?ban.until, reason = %ban.reason, "ban decided");
                    }
                    progress.update(follower.path(), batch.cursor.offset, batch.more);
                    follower.commit(batch.cursor);
                }
                Err(e) => {
                    // What was not stored is read again next time.
                    tracing::error!(path = %batch.path, error = %e, "could not store log records; retrying");
                    pipeline.health.failed(pipeline.clock.now(), e.to_string());
                    if let Some(cursor) = e.committed {
                        follower.commit(cursor);
                    }
                    break;
                }
            }
            if !batch.more {
                break;
            }
        }
    }
    stored
}

/// Follows the files until `shutdown` turns true: wakes on inotify events for their
/// directories and, as a fallback, every `poll_every`.
pub async fn run(
    mut followers: Vec<Follower>,
    pipeline: Pipeline,
    poll_every: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let (tx, mut rx) = mpsc::channel::<()>(1);
    let _watcher = watch_directories(&followers, tx);
    loop {
        poll_all(&mut followers, &pipeline).await;
        tokio::select! {
            _ = rx.recv() => {}
            _ = tokio::time::sleep(poll_every) => {}
            _ = shutdown.changed() => {}
        }
        if *shutdown.borrow() {
            break;
        }
    }
}

fn watch_directories(followers: &[Follower], tx: mpsc::Sender<()>) -> Option<notify::RecommendedWatcher> {
    let mut watcher = match notify::recommended_watcher(move |_event: notify::Result<notify::Event>| {
        // Coalesced: one pending wake-up is enough.
        let _ = tx.try_send(());
    }) {
        Ok(w) => w,
        Err(e) => {
            tracing::warn!(error = %e, "file notifications unavailable; polling only");
            return None;
        }
    };
    for f in followers {
        let dir =
            f.path().parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
        if let Err(e) = watcher.watch(dir, RecursiveMode::NonRecursive) {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot watch directory; polling it");
        }
    }
    Some(watcher)
}
