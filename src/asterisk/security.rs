//! security.log events (docs/ASTERISK.md §2.6), read field by field in Asterisk's canonical
//! order. Values are not escaped by Asterisk, so server-side fields are matched by
//! type and only attacker fields (AccountID, SessionID, challenges, request text)
//! are free text; the record must end right after the last expected field.

use std::sync::LazyLock;

use super::address::parse_security_address;
use super::attribution::{Attribution, Grammar, SessionId, Tail, attribute};
use super::messages::Parsed;
use crate::domain::{FailureKind, Outcome, Service, Suspects, UnixMs};

pub(super) const TV: &str = r"(?:\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?[+-]\d{4}|\d+-\d+)";

/// One counted (or learned-from) event: the fields Asterisk writes after
/// RemoteAddress, required ones first, then the optional ones in canonical order.
pub(super) struct EventSpec {
    pub(super) name: &'static str,
    outcome: Outcome,
    pub(super) account_required: bool,
    pub(super) required: &'static [(&'static str, Grammar)],
    pub(super) optional: &'static [(&'static str, Grammar)],
}

const MODULE: (&str, Grammar) = ("Module", Grammar::Quoteless);
const SESSION_TV: (&str, Grammar) = ("SessionTV", Grammar::Tv);

pub(super) static SPECS: [EventSpec; 7] = [
    EventSpec {
        name: "InvalidPassword",
        outcome: Outcome::Failure(FailureKind::WrongPassword),
        account_required: true,
        required: &[],
        optional: &[
            MODULE,
            SESSION_TV,
            ("Challenge", Grammar::Digest),
            ("ReceivedChallenge", Grammar::Digest),
            ("ReceivedHash", Grammar::Digest),
        ],
    },
    EventSpec {
        name: "ChallengeResponseFailed",
        outcome: Outcome::Failure(FailureKind::WrongPassword),
        account_required: true,
        required: &[
            ("Challenge", Grammar::Digest),
            ("Response", Grammar::Digest),
            ("ExpectedResponse", Grammar::Quoteless),
        ],
        optional: &[MODULE, SESSION_TV],
    },
    EventSpec {
        name: "InvalidAccountID",
        outcome: Outcome::Failure(FailureKind::UnknownAccount),
        account_required: true,
        required: &[],
        optional: &[MODULE, SESSION_TV],
    },
    EventSpec {
        name: "FailedACL",
        outcome: Outcome::Failure(FailureKind::AclDenied),
        account_required: true,
        required: &[],
        optional: &[MODULE, ("ACLName", Grammar::Quoteless), SESSION_TV],
    },
    EventSpec {
        name: "InvalidTransport",
        outcome: Outcome::Failure(FailureKind::Rejected),
        account_required: true,
        required: &[("AttemptedTransport", Grammar::Quoteless)],
        optional: &[MODULE, SESSION_TV],
    },
    EventSpec {
        name: "RequestBadFormat",
        outcome: Outcome::Failure(FailureKind::Rejected),
        account_required: false,
        required: &[("RequestType", Grammar::Free)],
        optional: &[MODULE, SESSION_TV, ("AccountID", Grammar::Free), ("RequestParams", Grammar::Free)],
    },
    EventSpec {
        name: "SuccessfulAuth",
        outcome: Outcome::Success,
        account_required: true,
        required: &[("UsingPassword", Grammar::Digits)],
        optional: &[MODULE, SESSION_TV],
    },
];

/// `TV` without a regex: `2026-11-24T21:04:50.544+0000` or the old `<sec>-<usec>`.
pub(super) fn is_event_tv(v: &str) -> bool {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if let Some((_, usec)) = v.split_once('-').filter(|(s, _)| !v.contains('T') && digits(s)) {
        return digits(usec);
    }
    let b = v.as_bytes();
    let at = |i: usize, c: u8| b.get(i) == Some(&c);
    let num = |r: std::ops::Range<usize>| v.get(r).is_some_and(digits);
    if !(b.len() >= 24 && num(0..4) && at(4, b'-') && num(5..7) && at(7, b'-') && num(8..10) && at(10, b'T'))
    {
        return false;
    }
    if !(num(11..13) && at(13, b':') && num(14..16) && at(16, b':') && num(17..19)) {
        return false;
    }
    let mut rest = &v[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        let n = frac.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 {
            return false;
        }
        rest = &frac[n..];
    }
    let zone = rest.as_bytes();
    zone.len() == 5 && (zone[0] == b'+' || zone[0] == b'-') && zone[1..].iter().all(u8::is_ascii_digit)
}

