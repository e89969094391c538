//! The ban ladder as a pure function of one address's recent history.

use crate::domain::{HOUR_MS, Ladder, UnixMs};

/// What the store knows about one address at `now`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct History {
    /// Failures inside each rung's window, same order as `Ladder::rungs`.
    pub failures_in_window: Vec<u32>,
    pub trusted: bool,
    /// Authenticated successfully within `known_good_for_ms`.
    pub known_good: bool,
    /// Timed bans created within `repeat_within_ms` (active or not).
    pub recent_timed_bans: u32,
    /// The ban in force now, if any: `Some(None)` is a ban until released.
    pub active_until: Option<Option<UnixMs>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Recorded, never banned.
    Trusted,
    /// Below every rung.
    Watch,
    /// A ban already in force covers what the ladder asks for.
    AlreadyBanned,
    Ban {
        /// 1-based rung number.
        rung: usize,
        until: Option<UnixMs>,
        reason: String,
    },
}

impl Verdict {
    pub fn label(&self) -> String {
        match self {
            Verdict::Trusted => "trusted".into(),
            Verdict::Watch => "watch".into(),
            Verdict::AlreadyBanned => "banned".into(),
            Verdict::Ban { until: None, .. } => "ban until released".into(),
            Verdict::Ban { until: Some(_), rung, .. } => format!("ban (rung {rung})"),
        }
    }
}

/// How long an address must have failed nothing before a success makes it known-good.
pub const CLEAN_BEFORE_SUCCESS_MS: UnixMs = HOUR_MS;

/// Whether a successful login makes its address known-good (a lenient first rung).
/// A success right after failures is what a cracked password looks like, and an
/// address outside the extension networks (`in_extension_networks: Some(false)`) is
/// no office phone: neither earns leniency. `failures_before`: failures within
/// [`CLEAN_BEFORE_SUCCESS_MS`] before it.
pub fn earns_leniency(failures_before: u32, in_extension_networks: Option<bool>) -> bool {
    failures_before == 0 && in_extension_networks != Some(false)
}

pub fn decide(ladder: &Ladder, history: &History, now: UnixMs) -> Verdict {
    if history.trusted {
        return Verdict::Trusted;
    }
    for (index, rung) in ladder.rungs.iter().enumerate().rev() {
        let mut needed = rung.failures;
        if index == 0 && history.known_good {
            needed = needed.max(ladder.known_good_failures);
        }
        let seen = history.failures_in_window.get(index).copied().unwrap_or(0);
        if seen < needed.max(1) {
            continue;
        }
        let ban_ms = rung
            .ban_ms
            .map(|ms| if history.recent_timed_bans > 0 { ms.max(ladder.repeat_ban_ms) } else { ms });
        let until = ban_ms.map(|ms| now + ms);
        // A ban in force is not renewed by further failures (the kernel drops them
        // anyway); only a rung that bans until released upgrades a timed one.
        let covered = match (history.active_until, until) {
            (Some(None), _) | (Some(Some(_)), Some(_)) => true,
            (Some(Some(_)), None) | (None, _) => false,
        };
        if covered {
            return Verdict::AlreadyBanned;
        }
        let repeat = history.recent_timed_bans > 0 && rung.ban_ms.is_some();
        let within = crate::policy::human_duration(rung.within_ms);
        let reason = crate::domain::BanReason::rule(seen, &within, repeat);
        return Verdict::Ban { rung: index + 1, until, reason };
    }
    if history.active_until.is_some() { Verdict::AlreadyBanned } else { Verdict::Watch }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::DAY_MS;

    fn history(counts: [u32; 2]) -> History {
        History { failures_in_window: counts.to_vec(), ..History::default() }
    }

    #[test]
    fn seed_ladder_two_in_an_hour_then_twelve_in_a_day() {
        let l = Ladder::default();
        assert_eq!(decide(&l, &history([1, 1]), 0), Verdict::Watch);
        assert_eq!(
            decide(&l, &history([2, 2]), 1000),
            Verdict::Ban { rung: 1, until: Some(1000 + HOUR_MS), reason: "2 failures within 1h".into() }
        );
        assert!(matches!(decide(&l, &history([3, 12]), 0), Verdict::Ban { rung: 2, until: None, .. }));
    }

    #[test]
    fn trusted_is_never_banned() {
        let h = History { trusted: true, ..history([50, 50]) };
        assert_eq!(decide(&Ladder::default(), &h, 0), Verdict::Trusted);
    }

    #[test]
    fn only_a_clean_success_inside_the_extension_networks_earns_leniency() {
        assert!(earns_leniency(0, None));
        assert!(earns_leniency(0, Some(true)));
        // svcrack: one wrong guess, then the password.
        assert!(!earns_leniency(1, None));
        assert!(!earns_leniency(0, Some(false)));
    }

    #[test]
    fn known_good_address_gets_a_lenient_first_rung_but_not_second() {
        let l = Ladder::default();
        let good = |c| History { known_good: true, ..history(c) };
        assert_eq!(decide(&l, &good([4, 4]), 0), Verdict::Watch);
        assert!(matches!(decide(&l, &good([5, 5]), 0), Verdict::Ban { rung: 1, .. }));
        assert!(matches!(decide(&l, &good([1, 12]), 0), Verdict::Ban { rung: 2, .. }));
    }

    #[test]
    fn repeat_offender_escalates_to_a_day() {
        let h = History { recent_timed_bans: 1, ..history([2, 4]) };
        match decide(&Ladder::default(), &h, 0) {
            Verdict::Ban { until, reason, .. } => {
                assert_eq!(until, Some(DAY_MS));
                assert!(reason.contains("repeat offender"));
            }
            other => panic!("expected ban, got {other:?}"),
        }
    }

    #[test]
    fn an_active_ban_that_covers_the_verdict_is_not_repeated_but_is_upgraded() {
        let l = Ladder::default();
        let h = History { active_until: Some(Some(HOUR_MS)), ..history([3, 3]) };
        assert_eq!(decide(&l, &h, 0), Verdict::AlreadyBanned);
        let h = History { active_until: Some(Some(HOUR_MS)), ..history([3, 12]) };
        assert!(matches!(decide(&l, &h, 0), Verdict::Ban { until: None, .. }));
        let h = History { active_until: Some(None), ..history([3, 30]) };
        assert_eq!(decide(&l, &h, 0), Verdict::AlreadyBanned);
    }
}
