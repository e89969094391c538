//! Lines built after docs/ASTERISK.md §2: every failure shape, and the injections of §0.1 and §2.7.

use std::net::IpAddr;

use super::reader::{ReadRecord, read_text};
use crate::domain::{FailureKind, LogEvent, Outcome, Service};

fn read(text: &str) -> Vec<ReadRecord> {
    read_text(text, 1_796_000_000_000)
}

fn events(text: &str) -> Vec<LogEvent> {
    read(text).into_iter().filter_map(|r| r.event).collect()
}

fn one(text: &str) -> LogEvent {
    let e = events(text);
    assert_eq!(e.len(), 1, "expected one event from {text:?}, got {e:?}");
    e.into_iter().next().unwrap()
}

fn ip(s: &str) -> Option<IpAddr> {
    Some(s.parse().unwrap())
}

fn assert_never_attributed_to(text: &str, framed: &str) {
    let framed: IpAddr = framed.parse().unwrap();
    for e in events(text) {
        assert_ne!(e.ip, Some(framed), "framed {framed} from {text:?}");
    }
}

const SIP: &str = "[Nov 24 20:57:57] NOTICE[15985] chan_sip.c: ";
const PJSIP: &str = "[Nov 24 22:16:11] NOTICE[25827] res_pjsip/pjsip_distributor.c: ";
const SEC: &str = "[Nov 24 22:16:11] SECURITY[25859] res_security_log.c: ";

// ---- chan_sip -------------------------------------------------------------

#[test]
fn chan_sip_registration_every_reason() {
    let reasons = [
        ("Wrong password", FailureKind::WrongPassword),
        ("Username/auth name mismatch", FailureKind::WrongPassword),
        ("No matching peer found", FailureKind::UnknownAccount),
        ("Not a local domain", FailureKind::Rejected),
        ("Peer is not supposed to register", FailureKind::Rejected),
        ("Device does not match ACL", FailureKind::AclDenied),
        ("Device not configured to use this transport type", FailureKind::Rejected),
        ("RTP initialization failed", FailureKind::Rejected),
        ("Unknown failure", FailureKind::Rejected),
    ];
    for (reason, kind) in reasons {
        let e = one(&format!(
            "{SIP}Registration from '\"1001\" <sip:1001@127.0.0.1>' failed for '127.0.0.4:5060' - {reason}"
        ));
        assert_eq!(e.ip, ip("127.0.0.4"));
        assert_eq!(e.service, Service::Sip);
        assert_eq!(e.outcome, Outcome::Failure(kind), "{reason}");
        assert_eq!(e.account.as_deref(), Some("1001"));
        assert!(!e.tampered);
    }
}

#[test]
fn chan_sip_ipv6_and_old_ip_only_forms() {
    let e = one(&format!(
        "{SIP}Registration from '<sip:1001@[2001:db8::1]>' failed for '[2001:db8::50]:5060' - Wrong password"
    ));
    assert_eq!(e.ip, ip("2001:db8::50"));
    let e = one(&format!("{SIP}Registration from '<sip:1001@x>' failed for '198.51.100.7' - Wrong password"));
    assert_eq!(e.ip, ip("198.51.100.7"));
}

#[test]
fn chan_sip_call_to_missing_extension() {
    let e = one(
        "[Nov 24 20:57:50] NOTICE[15985][C-00000001] chan_sip.c: Call from '' (127.0.0.3:5060) to extension '1513705180' rejected because extension not found in context 'public'.",
    );
    assert_eq!(e.ip, ip("127.0.0.3"));
    assert_eq!(e.outcome, Outcome::Failure(FailureKind::NoExtension));
    assert_eq!(e.account.as_deref(), Some("1513705180"));
}

#[test]
fn lines_without_a_packet_address_are_not_counted() {
    assert!(events(&format!("{SIP}Failed to authenticate device \"1003\" <sip:1003@127.0.0.1>;tag=313040 for INVITE, code = -1")).is_empty());
}

// ---- res_pjsip ------------------------------------------------------------

