//! Log followers and the loop that feeds them to the pipeline.

pub mod cleanlog;
pub mod follower;
mod health;
pub mod manager;
mod outage;
pub mod panel;
pub mod pipeline;
pub mod spool;

use std::path::PathBuf;
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub use follower::{Batch, Cursor, Follower, StartAt};
pub use health::{IngestHealth, IngestProblem};

use crate::asterisk::SourceKind;
use crate::store;
use pipeline::Pipeline;

/// Builds a follower for `path`, resuming from its stored cursor if there is one.
pub async fn follower_for(
    store: &store::Store,
    path: PathBuf,
    kind: Option<SourceKind>,
    start_at: StartAt,
) -> store::Result<Follower> {
    let mut conn = store.acquire().await?;
    let saved = store::sources::get(&mut conn, &path.display().to_string()).await?;
    let cursor = saved.as_ref().map(Cursor::from);
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
    poll_until(followers, pipeline, &CancellationToken::new()).await
}

/// [`poll_all`] that stops between batches once `stop` is cancelled: a backlog import
/// must not hold up a shutdown. Every stored batch has its cursor, so a restart
/// resumes exactly where this stopped.
pub async fn poll_until(followers: &mut [Follower], pipeline: &Pipeline, stop: &CancellationToken) -> u64 {
    let mut stored = 0;
    // Batches kept while the shared store was away go first: its cursors move in order.
    if let Some(spool) = &pipeline.spool {
        stored += outage::flush(spool, pipeline).await;
    }
    let mut progress = ImportProgress::new();
    let mut full = None;
    for follower in followers.iter_mut() {
        let mut unreadable = None;
        loop {
            if stop.is_cancelled() {
                return stored;
            }
            let batch = match follower.poll(pipeline.clock.now()) {
                Ok(Some(batch)) => batch,
                Ok(None) => break,
                Err(e) => {
                    unreadable = Some(e);
                    break;
                }
            };
            if let Some(spool) = pipeline.spool.as_deref().filter(|s| s.holding()) {
                match outage::keep(spool, pipeline, &batch) {
                    Ok(()) => follower.commit(batch.cursor.clone()),
                    Err(e) => {
                        full = Some(e);
                        break;
                    }
                }
                if !batch.more {
                    break;
                }
                continue;
            }
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
                    store_contacts(pipeline, &batch).await;
                    watch_batch(pipeline, &batch, false).await;
                    follower.commit(batch.cursor);
                }
                Err(e) => {
                    // What was not stored is read again next time.
                    tracing::error!(path = %batch.path, error = %e, "could not store log records; retrying");
                    pipeline.health.failed(pipeline.clock.now(), e.to_string());
                    let spool =
                        pipeline.spool.as_deref().filter(|_| outage::unreachable(pipeline, &e.source));
                    match (e.committed, spool) {
                        (Some(cursor), _) => follower.commit(cursor),
                        // The shared store is away: judged and kept here meanwhile.
                        (None, Some(spool)) => match outage::keep(spool, pipeline, &batch) {
                            Ok(()) => {
                                follower.commit(batch.cursor.clone());
                                if batch.more {
                                    continue;
                                }
                            }
                            Err(e) => full = Some(e),
                        },
                        (None, None) => {}
                    }
                    break;
                }
            }
            if !batch.more {
                break;
            }
        }
        let problem = log_problem(follower.path(), follower.kind(), unreadable);
        let path = follower.path().display().to_string();
        if let Some(p) = &problem {
            if !pipeline.health.log_problems().contains(p) {
                tracing::warn!(path = %path, "{p}");
            }
        }
        pipeline.health.log_state(&path, problem);
    }
    if let Some(e) = full {
        pipeline.health.failed(pipeline.clock.now(), e.to_string());
    }
    stored
}

/// After a batch is stored: its logins and calls go to the breach and toll-fraud watch.
/// `every_login`: logins count even where another source counts the failures.
/// The registrations a stored batch reported, for the Logins page (display only: a
/// failure here is logged and holds nothing up).
async fn store_contacts(pipeline: &Pipeline, batch: &Batch) {
    if batch.contacts.is_empty() {
        return;
    }
    let stored = async {
        let mut tx = pipeline.store.begin().await?;
        crate::store::contacts::record(&mut tx, &batch.contacts, pipeline.clock.now()).await?;
        tx.commit().await
    };
    if let Err(e) = stored.await {
        tracing::warn!(path = %batch.path, error = %e, "could not store registrations");
    }
}

async fn watch_batch(pipeline: &Pipeline, batch: &Batch, every_login: bool) {
    let Some(watch) = &pipeline.watch else { return };
    let events = batch
        .records
        .iter()
        .filter_map(|r| r.event.as_ref())
        .filter(|e| every_login || pipeline.counts(batch.kind, e));
    let now = pipeline.clock.now();
    let mut seen = crate::watch::seen_in(events, &batch.calls, now);
    // Locking an extension and banning now are answers to what happens now: an old log
    // imported at start is `check-log`'s to judge, not a reason to act today.
    seen.retain(|s| s.at().is_none_or(|at| at >= now - crate::watch::ACTS_ON_MS));
    if seen.is_empty() {
        return;
    }
    if let Err(e) = watch.observe(&seen).await {
        tracing::error!(path = %batch.path, error = %e, "could not judge logins and calls");
    }
}

