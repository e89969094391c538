//! Time is injected so tests can fix it.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use crate::domain::UnixMs;

/// Minutes after local midnight at `at`, in this machine's time zone (the one
/// Asterisk logs in): when the office is open.
pub fn local_minute_of_day(at: UnixMs) -> u16 {
    use chrono::Timelike;
    let local = chrono::DateTime::from_timestamp_millis(at).unwrap_or_default().with_timezone(&chrono::Local);
    (local.hour() * 60 + local.minute()) as u16
}

pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> UnixMs;
}

#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> UnixMs {
        chrono::Utc::now().timestamp_millis()
    }
}

/// A clock tests move by hand.
#[derive(Debug, Clone, Default)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    pub fn new(at: UnixMs) -> Self {
        ManualClock(Arc::new(AtomicI64::new(at)))
    }
    pub fn set(&self, at: UnixMs) {
        self.0.store(at, Ordering::SeqCst);
    }
    pub fn advance(&self, by: UnixMs) {
        self.0.fetch_add(by, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> UnixMs {
        self.0.load(Ordering::SeqCst)
    }
}
