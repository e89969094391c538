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
pub struct IngestHealth {
    storing: Arc<Mutex<Option<IngestProblem>>>,
    /// Logs that cannot be read (missing, not readable): path → what to do about it.
    logs: Arc<Mutex<std::collections::BTreeMap<String, String>>>,
}

impl IngestHealth {
    /// Whether the log at `path` can be read: `None`, or why not and how to fix it.
    pub fn log_state(&self, path: &str, problem: Option<String>) {
        let mut logs = self.logs.lock().unwrap_or_else(|e| e.into_inner());
        match problem {
            Some(p) => logs.insert(path.to_owned(), p),
            None => logs.remove(path),
        };
    }

    /// The logs that cannot be read, with why.
    pub fn log_problems(&self) -> Vec<String> {
        self.logs.lock().unwrap_or_else(|e| e.into_inner()).values().cloned().collect()
    }

    pub fn failed(&self, now: UnixMs, detail: String) {
        let mut problem = self.storing.lock().unwrap_or_else(|e| e.into_inner());
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
        self.storing.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    pub fn problem(&self) -> Option<IngestProblem> {
        self.storing.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}
