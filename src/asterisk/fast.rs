//! Straight-line readers for the three message shapes that make up nearly every
//! failure line. Each one accepts only text on which the strict pattern could
//! match in exactly one way, and returns what that pattern would capture; for
//! anything else it returns `None` and the caller runs the pattern itself. The
//! differential tests below hold the two to the same answers.

use std::sync::LazyLock;

use memchr::memmem::Finder;

use super::address::parse_ip;
use crate::domain::FailureKind;

// Searchers built once: these run for every failure line.
pub static FAILED_FOR: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new("failed for '"));
pub static REMOTE_ADDRESS: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new("RemoteAddress="));
pub static SECURITY_EVENT: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new("SecurityEvent="));
pub static ORIG_HOST: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(";x-ast-orig-host="));
static QUOTE_FAILED_FOR: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new("' failed for '"));
static AFTER: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(" after "));

/// Every reason chan_sip gives for a refused REGISTER, and what it means: the fast
/// path, the strict pattern and the failure kind all read this one list.
pub const SIP_REASONS: [(&str, FailureKind); 10] = [
    ("Wrong password", FailureKind::WrongPassword),
    ("Username/auth name mismatch", FailureKind::WrongPassword),
    ("No matching peer found", FailureKind::UnknownAccount),
    ("Not a local domain", FailureKind::Rejected),
    ("Peer is not supposed to register", FailureKind::Rejected),
    ("Device does not match ACL", FailureKind::AclDenied),
    ("Device not configured to use this transport type", FailureKind::Rejected),
    ("RTP initialization failed", FailureKind::Rejected),
    ("Unknown failure", FailureKind::Rejected),
    ("ACL error (permit/deny)", FailureKind::AclDenied),
];

/// Every reason res_pjsip's distributor gives, the same way.
pub const PJSIP_REASONS: [(&str, FailureKind); 5] = [
    ("No matching endpoint found", FailureKind::UnknownAccount),
    ("Not match Endpoint ACL", FailureKind::AclDenied),
    ("Not match Endpoint Contact ACL", FailureKind::AclDenied),
    ("Failed to authenticate", FailureKind::WrongPassword),
    ("Error to authenticate", FailureKind::Rejected),
];

/// The kind a reason of `reasons` means.
pub fn kind_of(reasons: &[(&str, FailureKind)], reason: &str) -> FailureKind {
    reasons.iter().find(|(r, _)| *r == reason).map_or(FailureKind::Rejected, |(_, k)| *k)
}

/// `reasons` as a regex alternation.
pub fn alternation(reasons: &[(&str, FailureKind)]) -> String {
    reasons.iter().map(|(r, _)| regex::escape(r)).collect::<Vec<_>>().join("|")
}

/// Captured text of one failure line: attacker part, address text, server reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fields<'a> {
    pub who: &'a str,
    pub ip: &'a str,
    pub reason: &'a str,
}

fn is_addr_text(s: &str) -> bool {
    let inner = s.strip_prefix('[').and_then(|t| t.strip_suffix(']')).unwrap_or(s);
    !inner.is_empty() && inner.bytes().all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
}

fn is_port(s: &str) -> bool {
    (1..=5).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit())
}

/// `Registration from '<to>' failed for '<ip>[:port]' - <reason>`.
pub fn registration(msg: &str) -> Option<Fields<'_>> {
    let rest = msg.strip_prefix("Registration from '")?;
    let (head, reason) = SIP_REASONS.iter().find_map(|(r, _)| rest.strip_suffix(r).map(|h| (h, *r)))?;
    let head = head.strip_suffix("' - ")?;
    let at = last_occurrence(&QUOTE_FAILED_FOR, head.as_bytes())?;
    let (to, addr) = (&head[..at], &head[at + "' failed for '".len()..]);
    let ip = match addr.rsplit_once(':') {
        Some((ip, port)) if is_port(port) && (ip.starts_with('[') || !ip.contains(':')) => ip,
        _ if !addr.contains(':') => addr,
        _ => return None,
    };
    (is_addr_text(ip) && parse_ip(ip).is_some() && !to.contains('\n')).then_some(Fields {
        who: to,
        ip,
        reason,
    })
}

