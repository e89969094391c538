//! Whether log records are being stored. Kept in memory: when the database is what
//! fails (disk full, read-only, locked), it cannot also hold the news.

use std::sync::{Arc, Mutex};

use crate::domain::UnixMs;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestProblem {
    /// First failure of this run of failures.
    pub since: UnixMs,
    pub last_at: UnixMs,
    /// The latest error, as the database gave it.
    pub detail: String,
    pub attempts: u64,
}

/// Shared by the ingest loop (which reports) and the panel (which shows).
#[derive(Debug, Clone, Default)]
pub struct IngestHealth(Arc<Mutex<Option<IngestProblem>>>);

impl IngestHealth {
    pub fn failed(&self, now: UnixMs, detail: String) {
        let mut problem = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let p = problem.get_or_insert(IngestProblem {
            since: now,
            last_at: now,
            detail: String::new(),
            attempts: 0,
        });
        p.last_at = now;
        p.detail = detail;
        p.attempts += 1;
    }

    /// Records are stored again; returns the problem that ended, if there was one.
    pub fn recovered(&self) -> Option<IngestProblem> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    pub fn problem(&self) -> Option<IngestProblem> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}
