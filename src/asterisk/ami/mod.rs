//! The Asterisk Manager Interface's text (docs/ASTERISK.md §6): CRLF-framed blocks of
//! `Header: value` lines, the actions sipwarden sends, and the events it reads.
//!
//! Asterisk does not escape values: a caller's From user can carry CR/LF and add a
//! header, end a block early, or forge a whole block. A block is read only when it is
//! exactly what Asterisk writes (every line `Header: value`, no header twice, the
//! event's headers in their order); a block that is not makes the next few suspect,
//! since a forged block follows the cut one. Nothing is learned from a suspect block.

use crate::domain::{CallEvent, CallStart, LogEvent, UnixMs};

use super::security::{self, SecurityRecord};

/// Blocks after a malformed one that are not believed: one injection can carry a few.
const SUSPECT_AFTER_MALFORMED: u8 = 4;

/// One block as received: its lines in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    pub headers: Vec<(String, String)>,
}

impl Block {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// Why a block is not read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Malformed {
    /// A line that is not `Header: value` (a bare line feed inside a value).
    NotAHeader,
    /// The same header twice (a CR/LF inside a value added one).
    Repeated,
    /// An event's headers are not the ones Asterisk writes, in its order.
    Unexpected,
}

/// Takes every complete block (ended by an empty line) from the front of `buffer`.
pub fn take_blocks(buffer: &mut Vec<u8>) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut start = 0;
    while let Some(end) = memchr::memmem::find(&buffer[start..], b"\r\n\r\n") {
        let text = &buffer[start..start + end];
        blocks.push(String::from_utf8_lossy(text).into_owned());
        start += end + 4;
    }
    buffer.drain(..start);
    blocks
}

/// Splits a block's text (without its closing empty line) into headers.
pub fn parse_block(text: &str) -> Result<Block, Malformed> {
    let mut headers: Vec<(String, String)> = Vec::new();
    for line in text.split("\r\n") {
        let (name, value) = line.split_once(':').ok_or(Malformed::NotAHeader)?;
        let value = value.strip_prefix(' ').unwrap_or(value);
        let name_ok =
            !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !name_ok || value.contains(['\n', '\r']) {
            return Err(Malformed::NotAHeader);
        }
        if headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name)) {
            return Err(Malformed::Repeated);
        }
        headers.push((name.to_owned(), value.to_owned()));
    }
    Ok(Block { headers })
}

/// What a block means to sipwarden.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received {
    /// The answer to an action sipwarden sent.
    Response { action_id: Option<String>, success: bool, message: String },
    /// An authentication outcome.
    Auth(LogEvent),
    /// A call starting or ending; `at` from the block's `Timestamp` when Asterisk adds one.
    Call { event: CallEvent, at: Option<UnixMs> },
    /// A registration appearing or ending (`ContactStatus`, `PeerStatus`).
    Contact { change: crate::domain::ContactChange, at: Option<UnixMs> },
    /// A registration listed in answer to the action `action_id` (`PJSIPShowContacts`):
    /// `None` when the list is complete.
    Listed { action_id: String, change: Option<crate::domain::ContactChange> },
    /// Any other event, or one of no interest.
    Other,
    /// Not believed: malformed, or following one that was.
    Suspect(Malformed),
}

/// Reads blocks one after another, remembering how many are still suspect.
#[derive(Debug, Default)]
pub struct Reader {
    suspect: u8,
    pub malformed: u64,
}

impl Reader {
    pub fn read(&mut self, text: &str) -> Received {
        let judged = parse_block(text).and_then(judge);
        match judged {
            Err(why) => {
                self.malformed += 1;
                self.suspect = SUSPECT_AFTER_MALFORMED;
                Received::Suspect(why)
            }
            Ok(r) if self.suspect > 0 && !matches!(r, Received::Response { .. }) => {
                self.suspect -= 1;
                Received::Suspect(Malformed::Unexpected)
            }
            Ok(r) => r,
        }
    }
}