/// `Request '<m>' from '<from>' failed for '<ip>:<port>' (callid: <id>) - <reason>[ after N tries in X ms]`.
pub fn pjsip_request(msg: &str) -> Option<Fields<'_>> {
    let rest = msg.strip_prefix("Request ")?;
    let rest = match rest.strip_prefix('\'') {
        Some(r) => {
            let end = r.find('\'')?;
            let method = &r[..end];
            if method.is_empty() || !method.bytes().all(|b| (b'!'..=b'~').contains(&b)) {
                return None;
            }
            r[end + 1..].strip_prefix(" from '")?
        }
        None => rest.strip_prefix("from '")?,
    };
    // From: optional quoted display name without quotes or backslashes inside, then <uri>.
    let mut from_len = 0;
    if let Some(display) = rest.strip_prefix('"') {
        let close = display.find(['"', '\\', '\n'])?;
        if display.as_bytes()[close] != b'"' {
            return None;
        }
        from_len = 1 + close + 1;
        if !rest[from_len..].starts_with(" <") {
            return None;
        }
        from_len += 1;
    }
    let uri = rest[from_len..].strip_prefix('<')?;
    let close = uri.find(|c: char| c == '>' || c == '<' || c.is_whitespace())?;
    if uri.as_bytes()[close] != b'>' {
        return None;
    }
    from_len += 1 + close + 1;
    let from = &rest[..from_len];
    let rest = rest[from_len..].strip_prefix("' failed for '")?;
    let quote = rest.find('\'')?;
    let (ip, port) = rest[..quote].rsplit_once(':')?;
    if !is_port(port) || !is_addr_text(ip) || parse_ip(ip).is_none() {
        return None;
    }
    let rest = rest[quote + 1..].strip_prefix(" (callid: ")?;
    let body = match last_occurrence(&AFTER, rest.as_bytes()) {
        Some(i) if is_tries_suffix(&rest[i..]) => &rest[..i],
        _ => rest,
    };
    let reason = PJSIP_REASONS.iter().map(|(r, _)| *r).find(|r| body.ends_with(r))?;
    let callid = body[..body.len() - reason.len()].strip_suffix(") - ")?;
    (!callid.contains('\n')).then_some(Fields { who: from, ip, reason })
}

/// ` after <N> tries in <d>.<ddd> ms`
fn is_tries_suffix(s: &str) -> bool {
    let Some(rest) = s.strip_prefix(" after ") else {
        return false;
    };
    let Some((n, rest)) = rest.split_once(" tries in ") else {
        return false;
    };
    let Some(num) = rest.strip_suffix(" ms") else {
        return false;
    };
    let Some((int, frac)) = num.split_once('.') else {
        return false;
    };
    !n.is_empty()
        && n.bytes().all(|b| b.is_ascii_digit())
        && !int.is_empty()
        && int.bytes().all(|b| b.is_ascii_digit())
        && frac.len() == 3
        && frac.bytes().all(|b| b.is_ascii_digit())
}

/// `Registered SIP '<peer>' at <ip>:<port>` → (peer, ip text).
pub fn registered(msg: &str) -> Option<(&str, &str)> {
    let rest = msg.strip_prefix("Registered SIP '")?;
    let quote = rest.find(['\'', '\n'])?;
    let (peer, rest) = (&rest[..quote], rest[quote..].strip_prefix("' at ")?);
    let (ip, port) = rest.rsplit_once(':')?;
    (is_port(port)
        && is_addr_text(ip)
        && (ip.starts_with('[') || !ip.contains(':'))
        && parse_ip(ip).is_some())
    .then_some((peer, ip))
}

/// Start of the last occurrence of `needle`, overlapping ones included: what a reverse
/// search answers, from forward searches (which are vectorised; reverse ones are not).
pub fn last_occurrence(needle: &Finder<'_>, haystack: &[u8]) -> Option<usize> {
    let mut last = needle.find(haystack)?;
    while let Some(i) = needle.find(&haystack[last + 1..]) {
        last += 1 + i;
    }
    Some(last)
}

pub fn occurs_more_than_once(haystack: &str, needle: &Finder<'_>) -> bool {
    needle.find(haystack.as_bytes()).is_some_and(|first| {
        let next = first + needle.needle().len();
        needle.find(&haystack.as_bytes()[next..]).is_some()
    })
}

#[cfg(test)]
mod tests {
    use memchr::memmem::FinderRev;
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn last_occurrence_is_what_a_reverse_search_finds(hay in "[' afiledor]{0,60}") {
            for needle in ["' failed for '", " after ", "''", "' '"] {
                let forward = Finder::new(needle);
                prop_assert_eq!(last_occurrence(&forward, hay.as_bytes()), FinderRev::new(needle).rfind(hay.as_bytes()));
            }
        }
    }

    #[test]
    fn last_occurrence_counts_overlapping_ones() {
        let quote_failed = Finder::new("' failed for '");
        assert_eq!(last_occurrence(&quote_failed, b"x' failed for ' failed for 'y"), Some(14));
        assert_eq!(last_occurrence(&quote_failed, b"nothing"), None);
    }
}
