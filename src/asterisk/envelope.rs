//! The line envelope Asterisk's logger writes around every message (docs/ASTERISK.md §1):
//! file channels with the default or the plain formatter, syslog/journal lines,
//! and the `[json]` formatter.

use std::borrow::Cow;
use std::sync::LazyLock;

use regex::Regex;
use serde::Deserialize;

/// The fixed parts of one log line, borrowed from it where possible.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope<'a> {
    pub date: Cow<'a, str>,
    pub level: &'a str,
    /// Source file as Asterisk printed it, e.g. `chan_sip.c`, `res_pjsip/pjsip_distributor.c`.
    pub file: Cow<'a, str>,
    pub message: Cow<'a, str>,
    /// The JSON formatter keeps a whole record in one line: an embedded newline in the
    /// message is attacker text, never a line break.
    pub from_json: bool,
}

/// Parses one physical line. `None` means it is not the start of a log record
/// (a continuation line, a banner, or unrelated text).
pub fn parse(line: &str) -> Option<Envelope<'_>> {
    match line.as_bytes().first()? {
        b'[' => parse_file_channel(line),
        b'{' => parse_json(line),
        _ => parse_syslog(line),
    }
}

/// `[date] LEVEL[lwp][C-xxxxxxxx] file.c: msg` (default formatter) or
/// `[date] LEVEL[lwp][C-xxxxxxxx]: file.c:LINE func: msg` (plain formatter).
fn parse_file_channel(line: &str) -> Option<Envelope<'_>> {
    // Dates hold no `]`: the first one closes the date.
    let close = memchr::memchr(b']', line.as_bytes())?;
    if line.as_bytes().get(close + 1) != Some(&b' ') {
        return None;
    }
    let date = &line[1..close];
    let rest = &line[close + 2..];
    let (level, rest) = level_and_thread(rest)?;
    if let Some(tail) = rest.strip_prefix(": ") {
        let (file, message) = plain_location(tail)?;
        return Some(Envelope {
            date: Cow::Borrowed(date),
            level,
            file: Cow::Borrowed(file),
            message: Cow::Borrowed(message),
            from_json: false,
        });
    }
    let tail = rest.strip_prefix(' ')?;
    if let Some(message) = dialplan_log(tail) {
        return Some(Envelope {
            date: Cow::Borrowed(date),
            level,
            file: Cow::Borrowed(super::messages::DIALPLAN_FILE),
            message: Cow::Borrowed(message),
            from_json: false,
        });
    }
    let colon = memchr::memchr(b':', tail.as_bytes())?;
    let file = &tail[..colon];
    if file.is_empty() || file.contains(' ') {
        return None;
    }
    // "file.c: msg"; res_pjsip_session's trace form puts two spaces after the colon,
    // which stays part of the message.
    let message = tail[colon + 1..].strip_prefix(' ')?;
    Some(Envelope {
        date: Cow::Borrowed(date),
        level,
        file: Cow::Borrowed(file),
        message: Cow::Borrowed(message),
        from_json: false,
    })
}

/// True when `line` is a file-channel record from a file sipwarden never reads, so it
/// can be passed over without decoding it. Anything unusual answers false.
pub fn is_skippable(line: &[u8], interesting: &[&str]) -> bool {
    if line.first() != Some(&b'[') {
        return false;
    }
    let Some(close) = memchr::memchr(b']', line) else {
        return false;
    };
    let mut i = close + 1;
    if line.get(i) != Some(&b' ') {
        return false;
    }
    i += 1;
    let level_start = i;
    while line.get(i).is_some_and(|b| b.is_ascii_alphabetic() || *b == b'_') {
        i += 1;
    }
    if i == level_start || line.get(i) != Some(&b'[') {
        return false;
    }
    i += 1;
    let digits_start = i;
    while line.get(i).is_some_and(u8::is_ascii_digit) {
        i += 1;
    }
    if i == digits_start || line.get(i) != Some(&b']') {
        return false;
    }
    i += 1;
    if line[i..].starts_with(b"[C-") {
        i += 12;
    }
    let file_start = match line.get(i..i + 2) {
        Some(b": ") => i + 2,
        Some([b' ', _]) => i + 1,
        _ => return false,
    };
    let Some(colon) = memchr::memchr(b':', &line[file_start..]) else {
        return false;
    };
    let file = &line[file_start..file_start + colon];
    !file.is_empty() && !file.contains(&b' ') && !interesting.iter().any(|f| f.as_bytes() == file)
}

