//! security.log events (REFERENCE §2.6), read field by field in Asterisk's canonical
//! order. Values are not escaped by Asterisk, so server-side fields are matched by
//! type and only attacker fields (AccountID, SessionID, challenges, request text)
//! are free text; the record must end right after the last expected field.

use std::sync::LazyLock;

use regex::Regex;

use super::address::parse_security_address;
use super::messages::Parsed;
use crate::domain::{FailureKind, Outcome, Service, UnixMs};

const TV: &str = r"(?:\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?[+-]\d{4}|\d+-\d+)";
const ADDR: &str = r"IPV[46]/(?:(?:UDP|TCP|TLS|WS|WSS)/)?[0-9A-Fa-f.:]+/\d{1,5}";

struct EventPattern {
    name: &'static str,
    regex: Regex,
    outcome: Outcome,
}

fn opt(key: &str, value: &str) -> String {
    format!(r#"(?:,{key}="{value}")?"#)
}

fn req(key: &str, value: &str) -> String {
    format!(r#",{key}="{value}""#)
}

/// Field lists after RemoteAddress for each event counted (or learned from).
static EVENTS: LazyLock<Vec<EventPattern>> = LazyLock::new(|| {
    let free = "(?:.*?)";
    let module = opt("Module", r#"[^"\n]*"#);
    let session_tv = opt("SessionTV", TV);
    let common_tail = format!("{module}{session_tv}");
    let table: Vec<(&'static str, String, Outcome, bool)> = vec![
        (
            "InvalidPassword",
            format!(
                "{common_tail}{}{}{}",
                opt("Challenge", free),
                opt("ReceivedChallenge", free),
                opt("ReceivedHash", free)
            ),
            Outcome::Failure(FailureKind::WrongPassword),
            true,
        ),
        (
            "ChallengeResponseFailed",
            format!(
                "{}{}{}{common_tail}",
                req("Challenge", free),
                req("Response", free),
                req("ExpectedResponse", free)
            ),
            Outcome::Failure(FailureKind::WrongPassword),
            true,
        ),
        (
            "InvalidAccountID",
            common_tail.clone(),
            Outcome::Failure(FailureKind::UnknownAccount),
            true,
        ),
        (
            "FailedACL",
            format!(
                "{module}{}{session_tv}",
                opt("ACLName", r#"(?P<acl>[^"\n]*)"#)
            ),
            Outcome::Failure(FailureKind::AclDenied),
            true,
        ),
        (
            "InvalidTransport",
            format!("{}{common_tail}", req("AttemptedTransport", free)),
            Outcome::Failure(FailureKind::Rejected),
            true,
        ),
        (
            "RequestBadFormat",
            format!(
                "{}{common_tail}{}{}",
                req("RequestType", free),
                opt("AccountID", r"(?P<acct2>.*?)"),
                opt("RequestParams", free)
            ),
            Outcome::Failure(FailureKind::Rejected),
            false,
        ),
        (
            "SuccessfulAuth",
            format!("{}{common_tail}", req("UsingPassword", r"\d+")),
            Outcome::Success,
            true,
        ),
    ];
    table
        .into_iter()
        .map(|(name, tail, outcome, account_required)| {
            let account = if account_required { r#",AccountID="(?P<acct>.*?)""# } else { "" };
            let pattern = format!(
                r#"(?s)^SecurityEvent="{name}",EventTV="(?P<tv>{TV})",Severity="(?:Error|Informational)",Service="(?P<service>[A-Za-z0-9_]+)",EventVersion="\d+"{account},SessionID="(?:.*?)",LocalAddress="{ADDR}",RemoteAddress="(?P<remote>{ADDR})"{tail}$"#
            );
            EventPattern {
                name,
                regex: Regex::new(&pattern).expect("security event pattern compiles"),
                outcome,
            }
        })
        .collect()
});

/// Result of reading one security record.
#[derive(Debug, PartialEq, Eq)]
pub enum SecurityRecord {
    /// An event sipwarden counts or learns from, with the EventTV when readable.
    Event(Parsed, Option<UnixMs>),
    /// A well-formed event of a type that is not an authentication outcome
    /// (ChallengeSent, SessionLimit, ...).
    Other,
    /// Does not match its event's canonical structure (yet): possibly split by an
    /// injected newline, or forged.
    Malformed,
}

fn event_name(msg: &str) -> Option<&str> {
    let rest = msg.strip_prefix("SecurityEvent=\"")?;
    Some(&rest[..rest.find('"')?])
}

pub fn parse(msg: &str, multi_line: bool) -> SecurityRecord {
    let Some(name) = event_name(msg) else {
        return SecurityRecord::Malformed;
    };
    let Some(pattern) = EVENTS.iter().find(|e| e.name == name) else {
        return if is_well_formed_other(msg) {
            SecurityRecord::Other
        } else {
            SecurityRecord::Malformed
        };
    };
    let Some(c) = pattern.regex.captures(msg) else {
        return SecurityRecord::Malformed;
    };
    let Some(ip) = c
        .name("remote")
        .and_then(|m| parse_security_address(m.as_str()))
    else {
        return SecurityRecord::Malformed;
    };
    let service = Service::parse(c.name("service").map_or("", |m| m.as_str()));
    let outcome = match (pattern.outcome, c.name("acl").map(|m| m.as_str())) {
        (Outcome::Failure(_), Some("no_extension_match")) => {
            Outcome::Failure(FailureKind::NoExtension)
        }
        (o, _) => o,
    };
    let account = c
        .name("acct")
        .or_else(|| c.name("acct2"))
        .map(|m| m.as_str().to_owned())
        // `<unknown>` is pjsip's artificial endpoint, not a name anyone tried.
        .filter(|a| !a.is_empty() && a != "<unknown>");
    let tampered = multi_line
        || msg.matches("RemoteAddress=").count() > 1
        || msg.matches("SecurityEvent=").count() > 1;
    let at = c.name("tv").and_then(|m| parse_event_tv(m.as_str()));
    SecurityRecord::Event(
        Parsed {
            ip: Some(ip),
            service,
            account,
            outcome,
            tampered,
        },
        at,
    )
}

/// Events we do not count still need a recognisable RemoteAddress to be "complete";
/// otherwise a split record could hide the next lines.
fn is_well_formed_other(msg: &str) -> bool {
    static OTHER: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(&format!(
            r#"(?s)^SecurityEvent="[A-Za-z]+",EventTV="{TV}",Severity="[A-Za-z]+",Service="[A-Za-z0-9_]+",EventVersion="\d+",.*RemoteAddress="{ADDR}"(?:,[A-Za-z]+=".*?")*$"#
        ))
        .expect("pattern compiles")
    });
    OTHER.is_match(msg)
}

fn parse_event_tv(tv: &str) -> Option<UnixMs> {
    if !tv.contains('T') {
        let (sec, usec) = tv.split_once('-')?;
        // Asterisk 1.8/11: "<sec>-<usec>", usec not zero-padded.
        let sec: i64 = sec.parse().ok()?;
        let usec: i64 = usec.parse().ok()?;
        return Some(sec * 1000 + usec / 1000);
    }
    chrono::DateTime::parse_from_str(tv, "%Y-%m-%dT%H:%M:%S%.f%z")
        .ok()
        .map(|d| d.timestamp_millis())
}