#[test]
fn pjsip_distributor_every_reason_and_form() {
    let cases = [
        ("No matching endpoint found", FailureKind::UnknownAccount),
        ("Not match Endpoint ACL", FailureKind::AclDenied),
        ("Not match Endpoint Contact ACL", FailureKind::AclDenied),
        ("Failed to authenticate", FailureKind::WrongPassword),
        ("Error to authenticate", FailureKind::Rejected),
        ("No matching endpoint found after 5 tries in 0.005 ms", FailureKind::UnknownAccount),
    ];
    for (reason, kind) in cases {
        let e = one(&format!(
            "{PJSIP}Request 'REGISTER' from '\"2001\" <sip:2001@10.99.0.1>' failed for '198.51.100.7:59060' (callid: 712167310@198.51.100.7) - {reason}"
        ));
        assert_eq!(e.ip, ip("198.51.100.7"), "{reason}");
        assert_eq!(e.outcome, Outcome::Failure(kind));
        assert_eq!(e.service, Service::Pjsip);
        assert_eq!(e.account.as_deref(), Some("2001"));
    }
}

#[test]
fn pjsip_ipv6_bracketed_legacy_unbracketed_and_oldest_form() {
    let e = one(&format!(
        "{PJSIP}Request 'INVITE' from '<sip:x@[::1]>' failed for '[2001:db8::50]:5061' (callid: c) - Failed to authenticate"
    ));
    assert_eq!(e.ip, ip("2001:db8::50"));
    let e = one(&format!(
        "{PJSIP}Request 'INVITE' from '<sip:x@[::1]>' failed for '2001:db8::50:5061' (callid: c) - Failed to authenticate"
    ));
    assert_eq!(e.ip, ip("2001:db8::50"));
    let e = one(&format!(
        "{PJSIP}Request from '<sip:100@10.0.0.1>' failed for '203.0.113.4:5060' (callid: z) - No matching endpoint found"
    ));
    assert_eq!(e.ip, ip("203.0.113.4"));
}

#[test]
fn pjsip_session_calls_in_three_generations() {
    let lines = [
        "[Nov 24 22:21:06] NOTICE[1] res_pjsip_session.c: Call from 'trunk' (UDP:2001:db8::50:5060) to extension '999' rejected because extension not found in context 'internal'.",
        "[Nov 24 22:21:06] NOTICE[1] res_pjsip_session.c: Call from 'trunk' (UDP:[2001:db8::50]:5060) to extension '999' rejected because extension not found in context 'internal'.",
        "[Nov 24 22:21:06] NOTICE[1] res_pjsip_session.c:  2001: Call (UDP:[2001:db8::50]:46976) to extension '999' rejected because extension not found in context 'internal'.",
    ];
    for line in lines {
        let e = one(line);
        assert_eq!(e.ip, ip("2001:db8::50"), "{line}");
        assert_eq!(e.outcome, Outcome::Failure(FailureKind::NoExtension));
        assert_eq!(e.service, Service::Pjsip);
    }
    let e = one(
        "[Nov 24 22:21:06] NOTICE[1] res_pjsip_session.c:  2001: Call (UDP:192.168.1.50:46976) to extension '999' rejected because extension not found in context 'internal'.",
    );
    assert_eq!(e.ip, ip("192.168.1.50"));
}

// ---- AMI and IAX2 -----------------------------------------------------------

#[test]
fn ami_login_failure_counts_once_per_attempt() {
    let text = "[Nov 24 22:20:01] NOTICE[25900] manager.c: 198.51.100.7 tried to authenticate with nonexistent user 'bob'\n\
                [Nov 24 22:20:01] NOTICE[25900] manager.c: 198.51.100.7 failed to authenticate as 'bob'\n\
                [Nov 24 22:20:02] NOTICE[25900] acl.c: Manager User ACL: Rejecting '198.51.100.7' due to a failure to pass ACL '(BASELINE)'\n\
                [Nov 24 22:20:02] NOTICE[25900] manager.c: 198.51.100.7 failed to pass IP ACL as 'admin'\n\
                [Nov 24 22:20:02] NOTICE[25900] manager.c: 198.51.100.7 failed to authenticate as 'admin'";
    let mut attempts = crate::policy::attempts::Attempts::default();
    let e: Vec<LogEvent> = events(text)
        .into_iter()
        .filter(|e| attempts.is_new(e.ip.unwrap(), e.session, e.is_preliminary(), 0))
        .collect();
    assert_eq!(e.len(), 2);
    assert!(e.iter().all(|e| e.ip == ip("198.51.100.7") && e.service == Service::Ami));
    assert_eq!(e[0].account.as_deref(), Some("bob"));
    assert_eq!(e[0].outcome, Outcome::Failure(FailureKind::UnknownAccount));
    let v6 = one("[Nov 24 22:20:01] NOTICE[1] manager.c: 2001:db8::7 failed to authenticate as 'admin'");
    assert_eq!(v6.ip, ip("2001:db8::7"));
}