fn judge(block: Block) -> Result<Received, Malformed> {
    let Some((first, name)) = block.headers.first() else {
        return Err(Malformed::NotAHeader);
    };
    if first.eq_ignore_ascii_case("Response") {
        return Ok(Received::Response {
            action_id: block.get("ActionID").map(str::to_owned),
            success: name == "Success" || name == "Goodbye",
            message: block.get("Message").unwrap_or("").to_owned(),
        });
    }
    if !first.eq_ignore_ascii_case("Event") {
        return Err(Malformed::Unexpected);
    }
    // An event answering an action carries its ActionID instead of a Privilege.
    if let Some((_, id)) = block.headers.get(1).filter(|(n, _)| n == "ActionID") {
        let headers: Vec<(&str, &str)> =
            block.headers[2..].iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
        let action_id = id.clone();
        return Ok(match name.as_str() {
            "ContactList" => match super::contacts::from_contact_list(&headers) {
                Some(change) => Received::Listed { action_id, change: Some(change) },
                None => Received::Other,
            },
            "ContactListComplete" => Received::Listed { action_id, change: None },
            _ => Received::Other,
        });
    }
    // Privilege next; `timestampevents = yes` adds Timestamp after it.
    let mut rest = &block.headers[1..];
    if rest.first().is_none_or(|(n, _)| n != "Privilege") {
        return Err(Malformed::Unexpected);
    }
    rest = &rest[1..];
    let mut at = None;
    if let Some((_, v)) = rest.first().filter(|(n, _)| n == "Timestamp") {
        at = v.parse::<f64>().ok().map(|s| (s * 1000.0) as UnixMs);
        rest = &rest[1..];
    }
    let headers: Vec<(&str, &str)> = rest.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    match name.as_str() {
        "Newchannel" => Ok(match new_channel(&headers)? {
            Some(start) => Received::Call { event: CallEvent::Start(start), at },
            None => Received::Other,
        }),
        "Hangup" => {
            let channel = expect_first(&headers, "Channel")?;
            Ok(Received::Call { event: CallEvent::End { channel: channel.to_owned() }, at })
        }
        "ContactStatus" | "PeerStatus" => Ok(match super::contacts::from_manager(name, &headers) {
            Some(change) => Received::Contact { change, at },
            None => Received::Other,
        }),
        _ => match security::from_manager(name, &headers) {
            SecurityRecord::Event(p, tv) => Ok(Received::Auth(LogEvent {
                at: tv,
                ip: p.ip,
                service: p.service,
                account: p.account,
                outcome: p.outcome,
                tampered: false,
                security_event: true,
                session: p.session,
            })),
            SecurityRecord::Other => Ok(Received::Other),
            SecurityRecord::Malformed | SecurityRecord::Forged(_) => Err(Malformed::Unexpected),
        },
    }
}

fn expect_first<'a>(headers: &[(&str, &'a str)], name: &str) -> Result<&'a str, Malformed> {
    headers.first().filter(|(n, _)| *n == name).map(|(_, v)| *v).ok_or(Malformed::Unexpected)
}

/// The headers of `Newchannel` up to `Linkedid`, in Asterisk 12+'s order; a call is
/// counted where the channel starts it (`Uniqueid` = `Linkedid`), not on the legs it dials.
const NEW_CHANNEL: [&str; 14] = [
    "Channel",
    "ChannelState",
    "ChannelStateDesc",
    "CallerIDNum",
    "CallerIDName",
    "ConnectedLineNum",
    "ConnectedLineName",
    "Language",
    "AccountCode",
    "Context",
    "Exten",
    "Priority",
    "Uniqueid",
    "Linkedid",
];

fn new_channel(headers: &[(&str, &str)]) -> Result<Option<CallStart>, Malformed> {
    let names = &NEW_CHANNEL;
    // A SystemName (manager.conf `systemname`) may come first.
    let headers = match headers.first() {
        Some(("SystemName", _)) => &headers[1..],
        _ => headers,
    };
    if headers.len() != names.len() || headers.iter().zip(names).any(|((n, _), want)| n != want) {
        return Err(Malformed::Unexpected);
    }
    let value = |name: &str| headers.iter().find(|(n, _)| *n == name).map_or("", |(_, v)| *v);
    let channel = value("Channel");
    // A leg Asterisk dialled, or a channel of no phone (Local/…), is no new call.
    let dialled_leg = value("Uniqueid") != value("Linkedid");
    Ok(super::dialplan::call_start(channel, value("Exten"), value("Context")).filter(|_| !dialled_leg))
}

/// `Action: Login` asking for the event classes sipwarden reads.
pub fn login(action_id: &str, username: &str, secret: &str) -> String {
    action(
        action_id,
        "Login",
        &[("Username", username), ("Secret", secret), ("Events", "security,call,system")],
    )
}

/// A keepalive.
pub fn ping(action_id: &str) -> String {
    action(action_id, "Ping", &[])
}

/// Hangs up one channel, or every channel a `/regex/` matches.
pub fn hangup(action_id: &str, channel: &str) -> String {
    action(action_id, "Hangup", &[("Channel", channel), ("Cause", "21")])
}

/// The channel regex that matches every call of an extension: `/^PJSIP\/1002-/`.
pub fn channels_of(tech: &str, extension: &str) -> String {
    format!("/^{}\\/{}-/", regex::escape(tech), regex::escape(extension))
}

/// Lists every pjsip contact with its User-Agent (Asterisk 16 and later).
pub fn show_contacts(action_id: &str) -> String {
    action(action_id, "PJSIPShowContacts", &[])
}

pub fn db_put(action_id: &str, family: &str, key: &str, value: &str) -> String {
    action(action_id, "DBPut", &[("Family", family), ("Key", key), ("Val", value)])
}

pub fn db_del(action_id: &str, family: &str, key: &str) -> String {
    action(action_id, "DBDel", &[("Family", family), ("Key", key)])
}

pub fn logoff(action_id: &str) -> String {
    action(action_id, "Logoff", &[])
}

/// One action block. Values come from sipwarden's configuration and Asterisk's own
/// names; a line break in one would add a header, so it is cut there.
fn action(action_id: &str, name: &str, headers: &[(&str, &str)]) -> String {
    let clean = |v: &str| v.split(['\r', '\n']).next().unwrap_or("").to_owned();
    let mut text = format!("Action: {name}\r\nActionID: {}\r\n", clean(action_id));
    for (n, v) in headers {
        text.push_str(&format!("{n}: {}\r\n", clean(v)));
    }
    text.push_str("\r\n");
    text
}

#[cfg(test)]
mod tests;
