//! Turns physical lines into logical records and records into events (docs/ASTERISK.md §1.5).
//!
//! A record starts at a line with a log envelope. A record that is not complete yet
//! (a call line or security event split by an attacker's newline) swallows the next
//! physical lines, envelope or not, until its format completes; forged lines inside
//! it are never read as records of their own. At most [`MAX_RECORD_LINES`] lines or
//! [`MAX_RECORD_BYTES`] bytes are swallowed.

use std::sync::LazyLock;

use aho_corasick::{AhoCorasick, MatchKind};
use memchr::memmem::Finder;

use super::envelope;
use super::messages::{self, Parsed, Shape};
use super::security::{self, SecurityRecord};
use super::timestamp::Timestamper;
use crate::domain::{CallEvent, DatedCall, LogEvent, UnixMs};

pub const MAX_RECORD_LINES: usize = 512;
pub const MAX_RECORD_BYTES: usize = 32 * 1024;

/// The files records come from: a line naming one may begin a record. Searched by
/// the part of each name other files' names rarely share (a line holding the whole
/// name holds that part), so fewer lines of other files are looked at twice.
static FILE_NAMES: LazyLock<FileNames> = LazyLock::new(|| {
    let parts: Vec<&str> = messages::FILES.iter().map(|f| distinctive_part(f)).collect();
    let packed = aho_corasick::packed::Config::new().builder().extend(&parts).build();
    match packed {
        Some(teddy) => FileNames::Packed(teddy),
        None => FileNames::Automaton(
            AhoCorasick::builder()
                .match_kind(MatchKind::LeftmostFirst)
                .build(&parts)
                .expect("fixed patterns"),
        ),
    }
});

/// `chan_sip.c` → `_sip.c`, `res_pjsip/pjsip_distributor.c` → `_distributor.c`: from
/// the last `_` on, where there is one.
fn distinctive_part(file: &str) -> &str {
    file.rfind('_').map_or(file, |i| &file[i..])
}

enum FileNames {
    /// SIMD search, where the processor has it.
    Packed(aho_corasick::packed::Searcher),
    Automaton(AhoCorasick),
}

impl FileNames {
    /// The first name's start and which of [`messages::FILES`] it is.
    fn find(&self, haystack: &[u8]) -> Option<(usize, usize)> {
        match self {
            FileNames::Packed(s) => s.find(haystack).map(|m| (m.start(), m.pattern().as_usize())),
            FileNames::Automaton(a) => a.find(haystack).map(|m| (m.start(), m.pattern().as_usize())),
        }
    }
}

/// Whether a line naming pbx.c may be a call line: a first step, one cut before its step
/// could show, or a channel's end. A full log at verbose 3 has many later steps: they
/// are passed over with the quiet lines.
fn may_be_call_line(line: &[u8]) -> bool {
    // Searchers built once: this runs for every dialplan line of a full log.
    static FINDERS: LazyLock<[Finder<'static>; 5]> = LazyLock::new(|| {
        ["Executing [", ":1] ", "] ", "Spawn extension (", "Auto fallthrough, "].map(Finder::new)
    });
    let [executing, first_step, step_end, spawn, fallthrough] = &*FINDERS;
    match executing.find(line) {
        Some(at) => {
            let rest = &line[at..];
            first_step.find(rest).is_some() || step_end.find(rest).is_none()
        }
        None => spawn.find(line).is_some() || fallthrough.find(line).is_some(),
    }
}

/// The start of the first line in `data` (after its first) that opens a JSON record,
/// which may escape the file's name. Braces are rare in logs: finding them is quicker
/// than finding line starts.
fn json_line_start(data: &[u8]) -> Option<usize> {
    memchr::memchr_iter(b'{', data).find(|&i| i > 0 && data[i - 1] == b'\n')
}

/// A record that produced an event or was judged tampered.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ReadRecord {
    /// `None`: tampered beyond attribution; kept visible, never counted against anyone.
    pub event: Option<LogEvent>,
    /// A forged security event's possible senders (with `event` `None`).
    pub suspects: Option<Box<crate::domain::Suspects>>,
    pub tampered: bool,
    /// The record's text (physical lines joined by `\n`).
    pub raw: String,
    /// Byte offset just past the record's last line: reading resumed there neither
    /// repeats nor misses it.
    pub end: u64,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ReadStats {
    pub lines: u64,
    pub events: u64,
    pub tampered_records: u64,
    /// Lines swallowed into a record that never completed.
    pub swallowed_lines: u64,
}

