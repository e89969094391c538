//! The ban ladder's rules as plain data: what the admin configures, what the store
//! keeps and what the policy decides by.

use serde::{Deserialize, Serialize};

use super::{DAY_MS, HOUR_MS, UnixMs};

/// One rung: `failures` within `within_ms` → banned for `ban_ms` (`None`: until released).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rung {
    pub failures: u32,
    pub within_ms: UnixMs,
    pub ban_ms: Option<UnixMs>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ladder {
    /// Weakest first.
    pub rungs: Vec<Rung>,
    /// First-rung threshold for an address that authenticated successfully recently.
    pub known_good_failures: u32,
    pub known_good_for_ms: UnixMs,
    /// A second timed ban within this window lasts at least `repeat_ban_ms`.
    pub repeat_within_ms: UnixMs,
    pub repeat_ban_ms: UnixMs,
}

impl Default for Ladder {
    /// The seed's ladder: 2 in 1 h → 1 h; 12 in 24 h → until released.
    fn default() -> Self {
        Ladder {
            rungs: vec![
                Rung { failures: 2, within_ms: HOUR_MS, ban_ms: Some(HOUR_MS) },
                Rung { failures: 12, within_ms: DAY_MS, ban_ms: None },
            ],
            known_good_failures: 5,
            known_good_for_ms: 7 * DAY_MS,
            repeat_within_ms: DAY_MS,
            repeat_ban_ms: DAY_MS,
        }
    }
}

impl Ladder {
    /// The longest window any rung looks back over.
    pub fn max_window(&self) -> UnixMs {
        self.rungs.iter().map(|r| r.within_ms).max().unwrap_or(0)
    }
}
