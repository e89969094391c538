//! Which `RemoteAddress` of a security event Asterisk wrote from the packet source,
//! when values hold quotes and a forged `",RemoteAddress="…"` may stand in them.
//!
//! Every occurrence of `",LocalAddress="<addr>",RemoteAddress="<addr>"` is tried as
//! the real pair: the text before it must read as the fields Asterisk writes before
//! (AccountID free, SessionID typed where the channel fills it itself), the text after
//! it as the event's own fields in their fixed order, each value by its grammar. When
//! every reading that holds names one address, that is the sender; when readings
//! disagree, no address is trusted and the record is forged.

use std::sync::LazyLock;

use memchr::memmem::Finder;
use regex::Regex;

/// Grammar of one value Asterisk writes after `RemoteAddress`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grammar {
    /// Attacker text, unrestricted.
    Free,
    /// `EventTV`/`SessionTV`.
    Tv,
    Digits,
    /// Filled by Asterisk itself: never a quote.
    Quoteless,
    /// A digest value a client sent: pjsip keeps the backslash of every quote in a
    /// quoted string, chan_sip splits on quotes, so no quote stands unescaped.
    Digest,
}

impl Grammar {
    /// Whether `v` can be a value of this grammar.
    pub fn accepts(self, v: &str) -> bool {
        match self {
            Grammar::Free => true,
            Grammar::Tv => super::security::is_event_tv(v),
            Grammar::Digits => !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()),
            Grammar::Quoteless => !v.contains('\n') && !v.contains('"'),
            Grammar::Digest => {
                let b = v.as_bytes();
                memchr::memchr_iter(b'"', b).all(|i| i > 0 && b[i - 1] == b'\\')
            }
        }
    }

    /// The same as a regular expression, for the tail pattern.
    fn pattern(self) -> String {
        match self {
            Grammar::Free => "(?:.*?)".into(),
            Grammar::Tv => format!("(?:{})", super::security::TV),
            Grammar::Digits => r"\d+".into(),
            Grammar::Quoteless => r#"[^"\n]*"#.into(),
            Grammar::Digest => r#"(?:[^"\\]|\\+"?)*"#.into(),
        }
    }
}

/// The fields after `RemoteAddress` of one event type, for one service.
pub struct Tail {
    regex: Regex,
}

impl Tail {
    /// `required` then `optional` fields, each `(name, grammar)`.
    pub fn new(required: &[(&str, Grammar)], optional: &[(&str, Grammar)]) -> Tail {
        let field = |(key, grammar): &(&str, Grammar)| {
            let value = match *key {
                "AccountID" => format!("(?P<acct>{})", grammar.pattern()),
                "ACLName" => format!("(?P<acl>{})", grammar.pattern()),
                _ => grammar.pattern(),
            };
            format!(r#",{key}="{value}""#)
        };
        let required: String = required.iter().map(field).collect();
        let optional: String = optional.iter().map(|f| format!("(?:{})?", field(f))).collect();
        Tail { regex: Regex::new(&format!("(?s)^{required}{optional}$")).expect("tail pattern compiles") }
    }
}

/// One reading of the record in which `remote` is the real address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reading<'a> {
    pub account: Option<&'a str>,
    pub session: &'a str,
    pub remote: &'a str,
    pub acl: Option<&'a str>,
}

/// What the readings say.
#[derive(Debug, PartialEq, Eq)]
pub enum Attribution<'a> {
    /// Every reading that holds names this address (`readings` of them).
    Sender(Reading<'a>, usize),
    /// Readings name different addresses (each once, as written): none can be trusted
    /// on this record's word alone.
    Forged(Vec<&'a str>),
    /// No reading holds (yet): possibly split by an injected newline.
    NoReading,
}

static REMOTE_PAIR: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new("\",RemoteAddress=\""));