/// `ADDR` without a regex: `IPV4/UDP/1.2.3.4/5060`, `IPV6/2001:db8::1/5060`.
pub(super) fn is_event_address(v: &str) -> bool {
    let Some(rest) = v.strip_prefix("IPV4/").or_else(|| v.strip_prefix("IPV6/")) else {
        return false;
    };
    let rest =
        ["UDP/", "TCP/", "TLS/", "WSS/", "WS/"].iter().find_map(|t| rest.strip_prefix(t)).unwrap_or(rest);
    let Some(slash) = memchr::memrchr(b'/', rest.as_bytes()) else {
        return false;
    };
    let (addr, port) = (&rest[..slash], &rest[slash + 1..]);
    !addr.is_empty()
        && addr.bytes().all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        && (1..=5).contains(&port.len())
        && port.bytes().all(|b| b.is_ascii_digit())
}

/// The fields after RemoteAddress of each event: `[0]` as most services write them,
/// `[1]` for AMI, whose ChallengeResponseFailed Response is the client's `Key:` verbatim.
static TAILS: LazyLock<Vec<[Tail; 2]>> = LazyLock::new(|| {
    SPECS
        .iter()
        .map(|spec| {
            let ami = |fields: &[(&'static str, Grammar)]| -> Vec<(&'static str, Grammar)> {
                fields.iter().map(|&(k, g)| (k, if k == "Response" { Grammar::Free } else { g })).collect()
            };
            [Tail::new(spec.required, spec.optional), Tail::new(&ami(spec.required), &ami(spec.optional))]
        })
        .collect()
});

/// What the strict reading of an event captures.
#[derive(Debug, PartialEq, Eq)]
struct Captured<'a> {
    tv: &'a str,
    service: &'a str,
    account: Option<&'a str>,
    session: &'a str,
    remote: &'a str,
    acl: Option<&'a str>,
}

/// Straight-line reading for records whose values hold no `"`: then every value ends
/// at the next quote and the strict pattern can match only this way.
fn read_quoteless<'a>(spec: &EventSpec, msg: &'a str) -> Option<Captured<'a>> {
    let mut pairs: [(&str, &str); 24] = [("", ""); 24];
    let mut n = 0;
    // `Key="value"` joined by commas: with no quote inside values, quotes alternate
    // opening and closing, found in one pass.
    let bytes = msg.as_bytes();
    let mut quotes = memchr::memchr_iter(b'"', bytes);
    let mut key_start = 0;
    loop {
        let open = quotes.next()?;
        let key = msg.get(key_start..open.checked_sub(1)?)?;
        // A key holding `=` or `"` names no field: matching the expected names below
        // turns such a record away.
        if bytes[open - 1] != b'=' || n == pairs.len() {
            return None;
        }
        let close = quotes.next()?;
        pairs[n] = (key, &msg[open + 1..close]);
        n += 1;
        match bytes.get(close + 1) {
            None => break,
            Some(b',') => key_start = close + 2,
            Some(_) => return None,
        }
    }
    read_pairs(spec, &pairs[..n])
}