struct Pending {
    shape: Shape,
    start: u64,
    date: String,
    message: String,
    raw: String,
    lines: usize,
}

/// Every record of a whole text (lines split on `\n`), as a file of it would give.
pub fn read_text(text: &str, reference: UnixMs) -> Vec<ReadRecord> {
    let mut reader = RecordReader::new(reference, 0);
    let mut out = Vec::new();
    let mut offset = 0u64;
    for line in text.split('\n') {
        let end = offset + line.len() as u64 + 1;
        reader.push(line, offset, end, &mut out);
        offset = end;
    }
    reader.finish(&mut out);
    out
}

/// Every record of a whole text given as bytes, line by line as a follower reads it,
/// with the counts and the offset a reader would resume at. With `pass_quiet` it reads
/// as check-log does, passing over quiet lines first; both ways must give the same.
pub fn read_bytes(text: &[u8], reference: UnixMs, pass_quiet: bool) -> (Vec<ReadRecord>, ReadStats, u64) {
    let mut reader = RecordReader::new(reference, 0);
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < text.len() {
        if pass_quiet {
            pos += reader.skip_quiet_lines(&text[pos..], pos as u64);
            if pos == text.len() {
                break;
            }
        }
        let (line_end, next) =
            memchr::memchr(b'\n', &text[pos..]).map_or((text.len(), text.len()), |i| (pos + i, pos + i + 1));
        let line = &text[pos..line_end];
        if pass_quiet {
            reader.push_decoded(line, pos as u64, next as u64, &mut out);
        } else {
            reader.push_bytes(line, pos as u64, next as u64, &mut out);
        }
        pos = next;
    }
    reader.finish(&mut out);
    (out, reader.stats, reader.settled_offset())
}

/// One per file being read; keeps at most one pending record.
pub struct RecordReader {
    timestamps: Timestamper,
    pending: Option<Pending>,
    settled: u64,
    /// End of the line being read: where a record completed by it ends.
    line_end: u64,
    /// Keep each record's text (the live pipeline stores it as evidence; offline
    /// checks do not need it).
    keep_raw: bool,
    /// Call events read so far, when asked for ([`Self::with_calls`]).
    calls: Option<Vec<DatedCall>>,
    /// Registrations appearing and ending, with the calls.
    contacts: Option<Vec<crate::domain::DatedContact>>,
    pub stats: ReadStats,
}

impl RecordReader {
    /// `reference` anchors dates that carry no year; `start` is the byte offset of the
    /// first line that will be pushed.
    pub fn new(reference: UnixMs, start: u64) -> Self {
        RecordReader {
            timestamps: Timestamper::new(reference),
            pending: None,
            settled: start,
            line_end: start,
            keep_raw: true,
            calls: None,
            contacts: None,
            stats: ReadStats::default(),
        }
    }

    /// Records come without their text.
    pub fn without_raw(mut self) -> Self {
        self.keep_raw = false;
        self
    }

    /// Also keeps the dialplan's call events, taken with [`Self::take_calls`].
    pub fn with_calls(mut self) -> Self {
        self.calls = Some(Vec::new());
        self
    }

    /// The call events read since the last take.
    pub fn take_calls(&mut self) -> Vec<DatedCall> {
        self.calls.as_mut().map(std::mem::take).unwrap_or_default()
    }

    /// Also keeps the registrations appearing and ending, taken with
    /// [`Self::take_contacts`].
    pub fn with_contacts(mut self) -> Self {
        self.contacts = Some(Vec::new());
        self
    }

    pub fn take_contacts(&mut self) -> Vec<crate::domain::DatedContact> {
        self.contacts.as_mut().map(std::mem::take).unwrap_or_default()
    }

    /// A registrar or `Registered SIP` line, on one line of its own: its contact change.
    fn keep_contact(&mut self, shape: Shape, date: &str, message: &str) {
        let Some(contacts) = &mut self.contacts else { return };
        let change = match shape {
            Shape::PjsipAddedContact | Shape::PjsipRemovedContact => super::contacts::from_registrar(message),
            Shape::SipRegistered => super::contacts::from_sip_registered(message),
            _ => None,
        };
        if let Some(change) = change {
            contacts.push(crate::domain::DatedContact { at: self.timestamps.convert(date), change });
        }
    }

    /// Offset up to which every line has been fully judged. A reader resumed there
    /// produces no record twice and misses none.
    pub fn settled_offset(&self) -> u64 {
        self.pending.as_ref().map_or(self.settled, |p| p.start)
    }

