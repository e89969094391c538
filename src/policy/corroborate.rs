//! Who sent a forged security event. When attacker text put a second address pair in
//! an event and its fields cannot tell which pair Asterisk wrote, the event names
//! several suspects. The messages log writes its own line for the same attempt, with
//! the address anchored where Asterisk printed the packet source, and the manager
//! interface sends its own event (every field a line of its own); the security log
//! counts those attempts, so these are not counted themselves, but they witness.
//! A forged failure and a witness of the same service within [`WITHIN_MS`] whose
//! address is one of the suspects settle each other: the attempt counts once, against
//! the witnessed address. Either may come first (the two logs are read in turns).

use std::collections::VecDeque;

use crate::domain::{LogEvent, Outcome, Suspects, UnixMs};

/// How far apart the two records of one attempt may be dated: the messages log may
/// keep whole seconds only.
pub const WITHIN_MS: UnixMs = 2_000;
/// Records older than this, counted from the newest one seen, wait no longer.
const KEPT_MS: UnixMs = 10_000;
/// Waiting records at most (a flood of witnesses must not grow memory).
const KEPT: usize = 16_384;

/// Forged failures waiting for a witness, and witnesses waiting for a forged failure.
#[derive(Debug, Default)]
pub struct Corroboration {
    forged: VecDeque<(UnixMs, Suspects)>,
    witnesses: VecDeque<(UnixMs, LogEvent)>,
}

fn agree(at: UnixMs, suspects: &Suspects, witness_at: UnixMs, witness: &LogEvent) -> bool {
    matches!(suspects.outcome, Outcome::Failure(_))
        && matches!(witness.outcome, Outcome::Failure(_))
        && suspects.service == witness.service
        && (at - witness_at).abs() <= WITHIN_MS
        && witness.ip.is_some_and(|ip| suspects.addresses.contains(&ip))
}

impl Corroboration {
    /// A forged record: the witnessed failure to count for it, when exactly one of its
    /// suspects has a witness; otherwise, if none has, it waits for one.
    pub fn forged(&mut self, suspects: &Suspects) -> Option<LogEvent> {
        let at = suspects.at?;
        self.forget_before(at);
        let mut named = self.witnesses.iter().enumerate().filter(|(_, (t, w))| agree(at, suspects, *t, w));
        let Some((first, (_, witness))) = named.next() else {
            if matches!(suspects.outcome, Outcome::Failure(_)) {
                self.forged.push_back((at, suspects.clone()));
                self.cap();
            }
            return None;
        };
        let ip = witness.ip;
        // Witnesses for two suspects: both sent something; the record still names no one.
        if named.any(|(_, (_, w))| w.ip != ip) {
            return None;
        }
        self.witnesses.remove(first).map(|(_, w)| w)
    }

    /// A failure the security log counts, from another record: whether it settles a
    /// waiting forged record (then it counts, once, for that attempt). Otherwise it
    /// waits as a witness.
    pub fn witness(&mut self, at: UnixMs, event: &LogEvent) -> bool {
        if !matches!(event.outcome, Outcome::Failure(_)) || event.ip.is_none() {
            return false;
        }
        self.forget_before(at);
        if let Some(i) = self.forged.iter().position(|(t, s)| agree(*t, s, at, event)) {
            self.forged.remove(i);
            return true;
        }
        self.witnesses.push_back((at, event.clone()));
        self.cap();
        false
    }

    /// The addresses forged records waiting for a witness name.
    pub fn suspects_waiting(&self) -> Vec<std::net::IpAddr> {
        self.forged.iter().flat_map(|(_, s)| s.addresses.iter().copied()).collect()
    }

    /// Records waiting, for tests and health.
    pub fn waiting(&self) -> (usize, usize) {
        (self.forged.len(), self.witnesses.len())
    }

    fn forget_before(&mut self, now: UnixMs) {
        let stale = now - KEPT_MS;
        while self.forged.front().is_some_and(|(t, _)| *t < stale) {
            self.forged.pop_front();
        }
        while self.witnesses.front().is_some_and(|(t, _)| *t < stale) {
            self.witnesses.pop_front();
        }
    }

