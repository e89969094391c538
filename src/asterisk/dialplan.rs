//! The dialplan's own lines about calls (docs/ASTERISK.md §4, `main/pbx.c`): a channel
//! executing its first step, and a channel leaving the dialplan. Verbose level 3.
//!
//! The number dialled is caller text, and an application's data may repeat it; the
//! channel name is Asterisk's. A line where the step Asterisk writes after the number
//! appears more than once is not read: nothing tells which one is real.

use std::sync::LazyLock;

use regex::Regex;

use crate::domain::{CallEvent, CallStart};

/// The file pbx.c lines name.
pub const FILE: &str = "pbx.c";

/// Whether a pbx.c message is one sipwarden reads.
pub fn is_call_line(msg: &str) -> bool {
    let m = without_verbose_prefix(msg);
    match m.strip_prefix("Executing [") {
        // A first step, or one cut before its step could show (a full log has many
        // later steps: they are passed over without a pattern).
        Some(rest) => rest.contains(":1] ") || !rest.contains("] "),
        None => m.starts_with("Spawn extension (") || m.starts_with("Auto fallthrough, "),
    }
}

/// Lines a cut call line may swallow: enough for a forged line and the real tail;
/// few, so a cut line cannot hide the records after it.
pub const MAX_LINES: usize = 4;

/// A first step cut by a newline in the number dialled, before Asterisk's own part of
/// the line: the next lines may be the caller's forgery. A line cut later (in an
/// application's data) already names its channel and is read as it is.
pub fn is_incomplete(msg: &str) -> bool {
    without_verbose_prefix(msg).strip_prefix("Executing [").is_some_and(|rest| !STEP_BEGUN.is_match(rest))
}

/// The start of Asterisk's part: `@context:priority] `.
static STEP_BEGUN: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"@[^@\[\]:\n]+:\d+\] ").expect("static pattern"));

/// What Asterisk writes after the number: `@context:priority] Application("channel", `.
static STEP: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"@(?P<context>[^@\[\]:"\n]+):(?P<priority>\d+)\] [A-Za-z0-9_]+\("(?P<channel>[^"\n]+)", "#)
        .expect("static pattern")
});
static SPAWN_ENDED: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^Spawn extension \([^\n]*, \d+\) exited [A-Za-z-]+ on '(?P<channel>[^'\n]+)'$")
        .expect("static pattern")
});
static FALLTHROUGH: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^Auto fallthrough, channel '(?P<channel>[^'\n]+)' status is '[A-Z_]+'$")
        .expect("static pattern")
});

/// Asterisk before 13 kept the console's `    -- ` / `  == ` in the file.
fn without_verbose_prefix(msg: &str) -> &str {
    let m = msg.trim_start();
    m.strip_prefix("-- ").or_else(|| m.strip_prefix("== ")).unwrap_or(m).trim_start()
}

/// A complete single-line pbx.c message as a call event: an `Executing` line at
/// priority 1 is a start (a Goto or Gosub into another context starts at 1 again: the
/// reader of the events keeps the first one per channel).
pub fn parse(msg: &str) -> Option<CallEvent> {
    let m = without_verbose_prefix(msg);
    if let Some(rest) = m.strip_prefix("Executing [") {
        // Caller text before it or in the data may imitate the step: then nothing
        // tells which one Asterisk wrote.
        let mut steps = STEP.captures_iter(rest);
        let c = steps.next()?;
        if steps.next().is_some() {
            return None;
        }
        // A channel enters the dialplan at priority 1; later steps are the same call.
        if c.name("priority")?.as_str() != "1" {
            return None;
        }
        let number = &rest[..c.get(0)?.start()];
        return call_start(c.name("channel")?.as_str(), number, c.name("context")?.as_str())
            .map(CallEvent::Start);
    }
    let c = SPAWN_ENDED.captures(m).or_else(|| FALLTHROUGH.captures(m))?;
    Some(CallEvent::End { channel: c.name("channel")?.as_str().to_owned() })
}

/// A call placed on `channel` (Asterisk's name for it) to `number` in `context`, when
/// the channel is a phone's or a trunk's.
pub fn call_start(channel: &str, number: &str, context: &str) -> Option<CallStart> {
    let (tech, endpoint) = split_channel(channel)?;
    Some(CallStart {
        channel: channel.to_owned(),
        tech: tech.to_owned(),
        endpoint: endpoint.to_owned(),
        number: number.to_owned(),
        context: context.to_owned(),
    })
}

