//! The kernel's bans as last enforced, kept in a file of the data directory on a
//! shared store: a PBX that starts (after a reboot) while the shared database cannot
//! be reached puts them back into an empty kernel instead of waiting unprotected.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::domain::UnixMs;
use crate::firewall::{Access, Firewall, KernelBan, render};

/// Written at most this often while bans change (a full table is megabytes).
const EVERY: Duration = Duration::from_secs(5);

/// What the file holds: the access lists and each ban with the time it ends.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub saved_at: UnixMs,
    pub access: Access,
    /// Ban target → when it ends (`None`: until released).
    pub bans: BTreeMap<IpNet, Option<UnixMs>>,
}

impl Snapshot {
    /// The bans still in force at `now`, as the kernel takes them.
    pub fn bans_at(&self, now: UnixMs) -> Vec<KernelBan> {
        self.bans
            .iter()
            .filter(|(_, until)| until.is_none_or(|u| u > now))
            .map(|(net, until)| KernelBan {
                net: *net,
                timeout_secs: until.map(|u| super::remaining_secs(u, now)),
            })
            .collect()
    }
}

/// The enforcer's copy: replaced by each full pass, changed by each fast one, written
/// when it changed, at most every [`EVERY`] (a change in between is written when that
/// time is up).
pub(super) struct Keeper {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    state: std::sync::Mutex<State>,
}

#[derive(Default)]
struct State {
    snapshot: Snapshot,
    /// Changed since written.
    dirty: bool,
    written_at: Option<Instant>,
    /// A write is scheduled for when [`EVERY`] is up.
    scheduled: bool,
}

impl Keeper {
    pub(super) fn new(path: PathBuf) -> Keeper {
        Keeper { inner: Arc::new(Inner { path, state: Default::default() }) }
    }

    pub(super) fn replace(&self, access: &Access, bans: &[KernelBan], now: UnixMs) {
        let mut state = self.inner.state.lock().unwrap_or_else(|p| p.into_inner());
        let next = Snapshot {
            saved_at: now,
            access: access.clone(),
            bans: bans.iter().map(|b| (b.net, until(b, now))).collect(),
        };
        let changed = Snapshot { saved_at: state.snapshot.saved_at, ..next.clone() } != state.snapshot;
        state.snapshot = next;
        state.dirty |= changed;
        self.inner.write_if_due(&mut state);
    }

    pub(super) fn change(&self, added: &[KernelBan], removed: &[IpNet], now: UnixMs) {
        let mut state = self.inner.state.lock().unwrap_or_else(|p| p.into_inner());
        for net in removed {
            state.snapshot.bans.remove(net);
        }
        for b in added {
            state.snapshot.bans.insert(b.net, until(b, now));
        }
        state.snapshot.saved_at = now;
        state.dirty |= !added.is_empty() || !removed.is_empty();
        self.inner.write_if_due(&mut state);
    }
}

impl Inner {
    fn write_if_due(self: &Arc<Self>, state: &mut State) {
        if !state.dirty {
            return;
        }
        let since = state.written_at.map_or(EVERY, |at| at.elapsed());
        if since < EVERY {
            // Within a runtime (always, but in unit tests): written when the time is up.
            if let (false, Ok(runtime)) = (state.scheduled, tokio::runtime::Handle::try_current()) {
                state.scheduled = true;
                let inner = self.clone();
                runtime.spawn(async move {
                    tokio::time::sleep(EVERY - since).await;
                    let _ = tokio::task::spawn_blocking(move || {
                        let mut state = inner.state.lock().unwrap_or_else(|p| p.into_inner());
                        state.scheduled = false;
                        inner.write_if_due(&mut state);
                    })
                    .await;
                });
            }
            return;
        }
        match write(&self.path, &state.snapshot) {
            Ok(()) => {
                state.dirty = false;
                state.written_at = Some(Instant::now());
            }
            Err(e) => {
                tracing::warn!(path = %self.path.display(), error = %e, "cannot save the bans' snapshot")
            }
        }
    }
}

fn until(ban: &KernelBan, now: UnixMs) -> Option<UnixMs> {
    ban.timeout_secs.map(|s| now + i64::from(s) * 1000)
}

/// Written whole to a temporary file (0600), then renamed over the old one.
fn write(path: &Path, snapshot: &Snapshot) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut file =
        std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
    file.write_all(&serde_json::to_vec(snapshot)?)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// Puts the bans of the snapshot at `path` into a kernel that holds no sipwarden table
/// (a table there is newer than any snapshot and is left alone), if they are the bans
/// of `owner`, the store now configured (a table stamped with another would keep the
/// enforcer out). Returns how many bans went in; `None` when there was nothing to do.
pub fn restore(
    firewall: &dyn Firewall,
    path: &Path,
    owner: &str,
    now: UnixMs,
) -> anyhow::Result<Option<usize>> {
    let text = match std::fs::read(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let snapshot: Snapshot = serde_json::from_slice(&text)?;
    if snapshot.access.owner != owner || firewall.list()?.table {
        return Ok(None);
    }
    let bans = snapshot.bans_at(now);
    firewall.apply(&render::full_ruleset(&snapshot.access, &bans))?;
    Ok(Some(bans.len()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::firewall::RecordingBackend;

    fn ban(net: &str, timeout_secs: Option<u32>) -> KernelBan {
        KernelBan { net: net.parse().unwrap(), timeout_secs }
    }

    #[test]
    fn a_snapshot_restores_the_bans_still_in_force_into_an_empty_kernel_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bans.json");
        let keeper = Keeper::new(path.clone());
        let access = Access {
            trusted: vec!["192.0.2.0/24".parse().unwrap()],
            owner: "db".into(),
            ..Access::default()
        };
        let now = 1_000_000;
        keeper.replace(&access, &[ban("198.51.100.1/32", Some(60)), ban("198.51.100.2/32", None)], now);
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);

        // Ten minutes later the timed ban is over; the other is still there.
        let kernel = RecordingBackend::new("test");
        assert_eq!(restore(&kernel, &path, "another db", now).unwrap(), None, "another store's bans");
        assert_eq!(restore(&kernel, &path, "db", now + 600_000).unwrap(), Some(1));
        let state = kernel.state();
        assert_eq!(state.bans.len(), 1, "{state:?}");
        assert!(state.trusted.contains(&"192.0.2.0/24".parse().unwrap()));
        // A kernel with a table keeps it.
        assert_eq!(restore(&kernel, &path, "db", now).unwrap(), None);
        assert_eq!(
            restore(&RecordingBackend::new("t"), &dir.path().join("none.json"), "db", now).unwrap(),
            None
        );
    }

    #[test]
    fn changes_are_kept_and_written_once_due() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bans.json");
        let keeper = Keeper::new(path.clone());
        let now = 1_000_000;
        keeper.replace(&Access::default(), &[ban("198.51.100.1/32", None)], now);
        keeper.change(&[ban("198.51.100.3/32", Some(30))], &["198.51.100.1/32".parse().unwrap()], now);
        let kept = keeper.inner.state.lock().unwrap().snapshot.bans_at(now);
        assert_eq!(kept, [ban("198.51.100.3/32", Some(30))]);
        let written: Snapshot = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(written.bans.len(), 1, "the change waits for its turn: {written:?}");
        assert!(written.bans.contains_key(&"198.51.100.1/32".parse().unwrap()));
    }
}