/// Reads an event's `(key, value)` pairs in Asterisk's canonical order, the first being
/// `SecurityEvent`; every pair must be expected and valid.
fn read_pairs<'a>(spec: &EventSpec, pairs: &[(&'a str, &'a str)]) -> Option<Captured<'a>> {
    let mut i = 0;
    let mut take = |key: &str| -> Option<&'a str> {
        let (k, v) = *pairs.get(i)?;
        (k == key).then(|| {
            i += 1;
            v
        })
    };
    take("SecurityEvent").filter(|v| *v == spec.name)?;
    let tv = take("EventTV").filter(|v| Grammar::Tv.accepts(v))?;
    take("Severity").filter(|v| is_severity(v))?;
    let service = take("Service").filter(|v| is_service_name(v))?;
    take("EventVersion").filter(|v| Grammar::Digits.accepts(v))?;
    let mut account = if spec.account_required { Some(take("AccountID")?) } else { None };
    let session = take("SessionID")?;
    take("LocalAddress").filter(|v| is_event_address(v))?;
    let remote = take("RemoteAddress").filter(|v| is_event_address(v))?;
    for (key, value) in spec.required {
        take(key).filter(|v| value.accepts(v))?;
    }
    let mut acl = None;
    for (key, value) in spec.optional {
        if let Some(v) = take(key) {
            if !value.accepts(v) {
                return None;
            }
            match *key {
                "AccountID" => account = Some(v),
                "ACLName" => acl = Some(v),
                _ => {}
            }
        }
    }
    (i == pairs.len()).then_some(Captured { tv, service, account, session, remote, acl })
}

fn is_severity(v: &str) -> bool {
    v == "Error" || v == "Informational"
}

fn is_service_name(v: &str) -> bool {
    !v.is_empty() && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// The fixed fields Asterisk writes before any attacker text: `(EventTV, Service, rest)`.
fn header<'a>(spec: &EventSpec, msg: &'a str) -> Option<(&'a str, &'a str, &'a str)> {
    let rest = msg.strip_prefix("SecurityEvent=\"")?.strip_prefix(spec.name)?;
    let value = |rest: &mut &'a str, key: &str| -> Option<&'a str> {
        let after = rest.strip_prefix("\",")?.strip_prefix(key)?.strip_prefix("=\"")?;
        let end = after.find('"')?;
        *rest = &after[end..];
        Some(&after[..end])
    };
    let mut rest = rest;
    let tv = value(&mut rest, "EventTV").filter(|v| is_event_tv(v))?;
    value(&mut rest, "Severity").filter(|v| is_severity(v))?;
    let service = value(&mut rest, "Service").filter(|v| is_service_name(v))?;
    value(&mut rest, "EventVersion").filter(|v| Grammar::Digits.accepts(v))?;
    Some((tv, service, rest.strip_prefix('"')?))
}

/// Reading for records whose values hold quotes: see [`super::attribution`]. The
/// error is `Malformed` or `Forged`.
fn read_quoted(index: usize, msg: &str) -> Result<(Captured<'_>, usize), SecurityRecord> {
    let spec = &SPECS[index];
    let (tv, service, body) = header(spec, msg).ok_or(SecurityRecord::Malformed)?;
    let session = match service {
        "SIP" | "AMI" => SessionId::Pointer,
        _ => SessionId::Free,
    };
    let tail = &TAILS[index][usize::from(service == "AMI")];
    match attribute(body, spec.account_required, session, tail) {
        Attribution::Sender(r, readings) => Ok((
            Captured { tv, service, account: r.account, session: r.session, remote: r.remote, acl: r.acl },
            readings,
        )),
        Attribution::Forged(senders) => Err(SecurityRecord::Forged(Suspects {
            at: parse_event_tv(tv),
            service: Service::parse(service),
            outcome: spec.outcome,
            addresses: senders.into_iter().filter_map(parse_security_address).collect(),
        })),
        Attribution::NoReading => Err(SecurityRecord::Malformed),
    }
}

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
    /// Complete, but readings that hold name different senders: attacker text forged
    /// an address and the record alone cannot tell which one sent the packet. Counted
    /// against no one unless another record of the attempt names one of them.
    Forged(Suspects),
}

fn event_name(msg: &str) -> Option<&str> {
    let rest = msg.strip_prefix("SecurityEvent=\"")?;
    Some(&rest[..rest.find('"')?])
}

