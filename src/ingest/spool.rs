//! While a shared store is unreachable: the batches read from this node's logs are
//! kept in a local file, in order, and bans are decided from them alone and enforced
//! at once. When the store is back the batches go through the pipeline as if just
//! read (nothing lost), each only past the cursor the store holds for its file
//! (nothing counted twice), and the store's decisions replace the local ones.
//!
//! The file is JSON lines: `{"held": n, "bans": [...], "batch": {...}}` per batch and
//! `{"stored": n}` once batch `n` is in the store; it is removed once all are.

use std::collections::{HashMap, VecDeque};
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::{Batch, Cursor};
use crate::domain::{FailureKind, LogEvent, Outcome, TrustedNetworks, UnixMs};
use crate::policy::attempts::Attempts;
use crate::policy::replay::Replay;
use crate::policy::{Ladder, Verdict};

/// Records kept at most: past this the logs wait (their cursor does not move), so a
/// long outage costs disk space up to a bound and loses nothing.
pub const MAX_RECORDS: usize = 200_000;
/// How often storing is tried again while batches are kept.
const RETRY_EVERY: Duration = Duration::from_secs(1);

/// The rules as the pipeline last read them from the store.
#[derive(Debug, Clone)]
pub struct Rules {
    pub ladder: Ladder,
    pub trusted: TrustedNetworks,
    pub extensions: Vec<ipnet::IpNet>,
    /// Protection is on: decided bans are enforced.
    pub enforcing: bool,
}

