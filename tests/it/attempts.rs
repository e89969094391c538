//! One refused request is one failure, however many events Asterisk writes for it
//! (docs/ASTERISK.md §0.6), and every guess of a cracker reusing its Call-ID still counts.

use sipwarden::asterisk::SourceKind;
use sipwarden::domain::{MINUTE_MS, TrustedNetworks};
use sipwarden::ingest::StartAt;

use crate::common::{NOW, TestApp, append};

const PHONE: &str = "198.51.100.31";

/// A security-log line as Asterisk 20 writes it.
fn event(name: &str, service: &str, account: &str, session: &str, at: i64, tail: &str) -> String {
    let tv = chrono::DateTime::from_timestamp_millis(at).unwrap().format("%Y-%m-%dT%H:%M:%S%.3f+0000");
    let severity = if name == "ChallengeSent" { "Informational" } else { "Error" };
    format!(
        "[Dec  1 10:00:00] SECURITY[2] res_security_log.c: SecurityEvent=\"{name}\",EventTV=\"{tv}\",Severity=\"{severity}\",Service=\"{service}\",EventVersion=\"1\",AccountID=\"{account}\",SessionID=\"{session}\",LocalAddress=\"IPV4/UDP/10.98.0.1/5060\",RemoteAddress=\"IPV4/UDP/{PHONE}/5062\"{tail}\n"
    )
}

/// A pjsip REGISTER refused by the endpoint's ACL: the request and its challenged retry.
fn pjsip_acl_refused_register(call_id: &str, at: i64) -> String {
    let acl = ",ACLName=\"not_match_endpoint_acl\"";
    [
        event("FailedACL", "PJSIP", "1001", call_id, at, acl),
        event("ChallengeSent", "PJSIP", "<unknown>", call_id, at + 1, ",Challenge=\"\""),
        event("FailedACL", "PJSIP", "1001", call_id, at + 20, acl),
        event(
            "ChallengeResponseFailed",
            "PJSIP",
            "<unknown>",
            call_id,
            at + 21,
            ",Challenge=\"1796161796/119553f0\",Response=\"710b75\",ExpectedResponse=\"\"",
        ),
    ]
    .concat()
}

async fn app() -> (TestApp, std::path::PathBuf) {
    let mut app = TestApp::new(TrustedNetworks::default(), true).await;
    let log = app.path("security");
    append(&log, "");
    app.follow(&log, Some(SourceKind::Security), StartAt::Beginning).await;
    (app, log)
}

#[tokio::test]
async fn a_pjsip_register_refused_by_an_acl_counts_once_and_bans_no_one() {
    let (mut app, log) = app().await;
    let text = pjsip_acl_refused_register("712167310@198.51.100.31", NOW - 10 * MINUTE_MS);
    // Read across two polls: the attempt is remembered between batches.
    let (first, second) = text.split_at(text.find("SecurityEvent=\"FailedACL\"").unwrap() + 400);
    let cut = first.rfind('\n').unwrap() + 1;
    append(&log, &text[..cut]);
    app.poll().await;
    append(&log, &[&first[cut..], second].concat());
    app.poll().await;
    assert_eq!(app.count_for(PHONE).await, 1);
    assert!(app.active_bans().await.is_empty(), "one refused REGISTER is no reason to ban");
    // A second REGISTER is a second attempt: the ladder's two failures.
    append(&log, &pjsip_acl_refused_register("99@198.51.100.31", NOW - 5 * MINUTE_MS));
    app.poll().await;
    assert_eq!(app.count_for(PHONE).await, 2);
    assert_eq!(app.active_bans().await.len(), 1);
}

#[tokio::test]
async fn chan_sip_reporting_one_acl_refusal_twice_counts_once() {
    let (mut app, log) = app().await;
    let acl = ",ACLName=\"device_must_match_acl\"";
    for i in 0..2 {
        append(&log, &event("FailedACL", "SIP", "2001", "0x7fbd60038c90", NOW - MINUTE_MS + i, acl));
    }
    app.poll().await;
    assert_eq!(app.count_for(PHONE).await, 1);
    assert!(app.active_bans().await.is_empty());
}

#[tokio::test]
async fn a_cracker_reusing_one_call_id_has_every_guess_counted() {
    let (mut app, log) = app().await;
    let session = "3625963302";
    append(&log, &event("ChallengeSent", "PJSIP", "1002", session, NOW - MINUTE_MS, ",Challenge=\"\""));
    for i in 0..6 {
        let tail = format!(",Challenge=\"1796/11\",Response=\"{i:032x}\",ExpectedResponse=\"\"");
        append(
            &log,
            &event("ChallengeResponseFailed", "PJSIP", "1002", session, NOW - MINUTE_MS + 5 + i, &tail),
        );
    }
    app.poll().await;
    assert_eq!(app.count_for(PHONE).await, 6);
    assert_eq!(app.active_bans().await.len(), 1);
}