/// `LEVEL[digits]` then an optional `[C-xxxxxxxx]`; returns the level and what follows.
fn level_and_thread(s: &str) -> Option<(&str, &str)> {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() && (b[i].is_ascii_alphabetic() || b[i] == b'_') {
        i += 1;
    }
    if i == 0 || !(b.get(i) == Some(&b'[') || (b.get(i) == Some(&b' ') && b.get(i + 1) == Some(&b'['))) {
        return None;
    }
    let level = &s[..i];
    // Some builds print `NOTICE [22382]`.
    let i = if b.get(i) == Some(&b' ') { i + 1 } else { i };
    let mut j = i + 1;
    let digits_start = j;
    while j < b.len() && b[j].is_ascii_digit() {
        j += 1;
    }
    if j == digits_start || b.get(j) != Some(&b']') {
        return None;
    }
    let mut rest = &s[j + 1..];
    if let Some(after) = rest.strip_prefix("[C-") {
        let hex = after.get(..8)?;
        if !hex.bytes().all(|c| c.is_ascii_hexdigit()) || after.as_bytes().get(8) != Some(&b']') {
            return None;
        }
        rest = &after[9..];
    }
    Some((level, rest))
}

/// `file.c:LINE func: msg` or, from syslog, `file.c:LINE in func: msg`.
/// A dialplan `Log()` line names the extension where others name a file:
/// `Ext. s: msg`, or with the plain formatter `Ext. s:6 in @ from-sip-external: msg`.
/// Returns what follows `Ext. `: the extension is the caller's text and stays in the
/// message, for the message's own pattern to read from its end.
fn dialplan_log(s: &str) -> Option<&str> {
    s.strip_prefix("Ext. ")
}

fn plain_location(s: &str) -> Option<(&str, &str)> {
    if let Some(message) = dialplan_log(s) {
        return Some((super::messages::DIALPLAN_FILE, message));
    }
    let colon = memchr::memchr(b':', s.as_bytes())?;
    let file = &s[..colon];
    if file.is_empty() || file.contains(' ') {
        return None;
    }
    let after = &s[colon + 1..];
    let digits = after.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return None;
    }
    let after = after[digits..].strip_prefix(' ')?;
    let after = after.strip_prefix("in ").unwrap_or(after);
    let func_end = memchr::memmem::find(after.as_bytes(), b": ")?;
    let func = &after[..func_end];
    if func.is_empty() || func.contains(' ') {
        return None;
    }
    Some((file, &after[func_end + 2..]))
}

static SYSLOG_PREFIX: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        // The date is missing from journal output without one (`-o cat` with the
        // identifier); some journals keep Asterisk's own `[date]` after the prefix.
        r"^(?:(?P<date>[A-Z][a-z]{2} +\d{1,2} \d{2}:\d{2}:\d{2}|\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2})?) )?\S+ [^\s\[:]+(?:\[\d+\])?: (?:\[(?P<own>[^\]\n]+)\] )?",
    )
    .expect("valid syslog regex")
});

/// `Nov 24 22:17:42 host asterisk[25791]: NOTICE[25842][C-x]: chan_sip.c:29078 in func: msg`
/// as written by a syslog daemon or shown by `journalctl`.
fn parse_syslog(line: &str) -> Option<Envelope<'_>> {
    let caps = SYSLOG_PREFIX.captures(line)?;
    let date = caps.name("own").or_else(|| caps.name("date")).map_or("", |m| m.as_str());
    let rest = &line[caps.get(0)?.end()..];
    let (level, rest) = level_and_thread(rest)?;
    let (file, message) = plain_location(rest.strip_prefix(": ")?)?;
    Some(Envelope {
        date: Cow::Borrowed(date),
        level,
        file: Cow::Borrowed(file),
        message: Cow::Borrowed(message),
        from_json: false,
    })
}

#[derive(Deserialize)]
struct JsonRecord {
    timestamp: String,
    logmsg: JsonLogMsg,
}

#[derive(Deserialize)]
struct JsonLogMsg {
    location: JsonLocation,
    level: String,
    message: String,
}

#[derive(Deserialize)]
struct JsonLocation {
    filename: String,
}