/// `body` is the record after `EventVersion="…"`. `account_first`: the event writes
/// AccountID before SessionID.
pub fn attribute<'a>(body: &'a str, account_first: bool, session: SessionId, tail: &Tail) -> Attribution<'a> {
    let readings: Vec<Reading<'a>> = REMOTE_PAIR
        .find_iter(body.as_bytes())
        .filter_map(|at| reading_at(body, at, account_first, session, tail))
        .collect();
    let address = |r: &Reading<'_>| super::address::parse_security_address(r.remote);
    let mut senders: Vec<&'a str> = Vec::new();
    for r in &readings {
        if !senders.iter().any(|s| super::address::parse_security_address(s) == address(r)) {
            senders.push(r.remote);
        }
    }
    let held = readings.len();
    match (readings.into_iter().next(), senders.len()) {
        (None, _) => Attribution::NoReading,
        (Some(first), 1) => Attribution::Sender(first, held),
        _ => Attribution::Forged(senders),
    }
}

/// Whether `text` holds `",LocalAddress="<addr>",RemoteAddress="<addr>"` anywhere.
pub fn has_address_pair(text: &str) -> bool {
    REMOTE_PAIR.find_iter(text.as_bytes()).any(|at| pair_at(text, at).is_some())
}

/// The address pair whose `",RemoteAddress="` is at `at`, when both values are
/// addresses: `(remote, where ",LocalAddress=" starts, where the remote value ends)`.
fn pair_at(text: &str, at: usize) -> Option<(&str, usize, usize)> {
    const LOCAL: &str = ",LocalAddress=\"";
    let start = at + "\",RemoteAddress=\"".len();
    let end = start + text[start..].find('"')?;
    let remote = &text[start..end];
    let local_at = text[..at].rfind(LOCAL)?;
    let valid = super::security::is_event_address;
    (valid(remote) && valid(&text[local_at + LOCAL.len()..at])).then_some((remote, local_at, end))
}

/// The reading in which the `",RemoteAddress="` at `at` is the real one, if it holds.
fn reading_at<'a>(
    body: &'a str,
    at: usize,
    account_first: bool,
    session: SessionId,
    tail: &Tail,
) -> Option<Reading<'a>> {
    let (remote, local_at, end) = pair_at(body, at)?;
    let captures = tail.regex.captures(&body[end + 1..])?;
    // `…,SessionID="S` then `,LocalAddress=`.
    let (account, session) = leading_fields(body[..local_at].strip_suffix('"')?, account_first, session)?;
    let from_tail = captures.name("acct").map(|m| m.as_str());
    Some(Reading {
        account: account.or(from_tail),
        session,
        remote,
        acl: captures.name("acl").map(|m| m.as_str()),
    })
}

/// How the channel fills SessionID.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionId {
    /// chan_sip and AMI: a `%p` pointer Asterisk prints itself.
    Pointer,
    /// pjsip (the Call-ID, verbatim) and services not known: any text.
    Free,
}

impl SessionId {
    fn accepts(self, v: &str) -> bool {
        match self {
            SessionId::Free => true,
            SessionId::Pointer => {
                v == "(nil)"
                    || v.strip_prefix("0x")
                        .is_some_and(|h| !h.is_empty() && h.bytes().all(|b| b.is_ascii_hexdigit()))
            }
        }
    }
}

/// Reads `,AccountID="A",SessionID="S` (or `,SessionID="S` alone), without its last
/// quote. A pointer SessionID follows the last `",SessionID="` (AccountID may hold
/// anything, a pointer nothing); a free one the first, the shortest account.
fn leading_fields(text: &str, account_first: bool, session: SessionId) -> Option<(Option<&str>, &str)> {
    const SESSION: &str = "\",SessionID=\"";
    if !account_first {
        let value = text.strip_prefix(",SessionID=\"")?;
        return session.accepts(value).then_some((None, value));
    }
    let rest = text.strip_prefix(",AccountID=\"")?;
    let split = match session {
        SessionId::Pointer => rest.rfind(SESSION)?,
        SessionId::Free => rest.find(SESSION)?,
    };
    let (account, value) = (&rest[..split], &rest[split + SESSION.len()..]);
    session.accepts(value).then_some((Some(account), value))
}
