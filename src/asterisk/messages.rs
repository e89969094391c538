//! Module log lines that report failed (or successful) authentication:
//! chan_sip, res_pjsip, manager (AMI) and chan_iax2 (docs/ASTERISK.md §2.1–2.4, §3).
//!
//! Every pattern anchors the address on the fixed text Asterisk wrote around the
//! packet source and matches attacker fields only where they can occur.

use std::net::IpAddr;
use std::sync::LazyLock;

use regex::Regex;

use super::address::{parse_ip, sip_user};
use super::fast::{self, Fields};
use crate::domain::{FailureKind, Outcome, Service};

/// What one record says, before its date is converted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    pub ip: Option<IpAddr>,
    pub service: Service,
    pub account: Option<String>,
    pub outcome: Outcome,
    pub tampered: bool,
    /// The conversation Asterisk names (a security event's SessionID), hashed.
    pub session: Option<u64>,
}

pub use super::shapes::{DIALPLAN_FILE, FILES, Shape, shape};

// Address as printed from a packet source: bracketed IPv6 or IPv4, and the legacy
// unbracketed IPv6 some versions print; always validated by `parse_ip` afterwards.
const ADDR: &str = r"(?P<ip>\[[0-9A-Fa-f:.]+\]|[0-9A-Fa-f:.]+?)";

static SIP_REGISTRATION: LazyLock<Regex> = LazyLock::new(|| {
    re(&format!(
        r"^Registration from '(?P<to>.*)' failed for '{ADDR}(?::\d{{1,5}})?' - (?P<reason>{})$",
        fast::alternation(&fast::SIP_REASONS)
    ))
});

const NOT_FOUND_TAIL: &str = r"' rejected because extension not found in context '[^'\n]*'\.$";

static SIP_CALL_FROM: LazyLock<Regex> = LazyLock::new(|| {
    re(&format!(
        r"(?s)^Call from '(?P<peer>[^'\n]*)' \({ADDR}:\d{{1,5}}\) to extension '(?P<exten>.*){NOT_FOUND_TAIL}"
    ))
});
static SIP_CALL_FROM_PREFIX: LazyLock<Regex> =
    LazyLock::new(|| re(&format!(r"^Call from '[^'\n]*' \({ADDR}:\d{{1,5}}\) to extension '")));

// res_pjsip_session.c, three generations (docs/ASTERISK.md §2.2).
static PJSIP_CALL: LazyLock<Regex> = LazyLock::new(|| {
    re(&format!(
        r"(?s)^(?:Call from '(?P<peer>[^'\n]*)' \((?:[A-Za-z]+:)?{ADDR}:\d{{1,5}}\)| ?(?P<endpoint>[^ :\n]+): Call \([A-Za-z]+:{ADDR2}:\d{{1,5}}\)) to extension '(?P<exten>.*){NOT_FOUND_TAIL}",
        ADDR2 = r"(?P<ip2>\[[0-9A-Fa-f:.]+\]|[0-9A-Fa-f:.]+?)"
    ))
});
static PJSIP_CALL_PREFIX: LazyLock<Regex> = LazyLock::new(|| {
    re(&format!(
        r"^(?:Call from '[^'\n]*' \((?:[A-Za-z]+:)?{ADDR}:\d{{1,5}}\)| ?[^ :\n]+: Call \([A-Za-z]+:{ADDR2}:\d{{1,5}}\)) to extension '",
        ADDR2 = r"(?P<ip2>\[[0-9A-Fa-f:.]+\]|[0-9A-Fa-f:.]+?)"
    ))
});

// pjsip prints From as an optional quoted display name and `<uri>`; the URI holds no
// `<`, `>` or raw space, so the address is the one right after that construct.
static PJSIP_REQUEST: LazyLock<Regex> = LazyLock::new(|| {
    re(&format!(
        r#"^Request (?:'(?P<method>[!-~]+?)' )?from '(?P<from>(?:"(?:[^"\\\n]|\\.)*" )?<[^<>\s]*>)' failed for '{ADDR}:\d{{1,5}}' \(callid: (?P<callid>.*)\) - (?P<reason>{reasons})(?: after \d+ tries in \d+\.\d{{3}} ms)?$"#,
        reasons = fast::alternation(&fast::PJSIP_REASONS)
    ))
});

static PJSIP_ADDED_CONTACT: LazyLock<Regex> = LazyLock::new(|| {
    re(r"^Added contact '(?P<uri>[^'\n]*)' to AOR '(?P<aor>[^'\n]*)' with expiration of \d+ seconds$")
});
static URI_HOST: LazyLock<Regex> =
    LazyLock::new(|| re(r"^sips?:(?:[^@]*@)?(?P<ip>\[[0-9A-Fa-f:.]+\]|[0-9.]+)(?::\d+)?(?:;|$)"));