#[test]
fn iax2_failures_with_authdebug() {
    let lines = [
        (
            "[Nov 24 22:21:49] WARNING[25850] chan_iax2.c: Host 127.0.0.1:4569 failed to authenticate as iaxuser",
            "127.0.0.1",
        ),
        (
            "[Nov 24 22:21:49] NOTICE[25850] chan_iax2.c: Host 198.51.100.7 failed to authenticate as iaxuser",
            "198.51.100.7",
        ),
        (
            "[Nov 24 22:21:49] NOTICE[1] chan_iax2.c: Rejected connect attempt from 198.51.100.7:4569, who was trying to reach 'x@y'",
            "198.51.100.7",
        ),
        (
            "[Nov 24 22:21:49] NOTICE[1] chan_iax2.c: Rejected connect attempt from [2001:db8::9]:4569, request 'x@y' does not exist",
            "2001:db8::9",
        ),
        (
            "[Nov 24 22:21:49] NOTICE[1] chan_iax2.c: No registration for peer 'p' (from 198.51.100.7)",
            "198.51.100.7",
        ),
        (
            "[Nov 24 22:21:49] NOTICE[1] chan_iax2.c: Peer 'p' is not dynamic (from 198.51.100.7)",
            "198.51.100.7",
        ),
        (
            "[Nov 24 22:21:49] NOTICE[1] chan_iax2.c: Host 198.51.100.7 denied access to register peer 'p'",
            "198.51.100.7",
        ),
        (
            "[Nov 24 22:21:49] NOTICE[25852] chan_iax2.c: Host 127.0.0.1 failed MD5 authentication for 'iaxuser' (e550e4756 != 723b21ba3)",
            "127.0.0.1",
        ),
        (
            "[Nov 24 22:21:49] NOTICE[1] chan_iax2.c: Host 198.51.100.7 did not provide proper plaintext password for 'p'",
            "198.51.100.7",
        ),
    ];
    for (line, addr) in lines {
        let e = one(line);
        assert_eq!(e.ip, ip(addr), "{line}");
        assert_eq!(e.service, Service::Iax2);
    }
    // RSA lines name a peer, not an address.
    assert!(events("[Nov 24 22:21:49] NOTICE[1] chan_iax2.c: Host 'peer1' trying to do RSA authentication, but we have no inkeys").is_empty());
}

// ---- security events ---------------------------------------------------------

