//! The manager interface link against a scripted server that speaks Asterisk's AMI
//! (banner, CRLF blocks, ActionID-matched responses, events) and replays the office-day
//! recording from a real Asterisk 20: login, drops, forged blocks, and the fraud stopped.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sipwarden::ami::scripted::{Script, ScriptedAmi};
use sipwarden::ami::{self, AmiControl, AmiHealth, AmiSettings};
use sipwarden::domain::TrustedNetworks;
use sipwarden::watch::Watch;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::common::{TestApp, fixture};
use crate::harness::eventually_async;

use sipwarden::ami::scripted::SECRET;

/// The recorded event blocks, each with its CRLF CRLF, in order.
fn recorded_blocks() -> Vec<String> {
    let raw = std::fs::read(fixture("office-day/ami-raw.txt")).unwrap();
    let text = String::from_utf8(raw).unwrap();
    let (_, rest) = text.split_once("\r\n").unwrap();
    let mut blocks: Vec<String> = rest.split_inclusive("\r\n\r\n").map(str::to_owned).collect();
    // The recorder's own login answer is not an event.
    blocks.retain(|b| b.starts_with("Event: "));
    blocks
}

/// sipwarden's side: the link, the pipeline it feeds and the watch acting through it.
struct Link {
    app: Arc<TestApp>,
    health: AmiHealth,
    stop: CancellationToken,
}