static SIP_REGISTERED: LazyLock<Regex> =
    LazyLock::new(|| re(&format!(r"^Registered SIP '(?P<peer>[^'\n]*)' at {ADDR}:\d{{1,5}}$")));

static AMI_FAILED: LazyLock<Regex> =
    LazyLock::new(|| re(r"^(?P<ip>[0-9A-Fa-f.:]+) failed to authenticate as '(?P<user>.*)'$"));
static AMI_NO_USER: LazyLock<Regex> = LazyLock::new(|| {
    re(r"^(?P<ip>[0-9A-Fa-f.:]+) tried to authenticate with nonexistent user '(?P<user>.*)'$")
});
// chan_sip prints the packet source it refused; nothing follows it.
static SIP_HACKING: LazyLock<Regex> =
    LazyLock::new(|| re(r"^hacking attempt detected '(?P<ip>\[[0-9A-Fa-f:.]+\]|[0-9A-Fa-f:.]+)'$"));
// FreePBX's from-sip-external: `Log(WARNING,"Rejecting unknown SIP connection from
// ${CHANNEL(recvip)}")`. The extension before it is the caller's; the address ends the
// line, so the last clause is the one the dialplan wrote.
static DIALPLAN_REJECTED: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r#"(?s)^(?P<exten>.*): "Rejecting unknown SIP connection from (?P<ip>\[[0-9A-Fa-f:.]+\](?::\d{1,5})?|[0-9.]+(?::\d{1,5})?|[0-9A-Fa-f:]+)"$"#,
    )
});
static AMI_LOGGED_ON: LazyLock<Regex> =
    LazyLock::new(|| re(r"^Manager '(?P<user>[^'\n]*)' logged on from (?P<ip>[0-9A-Fa-f.:]+)$"));

static IAX: LazyLock<[(Regex, FailureKind); 8]> = LazyLock::new(|| {
    let a = r"(?P<ip>\[[0-9A-Fa-f:.]+\]|[0-9A-Fa-f:.]+?)(?::\d{1,5})?";
    [
        (re(&format!(r"^Host {a} failed to authenticate as (?P<user>.*)$")), FailureKind::WrongPassword),
        (
            re(&format!(r"^Rejected connect attempt from {a}, who was trying to reach '(?P<user>.*)'$")),
            FailureKind::AclDenied,
        ),
        (
            re(&format!(r"^Rejected connect attempt from {a}, request '(?P<user>.*)' does not exist$")),
            FailureKind::UnknownAccount,
        ),
        (
            re(&format!(r"^No registration for peer '(?P<user>.*)' \(from {a}\)$")),
            FailureKind::UnknownAccount,
        ),
        (re(&format!(r"^Peer '(?P<user>.*)' is not dynamic \(from {a}\)$")), FailureKind::Rejected),
        (re(&format!(r"^Host {a} denied access to register peer '(?P<user>.*)'$")), FailureKind::AclDenied),
        (
            re(&format!(
                r"^Host {a} failed MD5 authentication for '(?P<user>.*)' \([0-9a-f]* != [0-9a-f]*\)$"
            )),
            FailureKind::WrongPassword,
        ),
        (
            re(&format!(r"^Host {a} did not provide proper plaintext password for '(?P<user>.*)'$")),
            FailureKind::WrongPassword,
        ),
    ]
});

fn re(pattern: &str) -> Regex {
    Regex::new(pattern).expect("static log pattern compiles")
}

/// Whether a record of this shape must swallow more physical lines before it can be
/// judged: a call line whose attacker-chosen extension carried a newline.
pub fn is_incomplete(shape: Shape, msg: &str) -> bool {
    match shape {
        Shape::SipCallFrom => !SIP_CALL_FROM.is_match(msg) && SIP_CALL_FROM_PREFIX.is_match(msg),
        Shape::PjsipCall => !PJSIP_CALL.is_match(msg) && PJSIP_CALL_PREFIX.is_match(msg),
        Shape::DialplanCall => super::dialplan::is_incomplete(msg),
        _ => false,
    }
}

/// How many physical lines a record of this shape may take.
pub fn max_record_lines(shape: Shape) -> usize {
    match shape {
        Shape::DialplanCall => super::dialplan::MAX_LINES,
        _ => super::reader::MAX_RECORD_LINES,
    }
}

/// The sender of a call line that never completed: the address sits in the fixed
/// prefix, before any attacker text.
pub fn incomplete_call_sender(shape: Shape, msg: &str) -> Option<IpAddr> {
    let caps = match shape {
        Shape::SipCallFrom => SIP_CALL_FROM_PREFIX.captures(msg)?,
        Shape::PjsipCall => PJSIP_CALL_PREFIX.captures(msg)?,
        _ => return None,
    };
    parse_ip(caps.name("ip").or_else(|| caps.name("ip2"))?.as_str())
}