#[test]
fn security_events_read_field_by_field() {
    let failed_acl = format!(
        "{SEC}SecurityEvent=\"FailedACL\",EventTV=\"2026-11-24T22:16:11.216+0000\",Severity=\"Error\",Service=\"PJSIP\",EventVersion=\"1\",AccountID=\"2001\",SessionID=\"712167310@198.51.100.7\",LocalAddress=\"IPV4/UDP/127.0.0.1/5060\",RemoteAddress=\"IPV4/UDP/198.51.100.7/59060\",ACLName=\"not_match_endpoint_acl\""
    );
    let e = one(&failed_acl);
    assert_eq!(e.ip, ip("198.51.100.7"));
    assert_eq!(e.outcome, Outcome::Failure(FailureKind::AclDenied));
    assert_eq!(e.at, Some(1_795_558_571_216));
    assert!(e.security_event && !e.tampered);

    let sip = format!(
        "{SEC}SecurityEvent=\"InvalidPassword\",EventTV=\"2026-11-24T22:22:59.696+0000\",Severity=\"Error\",Service=\"SIP\",EventVersion=\"2\",AccountID=\"1001\",SessionID=\"0x7fbd60038c90\",LocalAddress=\"IPV4/UDP/192.168.1.50/5070\",RemoteAddress=\"IPV4/UDP/192.168.1.50/54080\",Challenge=\"42e73362\",ReceivedChallenge=\"42e73362\",ReceivedHash=\"137721bb186972b99b3af8ec52875024\""
    );
    let e = one(&sip);
    assert_eq!((e.ip, e.service, e.account.as_deref()), (ip("192.168.1.50"), Service::Sip, Some("1001")));

    let ami = format!(
        "{SEC}SecurityEvent=\"InvalidPassword\",EventTV=\"2026-11-24T22:20:00.000+0000\",Severity=\"Error\",Service=\"AMI\",EventVersion=\"2\",AccountID=\"admin\",SessionID=\"0x7fbd5c024da0\",LocalAddress=\"IPV4/TCP/0.0.0.0/5038\",RemoteAddress=\"IPV4/TCP/127.0.0.1/43187\",SessionTV=\"1970-01-01T00:00:00.000+0000\""
    );
    assert_eq!(one(&ami).service, Service::Ami);

    let account = format!(
        "{SEC}SecurityEvent=\"InvalidAccountID\",EventTV=\"2026-11-24T22:20:00.000+0000\",Severity=\"Error\",Service=\"PJSIP\",EventVersion=\"1\",AccountID=\"9999\",SessionID=\"1@x\",LocalAddress=\"IPV6/UDP/::1/5060\",RemoteAddress=\"IPV6/UDP/2001:db8::50/53470\""
    );
    let e = one(&account);
    assert_eq!((e.ip, e.outcome), (ip("2001:db8::50"), Outcome::Failure(FailureKind::UnknownAccount)));

    let old = format!(
        "{SEC}SecurityEvent=\"InvalidPassword\",EventTV=\"1364816362-5432\",Severity=\"Error\",Service=\"SIP\",EventVersion=\"1\",AccountID=\"100\",SessionID=\"0x1\",LocalAddress=\"IPV4/UDP/10.0.0.1/5060\",RemoteAddress=\"IPV4/UDP/198.51.100.3/5060\""
    );
    assert_eq!(one(&old).at, Some(1_364_816_362_005));
}

#[test]
fn challenge_sent_is_not_a_failure_and_successful_auth_is_a_success() {
    let sent = format!(
        "{SEC}SecurityEvent=\"ChallengeSent\",EventTV=\"2026-11-24T21:04:50.537+0000\",Severity=\"Informational\",Service=\"PJSIP\",EventVersion=\"1\",AccountID=\"<unknown>\",SessionID=\"539939352\",LocalAddress=\"IPV4/UDP/127.0.0.1/5060\",RemoteAddress=\"IPV4/UDP/127.0.0.13/5060\",Challenge=\"\""
    );
    assert!(events(&sent).is_empty());
    let ok = format!(
        "{SEC}SecurityEvent=\"SuccessfulAuth\",EventTV=\"2026-11-24T21:04:50.537+0000\",Severity=\"Informational\",Service=\"PJSIP\",EventVersion=\"1\",AccountID=\"2002\",SessionID=\"1057811983@2001:db8::50\",LocalAddress=\"IPV6/UDP/::1/5060\",RemoteAddress=\"IPV6/UDP/2001:db8::50/53470\",UsingPassword=\"1\""
    );
    let e = one(&ok);
    assert_eq!((e.ip, e.outcome), (ip("2001:db8::50"), Outcome::Success));
}

// ---- envelopes -----------------------------------------------------------------

#[test]
fn every_envelope_yields_the_same_event() {
    let msg = "Registration from '<sip:1001@10.99.0.1>' failed for '192.168.1.50:54080' - Wrong password";
    let lines = [
        format!("[Nov 24 22:22:59] NOTICE[25842] chan_sip.c: {msg}"),
        format!("[2026-11-24 22:22:59] NOTICE[25842] chan_sip.c: {msg}"),
        format!("[2026-11-24 22:22:59.696] NOTICE[25842][C-0000000a] chan_sip.c: {msg}"),
        format!("[2026-11-24 22:22:59.696] NOTICE[25842]: chan_sip.c:29078 handle_request_register: {msg}"),
        format!(
            "Nov 24 22:22:59 pbx asterisk[25791]: NOTICE[25842]: chan_sip.c:29078 in handle_request_register: {msg}"
        ),
        format!(
            "{{\"hostname\":\"\",\"timestamp\":\"2026-11-24 22:22:59.696\",\"identifiers\":{{\"lwp\":25842,\"callid\":\"\"}},\"logmsg\":{{\"location\":{{\"filename\":\"chan_sip.c\",\"function\":\"handle_request_register\",\"line\":29078}},\"level\":\"NOTICE\",\"message\":\"{msg}\\n\"}}}}"
        ),
    ];
    for line in &lines {
        let e = one(line);
        assert_eq!(e.ip, ip("192.168.1.50"), "{line}");
        assert!(e.at.is_some(), "{line}");
    }
}

