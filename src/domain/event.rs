use std::net::IpAddr;

use super::UnixMs;

/// The Asterisk service an authentication attempt was made against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub enum Service {
    Sip,
    Pjsip,
    Ami,
    Iax2,
    /// The dialplan refusing a call (FreePBX's "Rejecting unknown SIP connection").
    Dialplan,
    /// sipwarden's own panel refusing a login.
    Panel,
    Other,
}

impl Service {
    pub fn as_str(self) -> &'static str {
        match self {
            Service::Sip => "SIP",
            Service::Pjsip => "PJSIP",
            Service::Ami => "AMI",
            Service::Iax2 => "IAX2",
            Service::Dialplan => "DIALPLAN",
            Service::Panel => "PANEL",
            Service::Other => "OTHER",
        }
    }

    pub fn parse(s: &str) -> Service {
        match s {
            "SIP" => Service::Sip,
            "PJSIP" => Service::Pjsip,
            "AMI" => Service::Ami,
            "IAX2" => Service::Iax2,
            "DIALPLAN" => Service::Dialplan,
            "PANEL" => Service::Panel,
            _ => Service::Other,
        }
    }

    /// Services that also emit security events: when a security log of the same
    /// Asterisk is a source, their messages-log lines are not counted a second time.
    pub fn has_security_events(self) -> bool {
        matches!(self, Service::Sip | Service::Pjsip | Service::Ami)
    }
}

/// Why Asterisk refused the attempt, reduced to what an admin acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum FailureKind {
    WrongPassword,
    UnknownAccount,
    AclDenied,
    NoExtension,
    Rejected,
}

impl FailureKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::WrongPassword => "wrong_password",
            FailureKind::UnknownAccount => "unknown_account",
            FailureKind::AclDenied => "acl_denied",
            FailureKind::NoExtension => "no_extension",
            FailureKind::Rejected => "rejected",
        }
    }

    pub fn parse(s: &str) -> Option<FailureKind> {
        Some(match s {
            "wrong_password" => FailureKind::WrongPassword,
            "unknown_account" => FailureKind::UnknownAccount,
            "acl_denied" => FailureKind::AclDenied,
            "no_extension" => FailureKind::NoExtension,
            "rejected" => FailureKind::Rejected,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Outcome {
    Failure(FailureKind),
    /// A successful authentication: the address is a known-good client for a while.
    Success,
}

/// One authentication outcome read from a log record.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LogEvent {
    /// When Asterisk logged it; `None` when the record's date could not be read.
    pub at: Option<UnixMs>,
    /// The packet source Asterisk printed. `None` only for a tampered record whose
    /// real sender cannot be located: such a record is never attributed.
    pub ip: Option<IpAddr>,
    pub service: Service,
    /// Account / user name tried. Attacker-controlled text.
    pub account: Option<String>,
    pub outcome: Outcome,
    /// The record showed signs of injection (split lines, repeated address fields,
    /// or text that failed the strict pattern).
    pub tampered: bool,
    /// Came from a security event rather than a module's own log line.
    pub security_event: bool,
    /// The conversation Asterisk names (a security event's SessionID: a pjsip Call-ID,
    /// a chan_sip dialog, an AMI connection), hashed: the events of one attempt share it.
    pub session: Option<u64>,
}

/// A SessionID as [`LogEvent::session`] keeps it: the same in every process.
pub fn session_key(text: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::hash::DefaultHasher::new();
    text.hash(&mut hasher);
    hasher.finish()
}

impl LogEvent {
    pub fn is_failure(&self) -> bool {
        matches!(self.outcome, Outcome::Failure(_))
    }

    /// A report Asterisk writes on its way to the attempt's outcome: pjsip answers
    /// an ACL-refused request with a challenge and reports the retry's failure too,
    /// chan_sip reports one ACL refusal twice, the manager logs a nonexistent user
    /// before it logs the failed login.
    pub fn is_preliminary(&self) -> bool {
        match self.outcome {
            Outcome::Failure(FailureKind::AclDenied | FailureKind::NoExtension) => self.security_event,
            Outcome::Failure(FailureKind::UnknownAccount) => {
                self.service == Service::Ami && !self.security_event
            }
            _ => false,
        }
    }
}

/// A security event whose values forged an address: readings of it that hold name
/// different senders. One of `addresses` sent the packet; another record of the same
/// attempt (the messages log's line) may tell which.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Suspects {
    /// The event's own time (EventTV).
    pub at: Option<UnixMs>,
    pub service: Service,
    pub outcome: Outcome,
    pub addresses: Vec<IpAddr>,
}