impl Drop for Link {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn link(address: &str, secret: &str) -> Link {
    let mut app = TestApp::new(TrustedNetworks::default(), false).await;
    // The recording's own evening: what the manager reports is happening now.
    app.clock.set(1_796_161_600_000);
    let clock: Arc<dyn sipwarden::clock::Clock> = Arc::new(app.clock.clone());
    let health = AmiHealth::default();
    let (requests_tx, requests) = mpsc::channel(64);
    let control = AmiControl { requests: requests_tx, health: health.clone() };
    app.pipeline.watch = Some(Arc::new(Watch::new(
        app.store.clone(),
        clock.clone(),
        Arc::new(control),
        app.pipeline.bans_changed.clone(),
    )));
    app.pipeline.clock = clock.clone();
    let app = Arc::new(app);
    let stop = CancellationToken::new();
    let settings =
        AmiSettings { address: address.to_owned(), username: "sipwarden".into(), secret: secret.into() };
    let (out, delivered) = mpsc::channel(ami::QUEUE);
    tokio::spawn(ami::run(settings, health.clone(), clock, out, requests, stop.clone()));
    let (fed, h, s) = (app.clone(), health.clone(), stop.clone());
    tokio::spawn(async move {
        sipwarden::ingest::manager::feed(delivered, &fed.pipeline, "manager".into(), h, s).await;
    });
    Link { app, health, stop }
}

fn is_fraud_call(block: &str) -> bool {
    block.starts_with("Event: Newchannel\r\n") && block.contains("Channel: PJSIP/1002-")
}

/// The recording with the fraud calls one every `every` (the rest as fast as it goes).
fn at_one_call_per(every: Duration, keep: impl Fn(&str) -> bool) -> Vec<(Duration, String)> {
    recorded_blocks()
        .into_iter()
        .filter(|b| keep(b))
        .map(|b| (if is_fraud_call(&b) { every } else { Duration::ZERO }, b))
        .collect()
}

/// As above, with the first fraud call `lead` after the crack. The recording had 7.4 s
/// between them (the success at 21:45:13.957, the first call at 21:45:21.390); one
/// second is still far less, and leaves a loaded machine's store time to take the
/// attack's 140 blocks before it.
fn first_call_after(lead: Duration, every: Duration) -> Vec<(Duration, String)> {
    let mut events = at_one_call_per(every, |_| true);
    if let Some(first) = events.iter_mut().find(|(_, b)| is_fraud_call(b)) {
        first.0 = lead;
    }
    events
}

#[tokio::test]
async fn a_refused_login_is_said_plainly_and_retried() {
    let server = ScriptedAmi::start(vec![Script {
        events: Vec::new(),
        drop_after: false,
        trickle: None,
        listing: Vec::new(),
    }])
    .await
    .unwrap();
    let link = link(&server.address, "wrong").await;
    eventually_async("the refusal shown", Duration::from_secs(5), async || {
        link.health.state().problem.is_some_and(|p| p.contains("refused the login of \"sipwarden\""))
    })
    .await;
    assert!(!link.health.is_connected());
    let login = &server.received.actions("Login")[0].1;
    assert!(login.contains("Events: security,call,system\r\n") && login.contains("ActionID: "), "{login}");
    // It tries again, backing off.
    eventually_async("a second try", Duration::from_secs(5), async || {
        *server.connections.lock().unwrap() >= 2
    })
    .await;
}

/// The breaker alone (the recording without its security events): the seed's burst at
/// one call per 0.3 s is stopped within 5 calls, Hangup and the lock sent within a
/// second of the call that tripped it.
#[tokio::test]
async fn the_fraud_burst_is_hung_up_within_five_calls_and_a_second() {
    let events = at_one_call_per(Duration::from_millis(300), |b| !b.contains("Privilege: security,all"));
    let server =
        ScriptedAmi::start(vec![Script { events, drop_after: false, trickle: None, listing: Vec::new() }])
            .await
            .unwrap();
    let link = link(&server.address, SECRET).await;
    eventually_async("the extension hung up", Duration::from_secs(30), async || {
        !server.received.actions("Hangup").is_empty()
    })
    .await;
    let (hung_up_at, hangup) = server.received.actions("Hangup")[0].clone();
    assert!(hangup.contains("Channel: /^PJSIP\\/1002-/\r\n"), "every call of 1002 at once: {hangup}");
    let sent = server.sent.lock().unwrap().clone();
    let calls: Vec<&(Instant, String)> = sent.iter().filter(|(_, b)| is_fraud_call(b)).collect();
    let before = calls.iter().filter(|(at, _)| *at < hung_up_at).count();
    assert!((1..=5).contains(&before), "{before} fraud calls before the hang-up");
    let tripped_at = calls[before - 1].0;
    assert!(hung_up_at - tripped_at < Duration::from_secs(1), "{:?} after the call", hung_up_at - tripped_at);
    eventually_async("1002 locked in AstDB", Duration::from_secs(2), async || {
        server
            .received
            .actions("DBPut")
            .iter()
            .any(|(_, a)| a.contains("Family: sipwarden-locked\r\nKey: 1002\r\n"))
    })
    .await;
    assert!(
        !server.received.all().iter().any(|(_, a)| a.contains("1001") || a.contains("1003")),
        "the office is left alone"
    );
    drop(link);
}

/// With the security events (and no log): svcrack's success is a breach; 1002 is locked
/// before its first fraud call and each later call is hung up as it starts.
#[tokio::test]
async fn the_crack_locks_the_extension_before_any_fraud_call() {
    let events = first_call_after(Duration::from_secs(1), Duration::from_millis(300));
    let server =
        ScriptedAmi::start(vec![Script { events, drop_after: false, trickle: None, listing: Vec::new() }])
            .await
            .unwrap();
    let link = link(&server.address, SECRET).await;
    eventually_async("locked", Duration::from_secs(30), async || {
        !server.received.actions("DBPut").is_empty()
    })
    .await;
    let locked_at = server.received.actions("DBPut")[0].0;
    let first_call = server.sent.lock().unwrap().iter().find(|(_, b)| is_fraud_call(b)).map(|(at, _)| *at);
    assert!(first_call.is_none_or(|at| at > locked_at), "locked before the first fraud call");
    eventually_async("all 60 fraud calls refused", Duration::from_secs(40), async || {
        server.received.actions("Hangup").len() >= 60
    })
    .await;
    let mut conn = link.app.store.acquire().await.unwrap();
    let incidents = sipwarden::store::incidents::recent(&mut conn, 10).await.unwrap();
    assert!(
        incidents
            .iter()
            .any(|i| i.kind == "breach" && i.account == "1002" && i.ip.as_deref() == Some("10.98.0.66"))
    );
}

/// A slow, congested link: every block arrives in pieces of 13 bytes (CRLFs split
/// too), a millisecond apart. Nothing is misread: no block doubted, the crack is still a
/// breach that locks 1002 before its first fraud call, and the office is left alone.
#[tokio::test]
async fn a_slow_link_splitting_every_block_changes_nothing() {
    let events = at_one_call_per(Duration::from_millis(300), |_| true);
    let trickle = Some((13, Duration::from_millis(1)));
    let server = ScriptedAmi::start(vec![Script { events, drop_after: false, trickle, listing: Vec::new() }])
        .await
        .unwrap();
    let link = link(&server.address, SECRET).await;
    eventually_async("locked", Duration::from_secs(60), async || {
        !server.received.actions("DBPut").is_empty()
    })
    .await;
    let locked_at = server.received.actions("DBPut")[0].0;
    let first_call = server.sent.lock().unwrap().iter().find(|(_, b)| is_fraud_call(b)).map(|(at, _)| *at);
    assert!(first_call.is_none_or(|at| at > locked_at), "locked before the first fraud call");
    assert_eq!(link.health.state().malformed, 0, "a split block is still one block");
    assert!(
        !server.received.all().iter().any(|(_, a)| a.contains("1001") || a.contains("1003")),
        "the office is left alone"
    );
}

/// The manager's ContactStatus events of the recorded day keep the registrations: at
/// the end 1003's second phone and both of 1002's contacts, 1001's are gone.
#[tokio::test]
async fn the_managers_contact_events_keep_the_registrations() {
    let events: Vec<(Duration, String)> = recorded_blocks()
        .into_iter()
        .filter(|b| b.starts_with("Event: ContactStatus\r\n"))
        .map(|b| (Duration::ZERO, b))
        .collect();
    assert_eq!(events.len(), 9);
    // What `PJSIPShowContacts` answers: pjsip logs no User-Agent, the listing has it.
    let listing = vec![
        "ObjectType: contact\r\nObjectName: 1003;@6fa2c8b1\r\nEndpoint: 1003\r\nUri: sip:1003@10.98.0.30:44244\r\nUserAgent: Yealink SIP-T46U 108.86.0.20\r\n".to_string(),
        "ObjectType: contact\r\nObjectName: 1002;@9c1d\r\nEndpoint: 1002\r\nUri: sip:123@10.98.0.66:5060;x-ast-orig-host=1.1.1.1:0\r\nUserAgent: friendly-scanner\r\n".to_string(),
    ];
    let server =
        ScriptedAmi::start(vec![Script { events, drop_after: false, trickle: None, listing }]).await.unwrap();
    let link = link(&server.address, SECRET).await;
    let registered = || async {
        let mut conn = link.app.store.acquire().await.unwrap();
        let now = link.app.clock_now();
        let rows = sipwarden::store::contacts::current(&mut conn, None, now, 100).await.unwrap();
        rows.into_iter().map(|c| format!("{} {}", c.account, c.uri)).collect::<Vec<_>>()
    };
    let started = Instant::now();
    // The recording has no Timestamp headers: every event is dated as it arrives.
    let expected = [
        "1002 sip:1002@10.98.0.66:40770",
        "1002 sip:123@10.98.0.66:5060;x-ast-orig-host=1.1.1.1:0",
        "1003 sip:1003@10.98.0.30:44244",
    ];
    while registered().await != expected {
        assert!(started.elapsed() < Duration::from_secs(10), "{:?}", registered().await);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The User-Agents, from the listing asked for after the login and as phones register.
    let agents = || async {
        let mut conn = link.app.store.acquire().await.unwrap();
        let rows =
            sipwarden::store::contacts::current(&mut conn, None, link.app.clock_now(), 100).await.unwrap();
        rows.into_iter()
            .filter_map(|c| c.user_agent.map(|ua| format!("{} {ua}", c.account)))
            .collect::<Vec<_>>()
    };
    while agents().await != ["1002 friendly-scanner", "1003 Yealink SIP-T46U 108.86.0.20"] {
        assert!(started.elapsed() < Duration::from_secs(15), "{:?}", agents().await);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!server.received.actions("PJSIPShowContacts").is_empty());
}

/// The connection drops in the middle of the day; the link comes back by itself and the
/// health says so.
#[tokio::test]
async fn a_dropped_link_comes_back() {
    let blocks = recorded_blocks();
    let (first, second) = blocks.split_at(200);
    let script = |b: &[String], drop_after| Script {
        events: b.iter().map(|b| (Duration::ZERO, b.clone())).collect(),
        drop_after,
        trickle: None,
        listing: Vec::new(),
    };
    let server = ScriptedAmi::start(vec![script(first, true), script(second, false)]).await.unwrap();
    let link = link(&server.address, SECRET).await;
    eventually_async("reconnected", Duration::from_secs(10), async || {
        *server.connections.lock().unwrap() >= 2
    })
    .await;
    eventually_async("connected again", Duration::from_secs(10), async || link.health.is_connected()).await;
    // 78 logins, 43 failures, 66 calls started and ended, 10 registrations (nine pjsip
    // contacts and chan_sip's 2001): none lost across the drop.
    eventually_async("every event read", Duration::from_secs(10), async || link.health.state().events == 263)
        .await;
    assert_eq!(server.received.actions("Login").len(), 2);
}

/// I10b: a From user with CR/LF CR/LF cuts an InvalidAccountID block and forges a
/// SuccessfulAuth carrying the attacker's address: nothing is learned from it.
#[tokio::test]
async fn a_forged_success_teaches_nothing() {
    let cut = "Event: InvalidAccountID\r\nPrivilege: security,all\r\nEventTV: 2026-12-01T21:44:31.283+0000\r\nSeverity: Error\r\nService: PJSIP\r\nEventVersion: 1\r\nAccountID: x\r\n\r\n";
    let forged = "Event: SuccessfulAuth\r\nPrivilege: security,all\r\nEventTV: 2026-12-01T21:44:31.283+0000\r\nSeverity: Informational\r\nService: PJSIP\r\nEventVersion: 1\r\nAccountID: 1001\r\nSessionID: 1@10.98.0.99\r\nLocalAddress: IPV4/UDP/10.98.0.1/5060\r\nRemoteAddress: IPV4/UDP/10.98.0.99/5060\r\nUsingPassword: 1\r\n\r\n";
    let events = vec![(Duration::ZERO, cut.to_owned()), (Duration::ZERO, forged.to_owned())];
    let server =
        ScriptedAmi::start(vec![Script { events, drop_after: false, trickle: None, listing: Vec::new() }])
            .await
            .unwrap();
    let link = link(&server.address, SECRET).await;
    eventually_async("both blocks judged", Duration::from_secs(5), async || {
        link.health.state().malformed >= 2
    })
    .await;
    let mut conn = link.app.store.acquire().await.unwrap();
    let (seen, _) =
        sipwarden::store::incidents::login_history(&mut conn, "1001", "10.98.0.99", i64::MAX).await.unwrap();
    assert!(!seen, "no login learned from a forged block");
}

/// `serve` with `[ami]` and no log: it logs in to the manager interface the config names
/// (the secret from SIPWARDEN_AMI_SECRET), counts the failures it reports (the
/// attacker is banned), `/healthz` shows the link, and a wrong secret is said plainly.
#[tokio::test(flavor = "multi_thread")]
async fn serve_follows_the_manager_interface_its_config_names() {
    use crate::harness::Serve;
    let events = recorded_blocks().into_iter().map(|b| (Duration::ZERO, b)).collect();
    let server =
        ScriptedAmi::start(vec![Script { events, drop_after: false, trickle: None, listing: Vec::new() }])
            .await
            .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("sipwarden.toml");
    std::fs::write(
        &config,
        format!("logs = []\n\n[ami]\naddress = \"{}\"\nusername = \"sipwarden\"\n", server.address),
    )
    .unwrap();
    let serve = |secret: &str| {
        Serve::dry_run(&dir.path().join(format!("data-{secret}")))
            .arg("--config")
            .arg(&config)
            .env("SIPWARDEN_AMI_SECRET", secret)
            .start()
    };
    let right = serve(SECRET);
    eventually_async("the link is up and read", Duration::from_secs(20), async || {
        let r = right.get("/healthz", None);
        r.status == 200 && r.body.contains("\"connected\":true") && r.body.contains("\"events\":263")
    })
    .await;
    // Read is not stored yet: the bans follow within moments.
    eventually_async("both attackers banned", Duration::from_secs(20), async || {
        let bans = std::process::Command::new(env!("CARGO_BIN_EXE_sipwarden"))
            .args(["bans", "--format", "json", "--data-dir"])
            .arg(dir.path().join(format!("data-{SECRET}")))
            .output()
            .unwrap();
        let bans = String::from_utf8_lossy(&bans.stdout);
        bans.contains("10.98.0.66") && bans.contains("10.98.0.77")
    })
    .await;
    drop(right);
    let wrong = serve("wrong");
    eventually_async("the refusal is shown", Duration::from_secs(20), async || {
        let r = wrong.get("/healthz", None);
        r.status == 503 && r.body.contains("refused the login of \\\"sipwarden\\\"")
    })
    .await;
}