// ---- §2.7 injections -----------------------------------------------------------

#[test]
fn i1_display_name_with_a_second_failed_for_clause() {
    let line = format!(
        "{PJSIP}Request 'REGISTER' from '\"x' failed for '6.6.6.6:5060' (callid: 1) - No matching endpoint found\" <sip:x@10.99.0.1>' failed for '198.51.100.8:5060' (callid: 77) - No matching endpoint found"
    );
    let e = one(&line);
    assert_eq!(e.ip, ip("198.51.100.8"));
    assert!(e.tampered);
}

#[test]
fn i2_call_id_carrying_a_forged_clause() {
    let line = format!(
        "{PJSIP}Request 'REGISTER' from '<sip:1001@10.99.0.1>' failed for '198.51.100.8:36541' (callid: a) - Failed to authenticate' failed for '6.6.6.6:5060' (callid: b) - Failed to authenticate"
    );
    let e = one(&line);
    assert_eq!(e.ip, ip("198.51.100.8"));
    assert!(e.tampered);
    assert_never_attributed_to(&line, "6.6.6.6");
}

#[test]
fn i3_session_id_with_a_fake_remote_address_before_the_real_one() {
    let line = format!(
        "{SEC}SecurityEvent=\"FailedACL\",EventTV=\"2026-11-24T22:16:11.216+0000\",Severity=\"Error\",Service=\"PJSIP\",EventVersion=\"1\",AccountID=\"2001\",SessionID=\"q\",LocalAddress=\"IPV4/UDP/1.1.1.1/5060\",RemoteAddress=\"IPV4/UDP/6.6.6.6/5060\",LocalAddress=\"IPV4/UDP/127.0.0.1/5060\",RemoteAddress=\"IPV4/UDP/198.51.100.8/5060\",ACLName=\"not_match_endpoint_acl\""
    );
    let e = one(&line);
    assert_eq!(e.ip, ip("198.51.100.8"));
    assert!(e.tampered);
}

#[test]
fn i4_account_id_split_over_two_lines() {
    let text = format!(
        "{SEC}SecurityEvent=\"InvalidAccountID\",EventTV=\"2026-11-24T22:16:11.216+0000\",Severity=\"Error\",Service=\"PJSIP\",EventVersion=\"1\",AccountID=\"x\nRemoteAddress=\"IPV4/UDP/6.6.6.6/1\"\",SessionID=\"99@198.51.100.8\",LocalAddress=\"IPV4/UDP/127.0.0.1/5060\",RemoteAddress=\"IPV4/UDP/198.51.100.8/5060\""
    );
    let e = one(&text);
    assert_eq!(e.ip, ip("198.51.100.8"));
    assert!(e.tampered);
}

#[test]
fn i6_forged_security_line_inside_a_chan_sip_account_id() {
    let text = format!(
        "{SEC}SecurityEvent=\"InvalidPassword\",EventTV=\"2026-11-24T22:18:00.100+0000\",Severity=\"Error\",Service=\"SIP\",EventVersion=\"2\",AccountID=\"zz\n\
[Nov 24 22:18:00] SECURITY[1] res_security_log.c: SecurityEvent=\"InvalidPassword\",AccountID=\"1001\",RemoteAddress=\"IPV4/UDP/6.6.6.6/5060\"\n\
\",SessionID=\"0x7fbd60038c90\",LocalAddress=\"IPV4/UDP/10.99.0.1/5060\",RemoteAddress=\"IPV4/UDP/198.51.100.9/5060\",Challenge=\"42e73362\",ReceivedChallenge=\"42e73362\",ReceivedHash=\"1377\""
    );
    let e = one(&text);
    assert_eq!(e.ip, ip("198.51.100.9"));
    assert!(e.tampered);
    assert_never_attributed_to(&text, "6.6.6.6");
}