pub fn parse(msg: &str, multi_line: bool) -> SecurityRecord {
    let Some(name) = event_name(msg) else {
        return SecurityRecord::Malformed;
    };
    let Some(index) = SPECS.iter().position(|e| e.name == name) else {
        return if is_well_formed_other(msg) { SecurityRecord::Other } else { SecurityRecord::Malformed };
    };
    let spec = &SPECS[index];
    let (c, quoteless, readings) = match read_quoteless(spec, msg) {
        Some(c) => (c, true, 1),
        None => match read_quoted(index, msg) {
            Ok((c, readings)) => (c, false, readings),
            Err(record) => return record,
        },
    };
    let tampered = multi_line
        || readings > 1
        || (!(quoteless && only_separators_hold_equals(msg))
            && (super::fast::occurs_more_than_once(msg, &super::fast::REMOTE_ADDRESS)
                || super::fast::occurs_more_than_once(msg, &super::fast::SECURITY_EVENT)));
    event(spec, &c, tampered)
}

/// A security event as the manager interface sends it: `(header, value)` pairs after
/// `Event` and `Privilege`, each its own line. The block has been checked for repeated
/// headers and line breaks in values; here every header must be the expected one in
/// Asterisk's order.
pub fn from_manager(name: &str, headers: &[(&str, &str)]) -> SecurityRecord {
    let Some(spec) = SPECS.iter().find(|e| e.name == name) else {
        return SecurityRecord::Other;
    };
    let mut pairs = Vec::with_capacity(headers.len() + 1);
    pairs.push(("SecurityEvent", name));
    pairs.extend_from_slice(headers);
    match read_pairs(spec, &pairs) {
        Some(c) => event(spec, &c, false),
        None => SecurityRecord::Malformed,
    }
}

fn event(spec: &EventSpec, c: &Captured<'_>, tampered: bool) -> SecurityRecord {
    let Some(ip) = parse_security_address(c.remote) else {
        return SecurityRecord::Malformed;
    };
    let outcome = match (spec.outcome, c.acl) {
        (Outcome::Failure(_), Some("no_extension_match")) => Outcome::Failure(FailureKind::NoExtension),
        (o, _) => o,
    };
    let account = c
        .account
        // `<unknown>` is pjsip's artificial endpoint, not a name anyone tried.
        .filter(|a| !a.is_empty() && *a != "<unknown>")
        .map(str::to_owned);
    SecurityRecord::Event(
        Parsed {
            ip: Some(ip),
            service: Service::parse(c.service),
            account,
            outcome,
            tampered,
            session: Some(crate::domain::session_key(c.session)),
        },
        parse_event_tv(c.tv),
    )
}

/// For a record read straight (`Key="value"` pairs, no quote in a value, no `=` in a
/// key): true when every `=` is a pair's own, so no value can hold a second
/// `RemoteAddress=` or `SecurityEvent=`. Two counts are quicker than those searches.
fn only_separators_hold_equals(msg: &str) -> bool {
    let count = |b: u8| memchr::memchr_iter(b, msg.as_bytes()).count();
    count(b'=') * 2 == count(b'"')
}

/// Events we do not count still need an address pair Asterisk could have written, and
/// a closed last value, to be "complete"; otherwise a split record could hide the next
/// lines. Any such pair will do: their request text (RequestParams) may hold a broken
/// one after the real one, which must not make the record swallow real events.
fn is_well_formed_other(msg: &str) -> bool {
    msg.starts_with("SecurityEvent=\"") && msg.ends_with('"') && super::attribution::has_address_pair(msg)
}