    /// Passes over the whole lines at the start of `data` (which starts a line at offset
    /// `start`) that can neither begin nor continue a record, counting them as read;
    /// returns how many bytes that was. Such lines name none of [`messages::FILES`]
    /// (every reader borrows the file from the line) and are not JSON (which may
    /// escape it), so [`Self::push_bytes`] would judge each of them and find nothing.
    /// Nothing is passed over while a record is pending.
    pub fn skip_quiet_lines(&mut self, data: &[u8], start: u64) -> usize {
        if self.pending.is_some() || data.first() == Some(&b'{') {
            return 0;
        }
        let dialplan = messages::FILES.iter().position(|f| *f == super::dialplan::FILE).unwrap_or(usize::MAX);
        let mut from = 0;
        let named = loop {
            let Some((at, file)) = FILE_NAMES.find(&data[from..]) else {
                break memchr::memrchr(b'\n', data).map_or(0, |nl| nl + 1);
            };
            let at = from + at;
            let line_start = memchr::memrchr(b'\n', &data[..at]).map_or(0, |nl| nl + 1);
            let Some(line_end) = memchr::memchr(b'\n', &data[at..]).map(|nl| at + nl) else {
                break line_start;
            };
            let line = &data[line_start..line_end];
            // A dialplan line that is no call line, naming no other file, is quiet too.
            let quiet_dialplan = file == dialplan
                && !may_be_call_line(line)
                && FILE_NAMES.find(&data[at + 1..line_end]).is_none();
            if !quiet_dialplan {
                break line_start;
            }
            from = line_end + 1;
        };
        let quiet = json_line_start(&data[..named]).unwrap_or(named);
        if quiet > 0 {
            self.stats.lines += memchr::memchr_iter(b'\n', &data[..quiet]).count() as u64;
            self.settled = start + quiet as u64;
            self.line_end = self.settled;
        }
        quiet
    }

    /// Feeds one physical line as bytes. Lines of files sipwarden never reads are passed
    /// over undecoded; the rest are decoded, lossily if need be (an attacker must not
    /// hide an attempt behind one invalid byte). Returns false for invalid UTF-8.
    pub fn push_bytes(&mut self, bytes: &[u8], start: u64, end: u64, out: &mut Vec<ReadRecord>) -> bool {
        if self.pending.is_none() && envelope::is_skippable(bytes, &messages::FILES) {
            self.stats.lines += 1;
            self.settled = end;
            return true;
        }
        self.push_decoded(bytes, start, end, out)
    }

    /// [`Self::push_bytes`] without the quick look for lines of other files: for a
    /// reader that passes over quiet lines with [`Self::skip_quiet_lines`] first, the
    /// lines left nearly all need decoding.
    pub fn push_decoded(&mut self, bytes: &[u8], start: u64, end: u64, out: &mut Vec<ReadRecord>) -> bool {
        match std::str::from_utf8(bytes) {
            Ok(text) => {
                self.push(text, start, end, out);
                true
            }
            Err(_) => {
                self.push(&String::from_utf8_lossy(bytes), start, end, out);
                false
            }
        }
    }

    /// Feeds one physical line (without its newline) spanning `[start, end)` in the file.
    pub fn push(&mut self, line: &str, start: u64, end: u64, out: &mut Vec<ReadRecord>) {
        self.stats.lines += 1;
        self.line_end = end;
        if let Some(mut p) = self.pending.take() {
            p.message.push('\n');
            p.message.push_str(line);
            p.raw.push('\n');
            p.raw.push_str(line);
            p.lines += 1;
            match judge(p.shape, &p.message, true) {
                Some(judged) => {
                    self.emit(judged, &p.date, &p.raw, out);
                    self.settled = end;
                }
                None if p.lines >= messages::max_record_lines(p.shape)
                    || p.message.len() >= MAX_RECORD_BYTES =>
                {
                    self.give_up(p, out);
                    self.settled = end;
                }
                None => self.pending = Some(p),
            }
            return;
        }
        self.settled = end;
        let Some(env) = envelope::parse(line) else {
            return;
        };
        let Some(shape) = messages::shape(&env.file, &env.message) else {
            return;
        };
        let multi = env.from_json && env.message.contains('\n');
        if !multi {
            self.keep_contact(shape, &env.date, &env.message);
        }
        match judge(shape, &env.message, multi) {
            Some(judged) => self.emit(judged, &env.date, line, out),
            // JSON keeps a whole record on one line: nothing more will come for it.
            None if env.from_json => self.emit(Judged::Broken, &env.date, line, out),
            None => {
                self.pending = Some(Pending {
                    shape,
                    start,
                    date: env.date.into_owned(),
                    message: env.message.into_owned(),
                    raw: line.to_owned(),
                    lines: 1,
                })
            }
        }
    }