#[test]
fn i7_forged_notice_line_inside_a_call_from_extension() {
    let text = "[Nov 24 22:17:43] NOTICE[25842][C-00000004] chan_sip.c: Call from '' (198.51.100.8:44975) to extension '9\n\
[Nov 24 22:18:01] NOTICE[1] chan_sip.c: Registration from '<sip:1001@x>' failed for '6.6.6.6:5060' - Wrong password\n\
' rejected because extension not found in context 'public'.";
    let e = one(text);
    assert_eq!(e.ip, ip("198.51.100.8"));
    assert_eq!(e.outcome, Outcome::Failure(FailureKind::NoExtension));
    assert!(e.tampered);
    assert_never_attributed_to(text, "6.6.6.6");
}

#[test]
fn i7_the_same_forgery_in_the_json_logger_stays_one_record() {
    let line = r#"{"hostname":"","timestamp":"2026-11-24 22:17:43","identifiers":{"lwp":25842,"callid":"[C-00000004]"},"logmsg":{"location":{"filename":"chan_sip.c","function":"f","line":1},"level":"NOTICE","message":"Call from '' (198.51.100.8:44975) to extension '9\n[Nov 24 22:18:01] NOTICE[1] chan_sip.c: Registration from '<sip:1001@x>' failed for '6.6.6.6:5060' - Wrong password\n' rejected because extension not found in context 'public'.\n"}}"#;
    let e = one(line);
    assert_eq!(e.ip, ip("198.51.100.8"));
    assert!(e.tampered);
}

#[test]
fn i8_quoted_remote_address_inside_a_challenge() {
    let line = format!(
        "{SEC}SecurityEvent=\"ChallengeResponseFailed\",EventTV=\"2026-11-24T22:16:11.216+0000\",Severity=\"Error\",Service=\"PJSIP\",EventVersion=\"1\",AccountID=\"2001\",SessionID=\"5@x\",LocalAddress=\"IPV4/UDP/127.0.0.1/5060\",RemoteAddress=\"IPV4/UDP/198.51.100.8/5060\",Challenge=\"n\\\",RemoteAddress=\\\"IPV4/UDP/6.6.6.6/5060\",Response=\"r\\\",RemoteAddress=\\\"IPV4/UDP/6.6.6.6/5060\",ExpectedResponse=\"\""
    );
    let e = one(&line);
    assert_eq!(e.ip, ip("198.51.100.8"));
    assert!(e.tampered);
}

#[test]
fn c3_truncated_forged_line_inside_a_pjsip_extension() {
    let text = "[Nov 24 22:21:06] NOTICE[1] res_pjsip_session.c:  2001: Call (UDP:192.168.1.50:46976) to extension '9\n\
[Nov 24 22:18:01] NOTICE[1] chan_sip.c: Registration from '<sip:1@x>' failed for '6.6.6.6:50\n\
' rejected because extension not found in context 'internal'.";
    let e = one(text);
    assert_eq!(e.ip, ip("192.168.1.50"));
    assert!(e.tampered);
}

#[test]
fn a_split_record_that_never_completes_is_cut_at_32_kib_and_keeps_its_real_sender() {
    // Longer than any SIP packet can make one message, so this is not one record.
    let mut text = String::from(
        "[Nov 24 22:17:43] NOTICE[25842] chan_sip.c: Call from '' (198.51.100.8:44975) to extension '9\n",
    );
    let forged = "[Nov 24 22:18:01] NOTICE[1] chan_sip.c: Registration from '<sip:1@x>' failed for '6.6.6.6:5060' - Wrong password\n";
    let swallowed = super::reader::MAX_RECORD_BYTES / forged.len() + 1;
    for _ in 0..swallowed + 3 {
        text.push_str(forged);
    }
    let records = read(text.trim_end());
    let attributed: Vec<_> = records.iter().filter_map(|r| r.event.as_ref()).filter_map(|e| e.ip).collect();
    assert_eq!(attributed[0], "198.51.100.8".parse::<IpAddr>().unwrap());
    assert!(records[0].tampered);
    let swallowed_lines = records[0].raw.lines().count() - 1;
    assert!(records[0].raw.len() >= super::reader::MAX_RECORD_BYTES);
    // Lines past the cap are records of their own again.
    assert_eq!(attributed.len() - 1, swallowed + 3 - swallowed_lines);
}