fn parse_event_tv(tv: &str) -> Option<UnixMs> {
    if !tv.contains('T') {
        let (sec, usec) = tv.split_once('-')?;
        // Asterisk 1.8/11: "<sec>-<usec>", usec not zero-padded.
        let sec: i64 = sec.parse().ok()?;
        let usec: i64 = usec.parse().ok()?;
        // Attacker-influenced length: an absurd number is no time, not an overflow.
        return sec.checked_mul(1000)?.checked_add(usec / 1000);
    }
    // 2026-11-24T21:04:50.544+0000, already checked by `is_event_tv`.
    let num = |r: std::ops::Range<usize>| tv.get(r)?.parse::<u32>().ok();
    let date = chrono::NaiveDate::from_ymd_opt(num(0..4)? as i32, num(5..7)?, num(8..10)?)?;
    let mut ms = date.and_hms_opt(num(11..13)?, num(14..16)?, num(17..19)?)?.and_utc().timestamp_millis();
    let mut rest = &tv[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        let n = frac.bytes().take_while(u8::is_ascii_digit).count();
        // First three digits, right-padded with zeros: ".5" is 500 ms.
        let mut millis = 0i64;
        for i in 0..3 {
            millis =
                millis * 10 + frac.as_bytes().get(i).filter(|_| i < n).map_or(0, |d| i64::from(d - b'0'));
        }
        ms += millis;
        rest = &frac[n..];
    }
    let sign = match rest.as_bytes().first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let (hh, mm): (i64, i64) = (rest.get(1..3)?.parse().ok()?, rest.get(3..5)?.parse().ok()?);
    Some(ms - sign * (hh * 3_600_000 + mm * 60_000))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const BASE: &str = "SecurityEvent=\"ChallengeResponseFailed\",EventTV=\"2026-11-24T21:04:50.544+0000\",Severity=\"Error\",Service=\"PJSIP\",EventVersion=\"1\",AccountID=\"A\",SessionID=\"S\",LocalAddress=\"IPV4/UDP/127.0.0.1/5060\",RemoteAddress=\"IPV4/UDP/198.51.100.13/5060\",Challenge=\"C\",Response=\"R\",ExpectedResponse=\"\"";

    #[test]
    fn a_second_field_name_inside_a_value_marks_the_record_tampered() {
        let read = |msg: &str| match parse(msg, false) {
            SecurityRecord::Event(p, _) => (p.ip.unwrap().to_string(), p.tampered),
            other => panic!("{other:?} from {msg}"),
        };
        assert_eq!(read(BASE), ("198.51.100.13".into(), false));
        let in_account = BASE.replace("\"A\"", "\"x,RemoteAddress=IPV4/UDP/6.6.6.6/5060\"");
        assert_eq!(read(&in_account), ("198.51.100.13".into(), true));
        let in_session = BASE.replace("\"S\"", "\"SecurityEvent=InvalidPassword\"");
        assert_eq!(read(&in_session), ("198.51.100.13".into(), true));
        // An `=` of no consequence in a value changes nothing.
        let harmless = BASE.replace("\"C\"", "\"a=b\"");
        assert_eq!(read(&harmless), ("198.51.100.13".into(), false));
    }

    #[test]
    fn an_absurd_old_style_event_time_is_no_time_and_the_event_still_counts() {
        let msg = BASE.replace("2026-11-24T21:04:50.544+0000", "000000000000000002029809171712908401-000");
        match parse(&msg, false) {
            SecurityRecord::Event(p, at) => {
                assert_eq!((p.ip.unwrap().to_string(), at), ("198.51.100.13".into(), None));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(parse_event_tv("1732482290-544000"), Some(1_732_482_290_544));
    }

    proptest! {
        /// Wherever the straight-line reader answers, it answers what the strict pattern does.
        #[test]
        fn straight_line_reader_agrees_with_the_strict_pattern(
            account in "[ -~\n]{0,12}", session in "[ -~]{0,12}", challenge in "[ -~]{0,12}",
        ) {
            let index = SPECS.iter().position(|s| s.name == "ChallengeResponseFailed").unwrap();
            let msg = BASE.replace("\"A\"", &format!("\"{account}\""))
                .replace("\"S\"", &format!("\"{session}\""))
                .replace("\"C\"", &format!("\"{challenge}\""));
            if let Some(fast) = read_quoteless(&SPECS[index], &msg) {
                prop_assert_eq!(Some((fast, 1)), read_quoted(index, &msg).ok());
            }
        }
    }
}
