//! Ban decisions as pure functions: the ladder ([`decide`]), one attempt counted once
//! ([`attempts`]), IPv6 prefixes ([`prefix`]) and an in-memory replay for offline
//! checks ([`replay`]). No I/O here: the pipeline that stores events and decisions is
//! `ingest::pipeline`.

pub(crate) mod attempts;
pub(crate) mod breach;
pub(crate) mod corroborate;
mod decide;
pub(crate) mod fraud;
pub(crate) mod prefix;
pub(crate) mod replay;

pub use crate::domain::{Ladder, Rung};
pub use decide::{CLEAN_BEFORE_SUCCESS_MS, History, Verdict, decide, earns_leniency};

use crate::domain::{DAY_MS, HOUR_MS, MINUTE_MS, SECOND_MS, UnixMs};

/// `3600000` → `1h`, `90000` → `90s`: short and exact.
pub fn human_duration(ms: UnixMs) -> String {
    for (unit, size) in [("d", DAY_MS), ("h", HOUR_MS), ("m", MINUTE_MS), ("s", SECOND_MS)] {
        if ms >= size && ms % size == 0 {
            return format!("{}{unit}", ms / size);
        }
    }
    format!("{ms}ms")
}