/// Parses a complete module record. `None`: not an authentication outcome we count.
pub fn parse(shape: Shape, msg: &str, multi_line: bool) -> Option<Parsed> {
    (super::shapes::spec(shape).parse)(msg, multi_line)
}

/// A shape read for something other than an authentication outcome.
pub(super) fn no_outcome(_: &str, _: bool) -> Option<Parsed> {
    None
}

pub(super) fn sip_call(msg: &str, multi_line: bool) -> Option<Parsed> {
    call_line(&SIP_CALL_FROM, Service::Sip, msg, multi_line)
}

pub(super) fn pjsip_call(msg: &str, multi_line: bool) -> Option<Parsed> {
    call_line(&PJSIP_CALL, Service::Pjsip, msg, multi_line)
}

pub(super) fn sip_hacking_attempt(msg: &str, _: bool) -> Option<Parsed> {
    let ip = parse_ip(SIP_HACKING.captures(msg)?.name("ip")?.as_str())?;
    Some(failure(Service::Sip, ip, None, FailureKind::Rejected, false))
}

pub(super) fn ami_logged_on(msg: &str, _: bool) -> Option<Parsed> {
    let c = AMI_LOGGED_ON.captures(msg)?;
    success(Service::Ami, c.name("ip")?.as_str(), Some(c.name("user")?.as_str()))
}

pub(super) fn sip_registered(msg: &str, _: bool) -> Option<Parsed> {
    let (peer, ip) = fast::registered(msg).or_else(|| {
        let c = SIP_REGISTERED.captures(msg)?;
        Some((c.name("peer")?.as_str(), c.name("ip")?.as_str()))
    })?;
    success(Service::Sip, ip, Some(peer))
}

pub(super) fn pjsip_added_contact(msg: &str, _: bool) -> Option<Parsed> {
    // With rewrite_contact=yes the host is the packet source and the original is kept
    // as x-ast-orig-host; without it the host is the client's own claim.
    fast::ORIG_HOST.find(msg.as_bytes())?;
    let c = PJSIP_ADDED_CONTACT.captures(msg)?;
    let uri = c.name("uri")?.as_str();
    if !uri.contains(";x-ast-orig-host=") {
        return None;
    }
    let host = URI_HOST.captures(uri)?;
    success(Service::Pjsip, host.name("ip")?.as_str(), Some(c.name("aor")?.as_str()))
}

fn success(service: Service, ip: &str, account: Option<&str>) -> Option<Parsed> {
    Some(Parsed {
        ip: Some(parse_ip(ip)?),
        service,
        account: account.map(str::to_owned),
        outcome: Outcome::Success,
        tampered: false,
        session: None,
    })
}

fn failure(service: Service, ip: IpAddr, account: Option<&str>, kind: FailureKind, tampered: bool) -> Parsed {
    Parsed {
        ip: Some(ip),
        service,
        account: account.filter(|a| !a.is_empty()).map(str::to_owned),
        outcome: Outcome::Failure(kind),
        tampered,
        session: None,
    }
}

fn strict_fields<'a>(pattern: &Regex, msg: &'a str, who: &str) -> Option<Fields<'a>> {
    let c = pattern.captures(msg)?;
    Some(Fields {
        who: c.name(who)?.as_str(),
        ip: c.name("ip")?.as_str(),
        reason: c.name("reason")?.as_str(),
    })
}

pub(super) fn sip_registration(msg: &str, _: bool) -> Option<Parsed> {
    let f = fast::registration(msg).or_else(|| strict_fields(&SIP_REGISTRATION, msg, "to"))?;
    let ip = parse_ip(f.ip)?;
    let kind = fast::kind_of(&fast::SIP_REASONS, f.reason);
    // The greedy To field leaves the last clause, the one Asterisk wrote; a second
    // clause inside the To header is an injection attempt worth showing.
    let tampered = fast::occurs_more_than_once(msg, &fast::FAILED_FOR);
    Some(failure(Service::Sip, ip, sip_user(f.who), kind, tampered))
}

fn call_line(pattern: &Regex, service: Service, msg: &str, multi_line: bool) -> Option<Parsed> {
    let c = pattern.captures(msg)?;
    let ip = parse_ip(c.name("ip").or_else(|| c.name("ip2"))?.as_str())?;
    let exten = c.name("exten")?.as_str();
    let tampered = multi_line || exten.contains('\n') || exten.contains("' rejected because");
    let account = if exten.len() <= 80 && !exten.contains('\n') { Some(exten) } else { None };
    Some(failure(service, ip, account, FailureKind::NoExtension, tampered))
}