    /// End of input (offline reading): a record still waiting is judged as it is.
    pub fn finish(&mut self, out: &mut Vec<ReadRecord>) {
        if let Some(p) = self.pending.take() {
            self.give_up(p, out);
        }
    }

    fn give_up(&mut self, p: Pending, out: &mut Vec<ReadRecord>) {
        self.stats.swallowed_lines += (p.lines - 1) as u64;
        self.stats.tampered_records += 1;
        // A call line's sender is in its fixed prefix; a broken security event has no
        // address we can trust.
        let ip = messages::incomplete_call_sender(p.shape, &p.message);
        let event = ip.map(|ip| {
            let service = if p.shape == Shape::SipCallFrom {
                crate::domain::Service::Sip
            } else {
                crate::domain::Service::Pjsip
            };
            LogEvent {
                at: self.timestamps.convert(&p.date),
                ip: Some(ip),
                service,
                account: None,
                outcome: crate::domain::Outcome::Failure(crate::domain::FailureKind::NoExtension),
                tampered: true,
                security_event: false,
                session: None,
            }
        });
        if event.is_some() {
            self.stats.events += 1;
        }
        out.push(ReadRecord { event, suspects: None, tampered: true, raw: p.raw, end: self.line_end });
    }

    fn emit(&mut self, judged: Judged, date: &str, raw: &str, out: &mut Vec<ReadRecord>) {
        let (p, event_tv, security_event) = match judged {
            Judged::Ignored => return,
            Judged::Call(event) => {
                if let Some(calls) = &mut self.calls {
                    calls.push(DatedCall { at: self.timestamps.convert(date), event });
                }
                return;
            }
            Judged::Broken | Judged::Forged(_) => {
                self.stats.tampered_records += 1;
                let suspects = match judged {
                    Judged::Forged(s) => Some(Box::new(s)),
                    _ => None,
                };
                out.push(ReadRecord {
                    event: None,
                    suspects,
                    tampered: true,
                    raw: raw.to_owned(),
                    end: self.line_end,
                });
                return;
            }
            Judged::Module(p) => (p, None, false),
            Judged::Security(p, tv) => (p, tv, true),
        };
        let at = event_tv.or_else(|| self.timestamps.convert(date));
        if p.tampered {
            self.stats.tampered_records += 1;
        }
        self.stats.events += 1;
        out.push(ReadRecord {
            tampered: p.tampered,
            suspects: None,
            event: Some(LogEvent {
                at,
                ip: p.ip,
                service: p.service,
                account: p.account,
                outcome: p.outcome,
                tampered: p.tampered,
                security_event,
                session: p.session,
            }),
            raw: if self.keep_raw { raw.to_owned() } else { String::new() },
            end: self.line_end,
        });
    }
}

enum Judged {
    Module(Parsed),
    Security(Parsed, Option<UnixMs>),
    /// Complete, but not an outcome sipwarden counts.
    Ignored,
    /// A call starting or ending (kept only by a reader that asked for calls).
    Call(CallEvent),
    /// Complete yet matching no strict pattern while showing injection signs.
    Broken,
    /// A security event on one line naming several possible senders.
    Forged(crate::domain::Suspects),
}

/// Judges a (possibly joined) record; `None` while it is still incomplete.
fn judge(shape: Shape, message: &str, multi: bool) -> Option<Judged> {
    if shape == Shape::Security {
        return match security::parse(message, multi) {
            SecurityRecord::Event(p, tv) => Some(Judged::Security(p, tv)),
            SecurityRecord::Other if multi => Some(Judged::Broken),
            SecurityRecord::Other => Some(Judged::Ignored),
            SecurityRecord::Forged(s) if !multi => Some(Judged::Forged(s)),
            SecurityRecord::Forged(_) => Some(Judged::Broken),
            SecurityRecord::Malformed => None,
        };
    }
    if messages::is_incomplete(shape, message) {
        return None;
    }
    if shape == Shape::DialplanCall {
        // A call line cut by caller text may have forged lines inside it.
        return Some(match super::dialplan::parse(message) {
            Some(call) if !multi => Judged::Call(call),
            _ if multi => Judged::Broken,
            _ => Judged::Ignored,
        });
    }
    Some(match messages::parse(shape, message, multi) {
        Some(mut p) => {
            p.tampered |= multi;
            Judged::Module(p)
        }
        None if multi => Judged::Broken,
        None => Judged::Ignored,
    })
}