/// `PJSIP/1002-00000006` → (`PJSIP`, `1002`). Channels of phones and trunks only:
/// `Local/…` and others are legs Asterisk makes itself.
fn split_channel(channel: &str) -> Option<(&str, &str)> {
    let (tech, rest) = channel.split_once('/')?;
    if !matches!(tech, "PJSIP" | "SIP" | "IAX2") {
        return None;
    }
    let (endpoint, seq) = rest.rsplit_once('-')?;
    (!endpoint.is_empty() && !seq.is_empty() && seq.bytes().all(|b| b.is_ascii_alphanumeric()))
        .then_some((tech, endpoint))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn start(msg: &str) -> Option<CallStart> {
        match parse(msg)? {
            CallEvent::Start(s) => Some(s),
            CallEvent::End { .. } => None,
        }
    }

    #[test]
    fn reads_the_first_step_of_a_call_as_asterisk_20_wrote_it() {
        let s = start(
            r#"Executing [00882232332113@from-internal:1] Answer("PJSIP/1002-00000006", "") in new stack"#,
        )
        .unwrap();
        assert_eq!(
            (s.channel.as_str(), s.tech.as_str(), s.endpoint.as_str(), s.number.as_str(), s.context.as_str()),
            ("PJSIP/1002-00000006", "PJSIP", "1002", "00882232332113", "from-internal")
        );
        let old = start(r#"    -- Executing [0049301234567@internal:1] Dial("SIP/office-desk-0000001a", "PJSIP/0049301234567@itsp,3") in new stack"#).unwrap();
        assert_eq!(
            start(
                r#"Executing [0049301234567@internal:2] Wait("SIP/office-desk-0000001a", "3") in new stack"#
            ),
            None,
            "a later step"
        );
        assert_eq!((old.endpoint.as_str(), old.tech.as_str()), ("office-desk", "SIP"));
        assert_eq!(old.number, "0049301234567");
        assert_eq!(
            start(
                r#"Executing [s@macro-dialout:1] Set("Local/1001@from-internal-00000001;1", "x=1") in new stack"#
            ),
            None
        );
    }

    /// A chan_sip guest dials a number holding a newline and a whole forged line: the
    /// reader joins the cut line and reads no call from it.
    #[test]
    fn a_forged_line_inside_a_cut_call_line_is_no_call() {
        let text = concat!(
            "[Dec  1 21:45:21] VERBOSE[25595][C-00000007] pbx.c: Executing [9\n",
            "[Dec  1 21:45:21] VERBOSE[1][C-00000001] pbx.c: Executing [0088@from-internal:1] Answer(\"PJSIP/1001-00000001\", \"\") in new stack\n",
            "@from-sip-external:1] NoOp(\"SIP/guest-00000011\", \"\") in new stack\n",
            "[Dec  1 21:45:22] VERBOSE[25595][C-00000008] pbx.c: Executing [5551234@from-internal:1] Answer(\"PJSIP/1003-00000012\", \"\") in new stack\n",
        );
        let mut reader = crate::asterisk::RecordReader::new(1_764_000_000_000, 0).with_calls();
        let mut records = Vec::new();
        let mut offset = 0;
        for line in text.lines() {
            let end = offset + line.len() as u64 + 1;
            reader.push(line, offset, end, &mut records);
            offset = end;
        }
        let starts: Vec<String> = reader
            .take_calls()
            .into_iter()
            .filter_map(|c| match c.event {
                CallEvent::Start(s) => Some(s.endpoint),
                CallEvent::End { .. } => None,
            })
            .collect();
        assert_eq!(starts, ["1003"]);
        assert_eq!(reader.stats.tampered_records, 1, "the cut line is shown as tampered");
    }

    #[test]
    fn reads_the_end_of_a_channel() {
        let ended = |m: &str| match parse(m) {
            Some(CallEvent::End { channel }) => Some(channel),
            _ => None,
        };
        assert_eq!(
            ended(
                "Spawn extension (from-internal, 00882232332113, 3) exited non-zero on 'PJSIP/1002-00000006'"
            )
            .as_deref(),
            Some("PJSIP/1002-00000006")
        );
        assert_eq!(
            ended("Auto fallthrough, channel 'SIP/2001-00000003' status is 'UNKNOWN'").as_deref(),
            Some("SIP/2001-00000003")
        );
    }

    #[test]
    fn text_in_the_number_or_the_data_cannot_pose_as_another_channel() {
        // A guest dials a number that imitates an office phone's first step.
        let in_number = r#"Executing [0088@from-internal:1] Answer("PJSIP/1001-00000001", "@from-sip-external:1] NoOp("PJSIP/anonymous-00000009", "x") in new stack"#;
        assert_eq!(start(in_number), None);
        let in_data = r#"Executing [5551234@from-sip-external:1] NoOp("PJSIP/anonymous-00000009", "call 0088@from-internal:1] Answer("PJSIP/1001-00000001", ") in new stack"#;
        assert_eq!(start(in_data), None);
        let plain = r#"Executing [0088@from-internal:1] Dial("PJSIP/1001-00000001", "PJSIP/0088@itsp,3") in new stack"#;
        assert_eq!(start(plain).unwrap().endpoint, "1001");
        assert!(is_incomplete("Executing [9"));
        assert!(!is_incomplete(r#"Executing [1@a:1] Answer("PJSIP/1-0", "") in new stack"#));
        // Cut in the data: the channel is already named.
        let cut_late = r#"Executing [1@a:1] NoOp("PJSIP/1003-00000012", "from"#;
        assert!(!is_incomplete(cut_late));
        assert_eq!(start(cut_late).unwrap().endpoint, "1003");
    }
}
