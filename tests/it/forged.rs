//! A security event whose values forged a second address pair, so that its fields
//! alone cannot tell the sender: the messages log's own line of the same attempt
//! names it, and the attempt counts once, against that address only.

use sipwarden::asterisk::SourceKind;
use sipwarden::domain::{MINUTE_MS, TrustedNetworks, UnixMs};
use sipwarden::ingest::StartAt;

use crate::common::{NOW, TestApp, append};

const SENDER: &str = "10.98.0.77";
const FRAMED: &str = "6.6.6.6";

/// An AMI MD5 login refused, as Asterisk 20 writes it, whose key (`Response`, any text
/// the client sent) forges a session and an address pair: both readings of the record
/// hold, one naming the sender, one the framed address.
fn forged_ami_failure(at: UnixMs) -> String {
    let tv = chrono::DateTime::from_timestamp_millis(at).unwrap().format("%Y-%m-%dT%H:%M:%S%.3f+0000");
    let key = format!(
        "k\",SessionID=\"0x1\",LocalAddress=\"IPV4/TCP/10.98.0.1/5038\",RemoteAddress=\"IPV4/TCP/{FRAMED}/5038\",Challenge=\"1\",Response=\"k"
    );
    format!(
        "[Dec  1 21:45:59] SECURITY[20256] res_security_log.c: SecurityEvent=\"ChallengeResponseFailed\",EventTV=\"{tv}\",Severity=\"Error\",Service=\"AMI\",EventVersion=\"1\",AccountID=\"admin\",SessionID=\"0x7fb530002700\",LocalAddress=\"IPV4/TCP/10.98.0.1/5038\",RemoteAddress=\"IPV4/TCP/{SENDER}/40009\",Challenge=\"409614253\",Response=\"{key}\",ExpectedResponse=\"\"\n"
    )
}

/// The line manager.c writes for the same refusal, dated in local time (whole seconds).
fn manager_line(ip: &str, at: UnixMs) -> String {
    let local = chrono::DateTime::from_timestamp_millis(at).unwrap().with_timezone(&chrono::Local);
    format!(
        "[{}] NOTICE[25799] manager.c: {ip} failed to authenticate as 'admin'\n",
        local.format("%Y-%m-%d %H:%M:%S")
    )
}

async fn app() -> (TestApp, std::path::PathBuf, std::path::PathBuf) {
    let mut app = TestApp::new(TrustedNetworks::default(), true).await;
    let (security, messages) = (app.path("security"), app.path("messages"));
    append(&security, "");
    append(&messages, "");
    app.follow(&security, Some(SourceKind::Security), StartAt::Beginning).await;
    app.follow(&messages, Some(SourceKind::Messages), StartAt::Beginning).await;
    (app, security, messages)
}

async fn unattributed(app: &TestApp) -> i64 {
    let mut conn = app.store.acquire().await.unwrap();
    sipwarden::store::raw::number(&mut conn, "SELECT COUNT(*) FROM failures WHERE ip IS NULL").await.unwrap()
}

#[tokio::test]
async fn alone_a_forged_event_counts_against_no_one_and_is_kept_visible() {
    let (mut app, security, _) = app().await;
    append(&security, &forged_ami_failure(NOW - MINUTE_MS));
    app.poll().await;
    assert_eq!((app.count_for(SENDER).await, app.count_for(FRAMED).await), (0, 0));
    assert_eq!(unattributed(&app).await, 1, "shown as forged");
}

#[tokio::test]
async fn the_messages_line_of_the_attempt_names_the_sender_in_either_order() {
    for messages_first in [false, true] {
        let (mut app, security, messages) = app().await;
        for i in 0..2 {
            let at = NOW - 10 * MINUTE_MS + i * MINUTE_MS;
            // The two logs are read in turns: either may hold the attempt first.
            if messages_first {
                append(&messages, &manager_line(SENDER, at));
                app.poll().await;
                append(&security, &forged_ami_failure(at + 300));
            } else {
                append(&security, &forged_ami_failure(at + 300));
                app.poll().await;
                append(&messages, &manager_line(SENDER, at));
            }
            app.poll().await;
        }
        let counts = (app.count_for(SENDER).await, app.count_for(FRAMED).await);
        assert_eq!(counts, (2, 0), "messages first: {messages_first}");
        let bans: Vec<String> = app.active_bans().await.into_iter().map(|b| b.ip).collect();
        assert_eq!(bans, [SENDER], "the sender is banned by the ladder, the framed address never");
        assert_eq!(unattributed(&app).await, 2, "the forged records stay visible");
    }
}

#[tokio::test]
async fn a_later_line_of_the_sender_settles_nothing() {
    let (mut app, security, messages) = app().await;
    let at = NOW - 10 * MINUTE_MS;
    append(&security, &forged_ami_failure(at));
    app.poll().await;
    // A failure of the sender a minute later is another attempt (counted by its own
    // security event); the forged one stays unsettled.
    append(&messages, &manager_line(SENDER, at + MINUTE_MS));
    app.poll().await;
    assert_eq!((app.count_for(SENDER).await, app.count_for(FRAMED).await), (0, 0));
}

/// The manager interface's report of the same refusal: every field a line of its own.
fn manager_event(ip: &str, at: UnixMs) -> sipwarden::ami::Delivered {
    use sipwarden::domain::{FailureKind, LogEvent, Outcome, Service};
    let event = LogEvent {
        at: Some(at),
        ip: Some(ip.parse().unwrap()),
        service: Service::Ami,
        account: Some("admin".into()),
        outcome: Outcome::Failure(FailureKind::WrongPassword),
        tampered: false,
        security_event: true,
        session: Some(sipwarden::domain::session_key("0x7fb530002700")),
    };
    sipwarden::ami::Delivered::Auth(
        event,
        format!("Event: ChallengeResponseFailed\r\nRemoteAddress: IPV4/TCP/{ip}/40009\r\n"),
    )
}

#[tokio::test]
async fn the_manager_interfaces_event_of_the_attempt_names_the_sender_in_either_order() {
    use sipwarden::ingest::manager::step;
    for manager_first in [false, true] {
        let (mut app, security, _) = app().await;
        let mut stored = 0;
        let at = NOW - 10 * MINUTE_MS;
        if manager_first {
            step(&app.pipeline, "manager", &mut stored, vec![manager_event(SENDER, at + 1)]).await;
            append(&security, &forged_ami_failure(at));
            app.poll().await;
        } else {
            append(&security, &forged_ami_failure(at));
            app.poll().await;
            step(&app.pipeline, "manager", &mut stored, vec![manager_event(SENDER, at + 1)]).await;
        }
        let counts = (app.count_for(SENDER).await, app.count_for(FRAMED).await);
        assert_eq!(counts, (1, 0), "manager first: {manager_first}");
        // Any other failure the manager reports is the security log's to count.
        step(&app.pipeline, "manager", &mut stored, vec![manager_event("192.0.2.5", at + 5)]).await;
        assert_eq!(app.count_for("192.0.2.5").await, 0);
    }
}
