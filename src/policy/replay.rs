//! The ladder replayed in memory over events in time order: what `check-log`
//! reports, with the same `decide` the live pipeline uses.

use std::collections::VecDeque;
use std::net::IpAddr;

use super::{History, Ladder, Verdict, decide};
use crate::domain::{Outcome, TrustedNetworks, UnixMs};

#[derive(Debug, Default)]
struct AddressState {
    failures: VecDeque<UnixMs>,
    last_success: Option<UnixMs>,
    timed_bans: Vec<UnixMs>,
    active_until: Option<Option<UnixMs>>,
    /// Longest ban reached; `Some(None)` is until released.
    strongest: Option<Option<UnixMs>>,
}

pub struct Replay {
    /// Reused for every event, so replaying allocates nothing per event.
    history: History,
    ladder: Ladder,
    trusted: TrustedNetworks,
    /// By the caller's dense number for each address (no hashing per event).
    addresses: Vec<AddressState>,
}

impl Replay {
    pub fn new(ladder: Ladder, trusted: TrustedNetworks) -> Self {
        Replay { history: History::default(), ladder, trusted, addresses: Vec::new() }
    }

    /// Feeds one event; events must come in time order.
    /// One event of `ip`, which the caller numbers `slot` (0, 1, 2... one per address).
    pub fn observe(&mut self, slot: usize, ip: IpAddr, at: UnixMs, outcome: Outcome) -> Verdict {
        let ladder = &self.ladder;
        if self.addresses.len() <= slot {
            self.addresses.resize_with(slot + 1, AddressState::default);
        }
        let state = &mut self.addresses[slot];
        if outcome == Outcome::Success {
            let recent =
                state.failures.iter().rev().take_while(|&&t| t > at - super::CLEAN_BEFORE_SUCCESS_MS);
            if super::earns_leniency(recent.count() as u32, None) {
                state.last_success = Some(at);
            }
            return Verdict::Watch;
        }
        let max_window = ladder.max_window();
        state.failures.push_back(at);
        while state.failures.front().is_some_and(|&t| t < at - max_window) {
            state.failures.pop_front();
        }
        if let Some(Some(until)) = state.active_until {
            if until <= at {
                state.active_until = None;
            }
        }
        let history = &mut self.history;
        history.failures_in_window.clear();
        // Times are in order: count from the first one inside the window.
        history.failures_in_window.extend(ladder.rungs.iter().map(|r| {
            (state.failures.len() - state.failures.partition_point(|&t| t <= at - r.within_ms)) as u32
        }));
        history.trusted = self.trusted.contains(ip);
        history.known_good = state.last_success.is_some_and(|t| t > at - ladder.known_good_for_ms);
        history.recent_timed_bans =
            state.timed_bans.iter().filter(|&&t| t > at - ladder.repeat_within_ms).count() as u32;
        history.active_until = state.active_until;
        let verdict = decide(ladder, history, at);
        if let Verdict::Ban { until, .. } = &verdict {
            if until.is_some() {
                state.timed_bans.push(at);
            }
            state.active_until = Some(*until);
            let length = until.map(|u| u - at);
            let stronger = match (state.strongest, length) {
                (None, _) => true,
                (Some(None), _) => false,
                (Some(Some(_)), None) => true,
                (Some(Some(old)), Some(new)) => new > old,
            };
            if stronger {
                state.strongest = Some(length);
            }
        }
        verdict
    }

    /// What the address ends up with: `trusted`, `watch`, `ban 1h`, `ban until released`.
    pub fn summary(&self, slot: usize, ip: IpAddr) -> String {
        if self.trusted.contains(ip) {
            return "trusted".into();
        }
        match self.addresses.get(slot).and_then(|s| s.strongest) {
            None => "watch".into(),
            Some(None) => "ban until released".into(),
            Some(Some(ms)) => format!("ban {}", super::human_duration(ms)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{FailureKind, HOUR_MS, MINUTE_MS};

    const FAIL: Outcome = Outcome::Failure(FailureKind::WrongPassword);

    #[test]
    fn an_attacker_walks_up_the_ladder() {
        let mut r = Replay::new(Ladder::default(), TrustedNetworks::default());
        let ip: IpAddr = "203.0.113.9".parse().unwrap();
        assert_eq!(r.observe(0, ip, 0, FAIL), Verdict::Watch);
        assert!(matches!(r.observe(0, ip, MINUTE_MS, FAIL), Verdict::Ban { rung: 1, .. }));
        assert_eq!(r.summary(0, ip), "ban 1h");
        for i in 0..10 {
            r.observe(0, ip, 2 * HOUR_MS + i * MINUTE_MS, FAIL);
        }
        assert_eq!(r.summary(0, ip), "ban until released");
    }

    #[test]
    fn failures_outside_the_window_do_not_add_up() {
        let mut r = Replay::new(Ladder::default(), TrustedNetworks::default());
        let ip: IpAddr = "203.0.113.9".parse().unwrap();
        r.observe(0, ip, 0, FAIL);
        assert_eq!(r.observe(0, ip, HOUR_MS + 1, FAIL), Verdict::Watch);
        assert_eq!(r.summary(0, ip), "watch");
    }

    #[test]
    fn a_phone_that_registered_gets_five_tries() {
        let mut r = Replay::new(Ladder::default(), TrustedNetworks::default());
        let ip: IpAddr = "198.51.100.20".parse().unwrap();
        r.observe(0, ip, 0, Outcome::Success);
        for i in 1..=4 {
            assert_eq!(r.observe(0, ip, i * MINUTE_MS, FAIL), Verdict::Watch);
        }
        assert!(matches!(r.observe(0, ip, 5 * MINUTE_MS, FAIL), Verdict::Ban { .. }));
    }
}
