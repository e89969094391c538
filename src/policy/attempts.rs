//! One attempt, one failure. Asterisk can report one refused request several times:
//! a pjsip REGISTER refused by an endpoint ACL logs FailedACL, a challenge, FailedACL
//! again and ChallengeResponseFailed, all under one Call-ID; chan_sip logs FailedACL
//! twice for one REGISTER. Events of one conversation (address and SessionID) are one
//! attempt until a second password (or account) outcome shows a new request in it: a
//! cracker that reuses its Call-ID for every guess still has every guess counted.

use std::collections::HashMap;
use std::net::IpAddr;

#[cfg(doc)]
use crate::domain::LogEvent;
use crate::domain::UnixMs;

/// How long a conversation stays open without events: SIP's transaction timeout
/// (64 × T1), after which a retry is a new attempt anyway.
pub const ATTEMPT_SPAN_MS: UnixMs = 32_000;
/// Open conversations kept before the stale ones are dropped.
const PRUNE_ABOVE: usize = 4096;

#[derive(Debug, Clone, Copy)]
struct Open {
    last_at: UnixMs,
    /// A password or account outcome closed a request of this conversation.
    answered: bool,
}

/// Conversations seen recently. Cloned at the start of a transaction and kept only
/// when it commits, so records read again after a failed write are judged alike.
#[derive(Debug, Clone, Default)]
pub struct Attempts {
    open: HashMap<(IpAddr, u64), Open>,
}

impl Attempts {
    /// Whether a failure from `ip` at `at` in conversation `session` is a new attempt
    /// (counted) or another report of one already counted. `preliminary`:
    /// [`LogEvent::is_preliminary`].
    pub fn is_new(&mut self, ip: IpAddr, session: Option<u64>, preliminary: bool, at: UnixMs) -> bool {
        let Some(session) = session else { return true };
        if self.open.len() > PRUNE_ABOVE {
            self.open.retain(|_, o| at - o.last_at <= ATTEMPT_SPAN_MS);
        }
        match self.open.get_mut(&(ip, session)) {
            Some(open) if at - open.last_at <= ATTEMPT_SPAN_MS => {
                open.last_at = at;
                if preliminary {
                    return false;
                }
                let new = open.answered;
                open.answered = true;
                new
            }
            _ => {
                self.open.insert((ip, session), Open { last_at: at, answered: !preliminary });
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{FailureKind, LogEvent, Outcome, Service};

    fn event(kind: FailureKind, session: &str) -> LogEvent {
        LogEvent {
            at: None,
            ip: None,
            service: Service::Pjsip,
            account: None,
            outcome: Outcome::Failure(kind),
            tampered: false,
            security_event: true,
            session: Some(crate::domain::session_key(session)),
        }
    }

    fn counted(events: &[(FailureKind, &str, UnixMs)]) -> usize {
        let mut attempts = Attempts::default();
        let ip: IpAddr = "203.0.113.5".parse().unwrap();
        events
            .iter()
            .map(|(k, s, at)| (event(*k, s), *at))
            .filter(|(e, at)| attempts.is_new(ip, e.session, e.is_preliminary(), *at))
            .count()
    }

    #[test]
    fn an_acl_refused_request_and_its_challenged_retry_count_once() {
        use FailureKind::*;
        // pjsip REGISTER: FailedACL, (ChallengeSent), FailedACL, ChallengeResponseFailed.
        assert_eq!(counted(&[(AclDenied, "c1", 0), (AclDenied, "c1", 3), (WrongPassword, "c1", 4)]), 1);
        // pjsip INVITE towards a trunk: FailedACL three times, then the response.
        let invite =
            [(AclDenied, "c2", 0), (AclDenied, "c2", 1), (AclDenied, "c2", 2), (WrongPassword, "c2", 3)];
        assert_eq!(counted(&invite), 1);
        // chan_sip device_must_match_acl: FailedACL twice in one dialog.
        assert_eq!(counted(&[(NoExtension, "0x7f1", 0), (NoExtension, "0x7f1", 2)]), 1);
    }

    #[test]
    fn every_guess_in_a_reused_call_id_counts() {
        use FailureKind::*;
        // svcrack: one challenge, then a ChallengeResponseFailed per guess, same Call-ID.
        let guesses: Vec<_> = (0..6).map(|i| (WrongPassword, "3625963302", i * 5)).collect();
        assert_eq!(counted(&guesses), 6);
        // Against an ACL-refused endpoint each guess is FailedACL + ChallengeResponseFailed.
        let refused: Vec<_> =
            (0..4).flat_map(|i| [(AclDenied, "c3", i * 10), (WrongPassword, "c3", i * 10 + 1)]).collect();
        assert_eq!(counted(&refused), 4);
    }

    #[test]
    fn other_conversations_and_late_retries_are_new_attempts() {
        use FailureKind::*;
        assert_eq!(counted(&[(AclDenied, "a", 0), (AclDenied, "b", 1), (UnknownAccount, "c", 2)]), 3);
        assert_eq!(counted(&[(AclDenied, "a", 0), (AclDenied, "a", ATTEMPT_SPAN_MS + 1)]), 2);
        let mut attempts = Attempts::default();
        let ip: IpAddr = "203.0.113.5".parse().unwrap();
        assert!(attempts.is_new(ip, None, true, 0) && attempts.is_new(ip, None, true, 0));
    }
}