    fn cap(&mut self) {
        while self.forged.len() > KEPT {
            self.forged.pop_front();
        }
        while self.witnesses.len() > KEPT {
            self.witnesses.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use super::*;
    use crate::domain::{FailureKind, Service};

    const AT: UnixMs = 1_796_161_796_000;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn suspects(at: UnixMs, addresses: &[&str]) -> Suspects {
        Suspects {
            at: Some(at),
            service: Service::Pjsip,
            outcome: Outcome::Failure(FailureKind::WrongPassword),
            addresses: addresses.iter().map(|a| ip(a)).collect(),
        }
    }

    fn line(address: &str, service: Service) -> LogEvent {
        LogEvent {
            at: Some(AT),
            ip: Some(ip(address)),
            service,
            account: Some("1001".into()),
            outcome: Outcome::Failure(FailureKind::WrongPassword),
            tampered: false,
            security_event: false,
            session: None,
        }
    }

    #[test]
    fn the_messages_line_of_the_attempt_names_the_sender_whichever_comes_first() {
        let forged = suspects(AT, &["6.6.6.6", "10.98.0.77"]);
        // Security log first: the forged record waits, the line settles it.
        let mut c = Corroboration::default();
        assert_eq!(c.forged(&forged), None);
        assert!(c.witness(AT + 400, &line("10.98.0.77", Service::Pjsip)));
        assert_eq!(c.waiting(), (0, 0));
        // Messages log first: the line waits, the forged record finds it.
        let mut c = Corroboration::default();
        assert!(!c.witness(AT - 900, &line("10.98.0.77", Service::Pjsip)));
        let counted = c.forged(&forged).expect("settled by the waiting line");
        assert_eq!(counted.ip, Some(ip("10.98.0.77")));
        assert_eq!(c.waiting(), (0, 0), "each settles one other record only");
    }

    #[test]
    fn no_witness_leaves_the_record_forged_and_counted_against_no_one() {
        let forged = suspects(AT, &["6.6.6.6", "10.98.0.77"]);
        let mut c = Corroboration::default();
        // Another address, another service, too far apart in time: no witnesses.
        assert!(!c.witness(AT, &line("192.0.2.9", Service::Pjsip)));
        assert!(!c.witness(AT, &line("10.98.0.77", Service::Sip)));
        assert!(!c.witness(AT - WITHIN_MS - 1, &line("10.98.0.77", Service::Pjsip)));
        assert_eq!(c.forged(&forged), None);
        // A later line of the forged address only after the window: no settling.
        assert!(!c.witness(AT + WITHIN_MS + 1, &line("6.6.6.6", Service::Pjsip)));
    }

    #[test]
    fn witnesses_for_two_suspects_settle_nothing() {
        let mut c = Corroboration::default();
        assert!(!c.witness(AT, &line("10.98.0.77", Service::Pjsip)));
        assert!(!c.witness(AT, &line("6.6.6.6", Service::Pjsip)));
        assert_eq!(c.forged(&suspects(AT, &["6.6.6.6", "10.98.0.77"])), None);
    }

    #[test]
    fn a_forged_success_is_never_settled() {
        let mut forged = suspects(AT, &["6.6.6.6", "10.98.0.77"]);
        forged.outcome = Outcome::Success;
        let mut c = Corroboration::default();
        assert_eq!(c.forged(&forged), None);
        assert!(!c.witness(AT, &line("10.98.0.77", Service::Pjsip)));
    }

    #[test]
    fn waiting_records_are_forgotten_after_a_while_and_never_grow_past_the_cap() {
        let mut c = Corroboration::default();
        assert_eq!(c.forged(&suspects(AT, &["6.6.6.6", "10.98.0.77"])), None);
        for i in 0..(KEPT as i64 + 10) {
            c.witness(AT + KEPT_MS + 1 + i / 1000, &line("192.0.2.1", Service::Pjsip));
        }
        assert_eq!(c.waiting(), (0, KEPT));
    }
}