pub(super) fn pjsip_request(msg: &str, _: bool) -> Option<Parsed> {
    let f = fast::pjsip_request(msg).or_else(|| strict_fields(&PJSIP_REQUEST, msg, "from"))?;
    let ip = parse_ip(f.ip)?;
    let kind = fast::kind_of(&fast::PJSIP_REASONS, f.reason);
    let tampered = fast::occurs_more_than_once(msg, &fast::FAILED_FOR);
    Some(failure(Service::Pjsip, ip, sip_user(f.who), kind, tampered))
}

pub(super) fn ami_login(msg: &str, _: bool) -> Option<Parsed> {
    let (c, kind) = match AMI_FAILED.captures(msg) {
        Some(c) => (c, FailureKind::WrongPassword),
        None => (AMI_NO_USER.captures(msg)?, FailureKind::UnknownAccount),
    };
    let ip = parse_ip(c.name("ip")?.as_str())?;
    let tampered = msg.matches(" failed to authenticate as '").count()
        + msg.matches(" tried to authenticate with nonexistent user '").count()
        > 1;
    let user = c.name("user")?.as_str();
    // Both lines of one login name the user: one attempt.
    let session = Some(crate::domain::session_key(&format!("manager login {user}")));
    Some(Parsed { session, ..failure(Service::Ami, ip, Some(user), kind, tampered) })
}

pub(super) fn dialplan_rejected(msg: &str, _: bool) -> Option<Parsed> {
    let c = DIALPLAN_REJECTED.captures(msg)?;
    let text = c.name("ip")?.as_str();
    // `1.2.3.4:5060` and `[2001:db8::1]:5060` carry a port; bare IPv6 does not.
    let host = match text.rsplit_once(':') {
        Some((host, port))
            if (host.ends_with(']') || !host.contains(':')) && port.bytes().all(|b| b.is_ascii_digit()) =>
        {
            host
        }
        _ => text,
    };
    let ip = parse_ip(host)?;
    let exten = c.name("exten")?.as_str();
    let tampered = exten.contains("Rejecting unknown SIP connection from ") || exten.contains('\n');
    // The plain formatter adds the priority and context: `s:6 in @ from-sip-external`.
    let exten = exten.split_once(':').filter(|(_, rest)| rest.contains(" in ")).map_or(exten, |(e, _)| e);
    let account = (exten.len() <= 80 && !tampered).then_some(exten);
    Some(failure(Service::Dialplan, ip, account, FailureKind::NoExtension, tampered))
}

pub(super) fn iax(msg: &str, _: bool) -> Option<Parsed> {
    IAX.iter().find_map(|(pattern, kind)| {
        let c = pattern.captures(msg)?;
        let ip = parse_ip(c.name("ip")?.as_str())?;
        Some(failure(Service::Iax2, ip, c.name("user").map(|u| u.as_str()), *kind, false))
    })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn agree(fast: Option<Fields<'_>>, pattern: &Regex, msg: &str, who: &str) -> Result<(), TestCaseError> {
        if let Some(f) = fast {
            prop_assert_eq!(Some(f), strict_fields(pattern, msg, who), "{:?}", msg);
        }
        Ok(())
    }

    proptest! {
        /// Wherever the straight-line readers answer, they answer what the strict patterns do.
        #[test]
        fn straight_line_readers_agree_with_the_strict_patterns(
            who in "[ -~]{0,30}", callid in "[ -~]{0,30}", addr in "(\\[[0-9a-f:]{2,12}\\]|[0-9.]{7,15}|[0-9a-f:]{3,12})(:[0-9]{1,6})?",
            reason in 0usize..5, tries in proptest::bool::ANY,
        ) {
            let suffix = if tries { " after 5 tries in 0.005 ms" } else { "" };
            let r = fast::PJSIP_REASONS[reason].0;
            let msg = format!("Request 'REGISTER' from '\"{who}\" <sip:{who}@x>' failed for '{addr}' (callid: {callid}) - {r}{suffix}");
            agree(fast::pjsip_request(&msg), &PJSIP_REQUEST, &msg, "from")?;
            let msg = format!("Request 'REGISTER' from '<{who}>' failed for '{addr}' (callid: {callid}) - {r}{suffix}");
            agree(fast::pjsip_request(&msg), &PJSIP_REQUEST, &msg, "from")?;
            let r = fast::SIP_REASONS[reason].0;
            let msg = format!("Registration from '{who}' failed for '{addr}' - {r}");
            agree(fast::registration(&msg), &SIP_REGISTRATION, &msg, "to")?;
            let msg = format!("Registered SIP '{who}' at {addr}");
            if let Some((peer, ip)) = fast::registered(&msg) {
                let c = SIP_REGISTERED.captures(&msg);
                prop_assert_eq!(Some((peer, ip)), c.map(|c| (c.name("peer").unwrap().as_str(), c.name("ip").unwrap().as_str())));
            }
        }
    }
}