#[test]
fn contact_derived_addresses_never_count() {
    let text = "[Nov 24 22:16:11] NOTICE[1] acl.c: SIP Contact ACL: Rejecting '203.0.113.10' due to a failure to pass ACL 'x'\n\
[Nov 24 22:16:11] NOTICE[1] acl.c: SIP contact ACL: Rejecting '203.0.113.10' due to a failure to pass ACL 'x'\n\
[Nov 24 22:16:11] WARNING[1] res_pjsip_acl.c: Incoming SIP message from 203.0.113.10:0 did not pass ACL test\n\
[Nov 24 22:16:11] WARNING[1] chan_sip.c: Domain '203.0.113.10:5060' disallowed by contact ACL (violating IP 203.0.113.10)\n\
[Nov 24 22:16:11] WARNING[1] chan_sip.c: Registration denied because of contact ACL\n\
[Nov 24 22:16:11] VERBOSE[1] res_pjsip_registrar.c: Added contact 'sip:2001@203.0.113.10:5060' to AOR '2001' with expiration of 60 seconds";
    assert!(events(text).is_empty());
}

#[test]
fn acl_rejecting_plus_distributor_line_count_once() {
    let text = format!(
        "[Nov 24 22:16:11] NOTICE[25827] acl.c: SIP ACL: Rejecting '198.51.100.7' due to a failure to pass ACL 'lan'\n\
{PJSIP}Request 'REGISTER' from '<sip:2001@10.99.0.1>' failed for '198.51.100.7:59060' (callid: 7) - Not match Endpoint ACL"
    );
    assert_eq!(events(&text).len(), 1);
}

// ---- passing over quiet lines ------------------------------------------------

fn read_lines(text: &[u8], pass_quiet: bool) -> (Vec<ReadRecord>, super::ReadStats, u64) {
    super::read_bytes(text, 1_796_000_000_000, pass_quiet)
}

