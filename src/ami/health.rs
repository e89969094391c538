use std::sync::{Arc, Mutex};

use crate::domain::UnixMs;

/// The manager link's state, for the panel, `/healthz` and `status`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AmiState {
    pub connected: bool,
    /// Since when it is connected, or down.
    pub since: Option<UnixMs>,
    /// Why it is down, in words that say what to fix.
    pub problem: Option<String>,
    pub events: u64,
    /// Blocks not believed (malformed, or right after one).
    pub malformed: u64,
    /// Events dropped because the pipeline fell too far behind.
    pub dropped: u64,
}

/// Shared between the link and its readers.
#[derive(Debug, Clone, Default)]
pub struct AmiHealth(Arc<Mutex<AmiState>>);

impl AmiHealth {
    fn with<T>(&self, f: impl FnOnce(&mut AmiState) -> T) -> T {
        f(&mut self.0.lock().unwrap_or_else(|p| p.into_inner()))
    }

    pub fn state(&self) -> AmiState {
        self.with(|s| s.clone())
    }

    pub fn is_connected(&self) -> bool {
        self.with(|s| s.connected)
    }

    pub(super) fn up(&self, now: UnixMs) {
        self.with(|s| {
            (s.connected, s.since, s.problem) = (true, Some(now), None);
        });
    }

    pub(super) fn down(&self, now: UnixMs, why: String) {
        self.with(|s| {
            if s.connected || s.since.is_none() {
                s.since = Some(now);
            }
            (s.connected, s.problem) = (false, Some(why));
        });
    }

    pub(super) fn stopped(&self) {
        self.with(|s| s.connected = false);
    }

    pub(super) fn event(&self) {
        self.with(|s| s.events += 1);
    }

    pub(super) fn malformed(&self) {
        self.with(|s| s.malformed += 1);
    }

    pub(super) fn dropped(&self) {
        self.with(|s| s.dropped += 1);
    }
}
