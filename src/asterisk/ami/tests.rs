use std::collections::BTreeMap;

use super::*;
use crate::domain::Outcome;

fn recording() -> Vec<u8> {
    std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/office-day/ami-raw.txt")).unwrap()
}

/// Everything the recorder received, read as the client reads it.
fn read_all(bytes: &[u8], chunk: usize) -> (Vec<Received>, Reader) {
    let mut reader = Reader::default();
    let mut buffer = Vec::new();
    let mut out = Vec::new();
    // The banner line ends with a single CRLF.
    let banner_end = memchr::memmem::find(bytes, b"\r\n").unwrap() + 2;
    for piece in bytes[banner_end..].chunks(chunk) {
        buffer.extend_from_slice(piece);
        out.extend(take_blocks(&mut buffer).iter().map(|b| reader.read(b)));
    }
    assert!(buffer.is_empty(), "nothing left half-read");
    (out, reader)
}

#[test]
fn the_recorded_stream_is_read_whole_and_matches_the_truth() {
    for chunk in [1, 7, 4096] {
        let (received, reader) = read_all(&recording(), chunk);
        assert_eq!(reader.malformed, 0, "chunks of {chunk}");
        let mut failures: BTreeMap<String, u32> = BTreeMap::new();
        let (mut successes, mut starts, mut ends) = (0, Vec::new(), 0);
        for r in &received {
            match r {
                Received::Auth(e) if e.is_failure() => {
                    *failures.entry(e.ip.unwrap().to_string()).or_default() += 1
                }
                Received::Auth(e) => {
                    assert_eq!(e.outcome, Outcome::Success);
                    successes += 1;
                }
                Received::Call { event: CallEvent::Start(s), .. } => starts.push(s.clone()),
                Received::Call { event: CallEvent::End { .. }, .. } => ends += 1,
                _ => {}
            }
        }
        let truth: BTreeMap<String, u32> =
            [("10.98.0.20".into(), 1), ("10.98.0.66".into(), 26), ("10.98.0.77".into(), 16)].into();
        assert_eq!(failures, truth);
        assert_eq!(successes, 78);
        assert_eq!((starts.len(), ends), (66, 66));
        assert_eq!(starts.iter().filter(|s| s.endpoint == "1002").count(), 60, "the fraud calls");
        let first = starts.iter().find(|s| s.endpoint == "1002").unwrap();
        assert_eq!((first.number.as_str(), first.context.as_str()), ("00882232332113", "from-internal"));
    }
}

const INVALID_ACCOUNT: &str = "Event: InvalidAccountID\r\nPrivilege: security,all\r\nEventTV: 2026-11-24T22:23:43.739+0000\r\nSeverity: Error\r\nService: PJSIP\r\nEventVersion: 1\r\nAccountID: ACCOUNT\r\nSessionID: 812861224@198.51.100.7\r\nLocalAddress: IPV4/UDP/127.0.0.1/5060\r\nRemoteAddress: IPV4/UDP/198.51.100.7/37972";

fn with_account(account: &str) -> Vec<Received> {
    let text = format!("{}\r\n\r\n", INVALID_ACCOUNT.replace("ACCOUNT", account));
    let mut buffer = text.into_bytes();
    let mut reader = Reader::default();
    take_blocks(&mut buffer).iter().map(|b| reader.read(b)).collect()
}

fn ip_of(r: &Received) -> Option<String> {
    match r {
        Received::Auth(e) => e.ip.map(|ip| ip.to_string()),
        _ => None,
    }
}

#[test]
fn a_plain_event_names_its_sender() {
    let got = with_account("7070");
    assert_eq!(got.iter().map(ip_of).collect::<Vec<_>>(), [Some("198.51.100.7".to_string())]);
}

/// I5: a From user with CR/LF adds a RemoteAddress header before the real one.
#[test]
fn an_added_header_makes_the_block_unread() {
    let got = with_account("x\r\nRemoteAddress: IPV4/UDP/6.6.6.6/1");
    assert_eq!(got, [Received::Suspect(Malformed::Repeated)]);
    // I4: a bare line feed stays inside the value.
    assert_eq!(
        with_account("x\nRemoteAddress=\"IPV4/UDP/6.6.6.6/1\""),
        [Received::Suspect(Malformed::NotAHeader)]
    );
}

/// I10b: CR/LF CR/LF ends the real block early and starts a forged SuccessfulAuth that
/// the real block's tail completes with the attacker's own address.
#[test]
fn a_forged_block_after_a_cut_one_teaches_nothing() {
    let forged = "x\r\n\r\nEvent: SuccessfulAuth\r\nPrivilege: security,all\r\nEventTV: 2026-11-24T22:23:43.739+0000\r\nSeverity: Informational\r\nService: PJSIP\r\nEventVersion: 1\r\nAccountID: 1001";
    let text = format!("{}\r\nUsingPassword: 1\r\n\r\n", INVALID_ACCOUNT.replace("ACCOUNT", forged));
    let mut buffer = text.into_bytes();
    let mut reader = Reader::default();
    let got: Vec<Received> = take_blocks(&mut buffer).iter().map(|b| reader.read(b)).collect();
    assert_eq!(got.len(), 2);
    assert!(matches!(got[0], Received::Suspect(_)), "the cut block: {:?}", got[0]);
    assert!(matches!(got[1], Received::Suspect(_)), "the forged success: {:?}", got[1]);
    // Later blocks are read again.
    for _ in 0..SUSPECT_AFTER_MALFORMED {
        reader.read(&INVALID_ACCOUNT.replace("ACCOUNT", "1"));
    }
    assert!(matches!(reader.read(&INVALID_ACCOUNT.replace("ACCOUNT", "1")), Received::Auth(_)));
}

#[test]
fn a_dialled_leg_and_a_local_channel_are_no_new_calls() {
    let block = |channel: &str, unique: &str, linked: &str| {
        format!(
            "Event: Newchannel\r\nPrivilege: call,all\r\nChannel: {channel}\r\nChannelState: 0\r\nChannelStateDesc: Down\r\nCallerIDNum: 1001\r\nCallerIDName: <unknown>\r\nConnectedLineNum: <unknown>\r\nConnectedLineName: <unknown>\r\nLanguage: en\r\nAccountCode: \r\nContext: from-internal\r\nExten: 0049301234567\r\nPriority: 1\r\nUniqueid: {unique}\r\nLinkedid: {linked}"
        )
    };
    let mut reader = Reader::default();
    assert!(matches!(reader.read(&block("PJSIP/1001-00000001", "1.1", "1.1")), Received::Call { .. }));
    assert_eq!(reader.read(&block("PJSIP/itsp-00000002", "1.2", "1.1")), Received::Other);
    assert_eq!(reader.read(&block("Local/1001@from-internal-00000001;1", "1.3", "1.3")), Received::Other);
}

#[test]
fn actions_are_one_block_each_whatever_their_values_hold() {
    assert_eq!(
        login("sw-1", "sipwarden", "s3cret"),
        "Action: Login\r\nActionID: sw-1\r\nUsername: sipwarden\r\nSecret: s3cret\r\nEvents: security,call,system\r\n\r\n"
    );
    let injected = db_put("sw-2", "sipwarden-locked", "1002\r\nAction: Originate", "1");
    assert_eq!(injected.matches("Action:").count(), 1);
    assert_eq!(channels_of("PJSIP", "1002"), "/^PJSIP\\/1002-/");
    assert_eq!(channels_of("SIP", "a.b"), "/^SIP\\/a\\.b-/");
}