/// A ban decided from this node's records alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LocalBan {
    pub ip: IpAddr,
    pub until: Option<UnixMs>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Held {
    held: u64,
    bans: Vec<LocalBan>,
    batch: Batch,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Stored {
    stored: u64,
}

/// The batch is not kept: the spool is full.
#[derive(Debug, thiserror::Error)]
pub enum HoldError {
    #[error("{MAX_RECORDS} log records are kept locally already; the logs wait until the store is back")]
    Full,
    #[error("cannot keep log records in {0}: {1}")]
    Io(String, std::io::Error),
}

/// The ladder replayed in memory over this node's records since the store went away:
/// the same ladder, trusted networks, one-attempt rule and office-phone exception as
/// the pipeline, without the store's older history (counted once it is back).
struct OfflineJudge {
    rules: Rules,
    replay: Replay,
    slots: HashMap<IpAddr, usize>,
    attempts: Attempts,
}

impl OfflineJudge {
    fn new(rules: Rules, attempts: Attempts) -> Self {
        let replay = Replay::new(rules.ladder.clone(), rules.trusted.clone());
        OfflineJudge { rules, replay, slots: HashMap::new(), attempts }
    }

    /// A ban to enforce now for `event` at `at`, if the ladder asks for one.
    fn judge(&mut self, event: &LogEvent, at: UnixMs) -> Option<LocalBan> {
        let ip = event.ip?;
        let next = self.slots.len();
        let slot = *self.slots.entry(ip).or_insert(next);
        let kind = match event.outcome {
            Outcome::Success => {
                if !event.tampered {
                    self.replay.observe(slot, ip, at, Outcome::Success);
                }
                return None;
            }
            Outcome::Failure(kind) => kind,
        };
        if !self.attempts.is_new(ip, event.session, event.is_preliminary(), at) {
            return None;
        }
        let office = self.rules.extensions.iter().any(|n| n.contains(&ip));
        if office && matches!(kind, FailureKind::Rejected | FailureKind::UnknownAccount) {
            return None;
        }
        match self.replay.observe(slot, ip, at, event.outcome) {
            Verdict::Ban { until, .. } if self.rules.enforcing => Some(LocalBan { ip, until }),
            _ => None,
        }
    }
}

#[derive(Default)]
struct State {
    /// Kept batches not yet stored, oldest first, with their numbers.
    held: VecDeque<(u64, Batch)>,
    records: usize,
    next_number: u64,
    /// The rules as of the last stored batch.
    rules: Option<Rules>,
    judge: Option<OfflineJudge>,
    /// Local bans the kernel has not been given yet.
    unsent: Vec<LocalBan>,
    /// Local bans until the store has judged their batches.
    bans: Vec<LocalBan>,
    last_try: Option<Instant>,
}

pub struct Spool {
    path: PathBuf,
    limit: usize,
    state: Mutex<State>,
}

impl Spool {
    /// Opens the spool file at `path`, taking up the batches a previous run kept (a
    /// line cut short by a crash is skipped: its batch was not kept, its cursor not moved).
    pub fn open(path: &Path) -> std::io::Result<Spool> {
        let mut state = State::default();
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let mut stored = std::collections::HashSet::new();
                let mut held = Vec::new();
                for line in text.lines() {
                    if let Ok(s) = serde_json::from_str::<Stored>(line) {
                        stored.insert(s.stored);
                    } else if let Ok(h) = serde_json::from_str::<Held>(line) {
                        held.push(h);
                    }
                }
                for h in held.into_iter().filter(|h| !stored.contains(&h.held)) {
                    state.next_number = state.next_number.max(h.held + 1);
                    state.records += h.batch.records.len();
                    state.bans.extend(&h.bans);
                    state.held.push_back((h.held, h.batch));
                }
                state.unsent = state.bans.clone();
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let spool = Spool { path: path.to_owned(), limit: MAX_RECORDS, state: Mutex::new(state) };
        if spool.lock().held.is_empty() {
            let _ = std::fs::remove_file(path);
        }
        Ok(spool)
    }

    /// The same with another bound (tests).
    pub fn with_limit(mut self, limit: usize) -> Spool {
        self.limit = limit;
        self
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Batches are kept: new ones must be kept after them, in order.
    pub fn holding(&self) -> bool {
        !self.lock().held.is_empty()
    }

    /// (records kept, local bans).
    pub fn counts(&self) -> (usize, usize) {
        let s = self.lock();
        (s.records, s.bans.len())
    }

    /// The rules as the store gave them for the last stored batch: what judges the
    /// records of an outage.
    pub fn remember(&self, rules: Rules) {
        let mut s = self.lock();
        if s.held.is_empty() {
            s.rules = Some(rules);
        }
    }

    /// Where the follower of `path` resumes: after the last batch kept for it.
    pub fn last_cursor(&self, path: &str) -> Option<Cursor> {
        self.lock().held.iter().rev().find(|(_, b)| b.path == path).map(|(_, b)| b.cursor.clone())
    }

    /// Keeps `batch` (written to the file before this returns) and judges the events
    /// `counts` accepts; returns the bans decided, which the kernel is to get.
    /// `attempts`: the pipeline's conversations, where an outage's judging starts.
    pub fn hold(
        &self,
        batch: &Batch,
        counts: impl Fn(&LogEvent) -> bool,
        attempts: &Attempts,
        now: UnixMs,
    ) -> Result<Vec<LocalBan>, HoldError> {
        let mut s = self.lock();
        if s.records + batch.records.len() > self.limit && !s.held.is_empty() {
            return Err(HoldError::Full);
        }
        if s.judge.is_none() {
            // Rules never read (the store was away since the start): nothing is banned
            // locally, as the trusted networks are not known.
            let rules = s.rules.clone().unwrap_or_else(|| Rules {
                ladder: Ladder::default(),
                trusted: TrustedNetworks::default(),
                extensions: Vec::new(),
                enforcing: false,
            });
            s.judge = Some(OfflineJudge::new(rules, attempts.clone()));
        }
        let judge = s.judge.as_mut().expect("set above");
        let mut bans = Vec::new();
        for event in batch.records.iter().filter_map(|r| r.event.as_ref()).filter(|e| counts(e)) {
            let at = event.at.map_or(now, |t| t.min(now));
            bans.extend(judge.judge(event, at));
        }
        let number = s.next_number;
        let line = serde_json::to_string(&Held { held: number, bans: bans.clone(), batch: batch.clone() })
            .map_err(|e| HoldError::Io(self.path.display().to_string(), e.into()))?;
        self.append(&line).map_err(|e| HoldError::Io(self.path.display().to_string(), e))?;
        s.next_number += 1;
        s.records += batch.records.len();
        s.held.push_back((number, batch.clone()));
        s.bans.extend(&bans);
        s.unsent.extend(&bans);
        Ok(bans)
    }

    fn append(&self, line: &str) -> std::io::Result<()> {
        use std::os::unix::fs::OpenOptionsExt;
        let mut file = std::fs::OpenOptions::new().create(true).append(true).mode(0o600).open(&self.path)?;
        file.write_all(format!("{line}\n").as_bytes())?;
        file.sync_data()
    }

    /// Whether to try the store now: at once when nothing is kept, else once per
    /// [`RETRY_EVERY`].
    pub fn may_try(&self) -> bool {
        let mut s = self.lock();
        if s.held.is_empty() {
            return true;
        }
        let due = s.last_try.is_none_or(|t| t.elapsed() >= RETRY_EVERY);
        if due {
            s.last_try = Some(Instant::now());
        }
        due
    }

    /// The oldest kept batch.
    pub fn oldest(&self) -> Option<(u64, Batch)> {
        self.lock().held.front().cloned()
    }

    /// Batch `number` is in the store now. After the last one, the store's decisions
    /// stand alone: the local bans and the judge of this outage are dropped.
    pub fn stored(&self, number: u64) -> std::io::Result<()> {
        let mut s = self.lock();
        let Some(pos) = s.held.iter().position(|(n, _)| *n == number) else { return Ok(()) };
        let (_, batch) = s.held.remove(pos).expect("found above");
        s.records -= batch.records.len();
        if s.held.is_empty() {
            s.judge = None;
            s.bans.clear();
            s.unsent.clear();
            s.last_try = None;
            return match std::fs::remove_file(&self.path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
                _ => Ok(()),
            };
        }
        let line = serde_json::to_string(&Stored { stored: number }).map_err(std::io::Error::from)?;
        self.append(&line)
    }

    /// Local bans the kernel has not been given; handed out once.
    pub fn take_unsent(&self) -> Vec<LocalBan> {
        std::mem::take(&mut self.lock().unsent)
    }

    /// Hands back bans the kernel could not take.
    pub fn unsent_again(&self, bans: Vec<LocalBan>) {
        self.lock().unsent.extend(bans);
    }

    /// Local bans in force at `now`: the kernel keeps them until the store has judged.
    pub fn bans_in_force(&self, now: UnixMs) -> Vec<LocalBan> {
        self.lock().bans.iter().filter(|b| b.until.is_none_or(|u| u > now)).copied().collect()
    }
}

#[cfg(test)]
mod tests;