fn parse_json(line: &str) -> Option<Envelope<'_>> {
    let rec: JsonRecord = serde_json::from_str(line).ok()?;
    let level = known_level(&rec.logmsg.level)?;
    let mut message = rec.logmsg.message;
    if message.ends_with('\n') {
        message.pop();
    }
    Some(Envelope {
        date: Cow::Owned(rec.timestamp),
        level,
        file: Cow::Owned(rec.logmsg.location.filename),
        message: Cow::Owned(message),
        from_json: true,
    })
}

/// Maps a JSON level onto a static string so envelopes never own their level.
fn known_level(level: &str) -> Option<&'static str> {
    const LEVELS: [&str; 9] =
        ["DEBUG", "TRACE", "NOTICE", "WARNING", "ERROR", "VERBOSE", "DTMF", "FAX", "SECURITY"];
    LEVELS.iter().copied().find(|l| *l == level)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_formatter_with_and_without_call_tag() {
        let e = parse(
            "[Nov 24 20:57:50] NOTICE[15985][C-00000001] chan_sip.c: Call from '' (127.0.0.3:5060) to x",
        )
        .unwrap();
        assert_eq!(e.date, "Nov 24 20:57:50");
        assert_eq!(e.level, "NOTICE");
        assert_eq!(e.file, "chan_sip.c");
        assert_eq!(e.message, "Call from '' (127.0.0.3:5060) to x");
        let e = parse("[2026-11-24 22:22:58.422] SECURITY[25859] res_security_log.c: SecurityEvent=\"X\"")
            .unwrap();
        assert_eq!(e.date, "2026-11-24 22:22:58.422");
        assert_eq!(e.level, "SECURITY");
        assert_eq!(e.message, "SecurityEvent=\"X\"");
    }

    #[test]
    fn subdirectory_file_and_pjsip_trace_form() {
        let e =
            parse("[Nov  4 09:01:02] NOTICE[1] res_pjsip/pjsip_distributor.c: Request 'REGISTER'").unwrap();
        assert_eq!(e.date, "Nov  4 09:01:02");
        assert_eq!(e.file, "res_pjsip/pjsip_distributor.c");
        let e =
            parse("[Nov 24 22:21:06] NOTICE[1] res_pjsip_session.c:  2001: Call (UDP:1.2.3.4:5) to").unwrap();
        assert_eq!(e.file, "res_pjsip_session.c");
        assert_eq!(e.message, " 2001: Call (UDP:1.2.3.4:5) to");
    }

    #[test]
    fn plain_formatter() {
        let e = parse("[2026-11-24 22:22:59.696] NOTICE[25842]: chan_sip.c:29078 handle_request_register: Registration from x").unwrap();
        assert_eq!(e.file, "chan_sip.c");
        assert_eq!(e.message, "Registration from x");
    }

    #[test]
    fn syslog_and_journal_prefixes() {
        let e = parse("Nov 24 22:17:42 pbx asterisk[25791]: NOTICE[25842][C-00000002]: chan_sip.c:29078 in handle_request_register: Registration from x").unwrap();
        assert_eq!(e.date, "Nov 24 22:17:42");
        assert_eq!(e.file, "chan_sip.c");
        assert_eq!(e.message, "Registration from x");
        let e = parse("2026-11-24T22:17:42.123456+00:00 pbx asterisk[1]: WARNING[2]: chan_iax2.c:1 in f: Host 1.2.3.4:4569 failed").unwrap();
        assert_eq!(e.level, "WARNING");
        assert_eq!(e.message, "Host 1.2.3.4:4569 failed");
    }

    #[test]
    fn json_formatter_keeps_embedded_newlines_inside_the_message() {
        let e = parse(r#"{"hostname":"","timestamp":"2026-11-24 22:22:59.696","identifiers":{"lwp":25842,"callid":""},"logmsg":{"location":{"filename":"chan_sip.c","function":"f","line":1},"level":"NOTICE","message":"a\nb\n"}}"#).unwrap();
        assert!(e.from_json);
        assert_eq!(e.message, "a\nb");
        assert_eq!(e.file, "chan_sip.c");
    }

    #[test]
    fn non_records_are_rejected() {
        assert!(parse("[Nov 24 21:04:46] Asterisk 20.20.1 built by root @ vm").is_none());
        assert!(parse("Packet timed out after 31999ms with no response").is_none());
        assert!(parse("' rejected because extension not found in context 'public'.").is_none());
        assert!(parse("").is_none());
        assert!(parse("[x] NOTICE[12][C-zz] a.c: m").is_none());
    }
}