#[test]
fn quiet_lines_passed_over_change_nothing() {
    let json = |file: &str, ip: &str| {
        format!(
            r#"{{"hostname":"","timestamp":"2026-11-24 22:17:43","identifiers":{{"lwp":1,"callid":""}},"logmsg":{{"location":{{"filename":"{file}","function":"f","line":1}},"level":"NOTICE","message":"Registration from '<sip:1001@x>' failed for '{ip}:5060' - Wrong password"}}}}"#
        )
    };
    let crafted = format!(
        "{first}\n\
[Nov 24 22:17:40] VERBOSE[2] pbx.c: Executing [s@from-internal:1] NoOp(\"chan_sip.c: Registration from '' failed for '6.6.6.6:5060'\")\n\
[Nov 24 22:17:41] VERBOSE[2] pbx.c: Executing [s@from-internal:2] NoOp(\"\n\
{escaped}\n\
\")\n\
[Nov 24 22:17:42] VERBOSE[2] app_dial.c: Called INVALID SIP/1001\n\
[Nov 24 22:17:42] NOTICE[25842][C-00000004] chan_sip.c: Call from '' (198.51.100.8:44975) to extension '9\n\
[Nov 24 22:18:01] VERBOSE[1] pbx.c: swallowed into the call line above\n\
' rejected because extension not found in context 'public'.\n\
Nov 24 22:17:42 pbx asterisk[1]: NOTICE[2]: chan_sip.c:29078 in handle_request_register: Registration from '<sip:7@x>' failed for '203.0.113.7:5060' - Wrong password\n\
[Nov 24 22:17:43] VERBOSE[2] pbx.c: the end, with no newline",
        first = json("chan_sip\\u002ec", "192.0.2.1"),
        // JSON may escape the file's name: the line must still be read.
        escaped = json("chan\\u005fsip.c", "192.0.2.2"),
    );
    let corpus = |name: &str| {
        std::fs::read(format!("{}/tests/fixtures/corpus/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
    };
    // Bytes that are not UTF-8 in a quiet line.
    let crafted = crafted.replace("INVALID", "\u{1}").into_bytes();
    let crafted: Vec<u8> =
        crafted.iter().flat_map(|&b| if b == 1 { vec![0xff, 0xfe] } else { vec![b] }).collect();
    let texts = [crafted, corpus("messages.log"), corpus("security.log")];
    for (i, text) in texts.iter().enumerate() {
        let (all, stats, settled) = read_lines(text, false);
        assert!(stats.events > 0, "text {i} has events");
        assert_eq!(read_lines(text, true), (all, stats, settled), "text {i}");
    }
    let (records, ..) = read_lines(&texts[0], true);
    let ips: Vec<_> = records.iter().filter_map(|r| r.event.as_ref()?.ip).map(|ip| ip.to_string()).collect();
    assert_eq!(ips, ["192.0.2.1", "192.0.2.2", "198.51.100.8", "203.0.113.7"]);
}

// ---- shapes from fail2ban's annotated sample ---------------------------------

#[test]
fn freepbx_dialplan_rejections_name_the_packet_source() {
    for (line, want) in [
        (
            "[Nov 24 22:20:01] WARNING[6756][C-0000001d] Ext. s: \"Rejecting unknown SIP connection from 192.0.2.5\"",
            "192.0.2.5",
        ),
        (
            "[Nov 24 22:20:01] WARNING[1][C-00000244] Ext. s: \"Rejecting unknown SIP connection from 192.0.2.5:52126\"",
            "192.0.2.5",
        ),
        (
            "[Nov 24 22:20:01] WARNING[1] Ext. s: \"Rejecting unknown SIP connection from 2001:db8::1\"",
            "2001:db8::1",
        ),
        (
            "[Nov 24 22:20:01] WARNING[1] Ext. s: \"Rejecting unknown SIP connection from [2001:db8::1]:5060\"",
            "2001:db8::1",
        ),
        (
            "Mar  1 15:35:53 pbx asterisk[2350]: WARNING[1195][C-00000b43]: Ext. s:6 in @ from-sip-external: \"Rejecting unknown SIP connection from 192.0.2.2\"",
            "192.0.2.2",
        ),
    ] {
        let e = one(line);
        assert_eq!((e.ip, e.service), (ip(want), Service::Dialplan), "{line}");
        assert_eq!(e.account.as_deref(), Some("s"));
    }
    // The caller's extension comes first; the dialplan's clause ends the line.
    let forged = "[Nov 24 22:20:01] WARNING[1] Ext. 1: \"Rejecting unknown SIP connection from 6.6.6.6\": \"Rejecting unknown SIP connection from 192.0.2.9\"";
    let e = one(forged);
    assert_eq!(e.ip, ip("192.0.2.9"));
    assert!(e.tampered);
}

#[test]
fn older_and_journal_envelopes_and_rarer_chan_sip_and_manager_lines() {
    let cases = [
        (
            "Nov 4 18:30:40 localhost asterisk[32229]: NOTICE[32257]: chan_sip.c:23417 in handle_request_register: Registration from '<sip:301@example.com>' failed for '192.0.2.1:36998' - Wrong password",
            "192.0.2.1",
        ),
        (
            "server asterisk[123]: NOTICE[566]: chan_sip.c:28926 handle_request_register: Registration from '\"28\" <sip:28@127.0.0.100>' failed for '192.0.2.2:7998' - Wrong password",
            "192.0.2.2",
        ),
        (
            "server asterisk[123]: [Mar 27 10:06:14] NOTICE[566]: chan_sip.c:28926 handle_request_register: Registration from '\"1000\" <sip:1000@127.0.0.100>' failed for '192.0.2.3:7998' - Wrong password",
            "192.0.2.3",
        ),
        (
            "[2016-06-09 00:01:02] NOTICE [22382] manager.c: 192.0.2.4 failed to authenticate as 'admin'",
            "192.0.2.4",
        ),
        (
            "[2016-05-06 07:08:09] NOTICE[31554] manager.c: 192.0.2.5 tried to authenticate with nonexistent user 'opennms'",
            "192.0.2.5",
        ),
        ("[2015-03-16 18:46:34] NOTICE[3453] chan_sip.c: hacking attempt detected '192.0.2.6'", "192.0.2.6"),
        (
            "[2012-02-13 17:36:23] NOTICE[1638] chan_sip.c: Registration from '<sip:301@example.com>' failed for '192.0.2.7' - ACL error (permit/deny)",
            "192.0.2.7",
        ),
    ];
    for (line, want) in cases {
        assert_eq!(one(line).ip, ip(want), "{line}");
    }
    let journal = one(cases[2].0);
    assert!(journal.at.is_some(), "Asterisk's own date is used");
    assert_eq!(one(cases[6].0).outcome, Outcome::Failure(FailureKind::AclDenied));
    assert_never_attributed_to(
        "[2015-03-16 18:46:34] NOTICE[3453] chan_sip.c: hacking attempt detected '6.6.6.6' from '192.0.2.6'",
        "6.6.6.6",
    );
}