/// Why a followed log cannot be read, in words that say how to fix it; `None` when
/// it can. `error`: what the last read said.
fn log_problem(
    path: &std::path::Path,
    kind: Option<SourceKind>,
    error: Option<std::io::Error>,
) -> Option<String> {
    let shown = path.display();
    let error = match error {
        Some(e) => e,
        None => match std::fs::metadata(path) {
            Ok(_) => return None,
            Err(e) => e,
        },
    };
    Some(match error.kind() {
        std::io::ErrorKind::NotFound if kind == Some(SourceKind::Security) => format!(
            "{shown} does not exist: make Asterisk write its security log (FreePBX: add `security => security` \
             to /etc/asterisk/logger_logfiles_custom.conf, then `asterisk -rx 'logger reload'`)"
        ),
        std::io::ErrorKind::NotFound => {
            format!("{shown} does not exist: check the path, and that Asterisk's logger.conf writes it")
        }
        std::io::ErrorKind::PermissionDenied => format!(
            "{shown} cannot be read by the user sipwarden runs as ({}): run it as root, or add that user \
             to the group that owns Asterisk's logs",
            current_user()
        ),
        _ => format!("{shown} cannot be read: {error}"),
    })
}

/// `uid 1000` as the kernel knows this process.
fn current_user() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1).unwrap_or("?").to_owned())
        })
        .map_or_else(|| "unknown user".into(), |uid| format!("uid {uid}"))
}

/// Follows the files until `stop` is cancelled: wakes on inotify events that can mean
/// new data in one of them and, as a fallback, every `poll_every`.
pub async fn run(
    mut followers: Vec<Follower>,
    pipeline: Pipeline,
    poll_every: Duration,
    stop: CancellationToken,
) {
    let (tx, mut rx) = mpsc::channel::<()>(1);
    let _watcher = watch_directories(&followers, tx);
    while !stop.is_cancelled() {
        poll_until(&mut followers, &pipeline, &stop).await;
        tokio::select! {
            _ = rx.recv() => {}
            _ = tokio::time::sleep(poll_every) => {}
            _ = stop.cancelled() => {}
        }
    }
}

/// Whether a directory event can mean new data in one of `names`. Opening and reading
/// a file (the follower's own reads among them) cannot: waking on those spins a core.
fn may_bring_data(event: &notify::Event, names: &[std::ffi::OsString]) -> bool {
    use notify::EventKind;
    let relevant_kind = match event.kind {
        EventKind::Access(_) => false,
        EventKind::Modify(notify::event::ModifyKind::Metadata(_)) => false,
        EventKind::Create(_) | EventKind::Modify(_) | EventKind::Remove(_) => true,
        // Queue overflow and the like: look again to be safe.
        EventKind::Any | EventKind::Other => true,
    };
    relevant_kind
        && (event.paths.is_empty()
            || event.need_rescan()
            || event.paths.iter().any(|p| p.file_name().is_some_and(|n| names.iter().any(|m| m == n))))
}

fn watch_directories(followers: &[Follower], tx: mpsc::Sender<()>) -> Option<notify::RecommendedWatcher> {
    // A rename rotation names the followed file as the source of the move; a new log
    // is created under the followed name: both match by name.
    let names: Vec<std::ffi::OsString> =
        followers.iter().filter_map(|f| f.path().file_name().map(|n| n.to_os_string())).collect();
    let mut watcher = match notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let wake = match &event {
            Ok(e) => may_bring_data(e, &names),
            Err(_) => true,
        };
        // Coalesced: one pending wake-up is enough.
        if wake {
            let _ = tx.try_send(());
        }
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

#[cfg(test)]
mod tests {
    use notify::event::{AccessKind, AccessMode, CreateKind, DataChange, EventKind, ModifyKind, RenameMode};

    use super::*;

    fn event(kind: EventKind, path: &str) -> notify::Event {
        notify::Event::new(kind).add_path(PathBuf::from(path))
    }

    #[test]
    fn only_events_that_can_bring_data_to_a_followed_file_wake_the_loop() {
        let names = vec![std::ffi::OsString::from("messages")];
        let wakes = |kind, path| may_bring_data(&event(kind, path), &names);
        // The follower's own open, read and close of the file.
        assert!(!wakes(EventKind::Access(AccessKind::Open(AccessMode::Read)), "/var/log/asterisk/messages"));
        assert!(!wakes(EventKind::Access(AccessKind::Close(AccessMode::Read)), "/var/log/asterisk/messages"));
        assert!(!wakes(EventKind::Access(AccessKind::Read), "/var/log/asterisk/messages"));
        // Another file of the directory being written.
        assert!(!wakes(EventKind::Modify(ModifyKind::Data(DataChange::Any)), "/var/log/asterisk/queue_log"));
        // Appended, truncated, rotated away, created anew.
        assert!(wakes(EventKind::Modify(ModifyKind::Data(DataChange::Any)), "/var/log/asterisk/messages"));
        assert!(wakes(EventKind::Modify(ModifyKind::Name(RenameMode::From)), "/var/log/asterisk/messages"));
        assert!(wakes(EventKind::Create(CreateKind::File), "/var/log/asterisk/messages"));
        // Lost events: look again.
        assert!(may_bring_data(
            &notify::Event::new(EventKind::Other).set_flag(notify::event::Flag::Rescan),
            &names
        ));
    }
}
