//! Breach and toll-fraud detection over the office-day recording (real Asterisk 20.20.1:
//! office phones, a typo, a remote worker, svwar, svcrack cracking 1002 and 60 fraud
//! calls 0.5 s apart, an AMI guesser, chan_sip 2001 cracked), offline.

use std::process::Command;

use serde_json::Value;

use crate::common::fixture;

fn incidents(files: &[&str]) -> Vec<Value> {
    let out = Command::new(env!("CARGO_BIN_EXE_sipwarden"))
        .args(["check-log", "--format", "json"])
        .args(files.iter().map(|f| fixture(&format!("office-day/{f}"))))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    report["incidents"].as_array().cloned().unwrap_or_default()
}

fn find<'a>(list: &'a [Value], kind: &str, severity: &str, account: &str) -> Option<&'a Value> {
    list.iter().find(|i| i["kind"] == kind && i["severity"] == severity && i["account"] == account)
}

#[test]
fn the_recorded_cracks_are_breaches_and_the_fraud_is_stopped_within_five_calls() {
    let all = incidents(&["security.log", "full.log"]);
    let crack = find(&all, "breach", "critical", "1002").expect("1002 cracked by svcrack");
    assert_eq!(crack["address"], "10.98.0.66");
    assert_eq!(crack["at"], "2026-12-01T21:45:13.957Z", "the moment of the guessed password");
    let chan_sip = find(&all, "breach", "critical", "2001").expect("2001 cracked over chan_sip");
    assert_eq!(chan_sip["address"], "10.98.0.77");

    let fraud = find(&all, "toll_fraud", "critical", "1002").expect("the fraud calls trip the breaker");
    let calls = fraud["calls_before_stop"].as_u64().unwrap();
    assert!((1..=5).contains(&calls), "stopped after {calls} calls");
    assert_eq!(fraud["address"], "10.98.0.66", "the address the extension was logged into from");
    // The first fraud call started at 21:45:21; the breaker trips within seconds.
    assert!(fraud["at"].as_str().unwrap() < "2026-12-01T21:45:24", "{fraud}");
}

#[test]
fn the_office_trips_nothing() {
    let all = incidents(&["security.log", "full.log", "messages.log"]);
    for i in &all {
        let account = i["account"].as_str().unwrap();
        if account == "1001" || account == "1003" {
            // The typo (1001) is nothing at all; the remote worker's first login from a
            // new address (1003) is worth a warning, never an action.
            assert_eq!(i["severity"], "warning", "{i}");
            assert_eq!(i["kind"], "breach", "{i}");
            assert_eq!(i["account"], "1003", "{i}");
        }
    }
    assert!(find(&all, "breach", "warning", "1003").is_some(), "the remote worker's new address is told");
}

#[test]
fn without_the_full_log_the_breaches_are_still_found() {
    let all = incidents(&["security.log"]);
    assert!(find(&all, "breach", "critical", "1002").is_some());
    assert!(find(&all, "breach", "critical", "2001").is_some());
    assert!(all.iter().all(|i| i["kind"] == "breach"), "no calls without the full log");
}

// ---- live: the logs appended line by line, as Asterisk writes them ----

use std::sync::{Arc, Mutex};

use sipwarden::asterisk::SourceKind;
use sipwarden::domain::TrustedNetworks;
use sipwarden::ingest::StartAt;
use sipwarden::pbx::control::Control;
use sipwarden::watch::Watch;

use crate::common::{TestApp, append};

/// 2026-12-01 22:00 UTC: just after the office day was recorded.
const AFTER_OFFICE_DAY: i64 = 1_796_162_400_000;

/// What sipwarden asked of Asterisk, in order. Asterisk cannot run here: this is the
/// seam where its CLI or manager interface would be.
#[derive(Default)]
struct Asked(Mutex<Vec<String>>);

impl Control for Asked {
    fn hangup(&self, channel: &str) -> Result<(), String> {
        self.0.lock().unwrap().push(format!("hangup {channel}"));
        Ok(())
    }
    fn hangup_all(&self, _tech: &str, _extension: &str) -> Result<(), String> {
        Err("as Asterisk's CLI: one call at a time".into())
    }
    fn set_locked(&self, account: &str, locked: bool) -> Result<(), String> {
        self.0.lock().unwrap().push(format!("locked {account} {locked}"));
        Ok(())
    }
}

impl Asked {
    fn list(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

/// A line's time for merging the two logs: the security event's own time, else the
/// envelope's second.
fn line_time(line: &str) -> i64 {
    if let Some(tv) = line.split("EventTV=\"").nth(1) {
        let ms = chrono::DateTime::parse_from_str(&tv[..28], "%Y-%m-%dT%H:%M:%S%.3f%z").unwrap();
        return ms.timestamp_millis();
    }
    let clock = &line[8..16];
    let secs: Vec<i64> = clock.split(':').map(|p| p.parse().unwrap()).collect();
    AFTER_OFFICE_DAY - 3_600_000 + ((secs[0] - 21) * 3600 + secs[1] * 60 + secs[2]) * 1000
}

struct Replay {
    app: TestApp,
    asked: Arc<Asked>,
    /// Fraud calls (1002's first steps) written to the full log so far.
    fraud_calls_written: usize,
    /// How many fraud calls had been written when 1002 was first locked.
    fraud_calls_at_lock: Option<usize>,
}

/// An app whose watch acts through `Asked`, its clock at `now`.
async fn watched_app(security_log: bool, now: i64) -> (TestApp, Arc<Asked>) {
    let mut app = TestApp::new(TrustedNetworks::default(), security_log).await;
    app.clock.set(now);
    let asked = Arc::new(Asked::default());
    app.pipeline.watch = Some(Arc::new(Watch::new(
        app.store.clone(),
        Arc::new(app.clock.clone()),
        asked.clone(),
        app.pipeline.bans_changed.clone(),
    )));
    (app, asked)
}

/// `keep`: which lines of the recording are written.
async fn replay(files: &[(&str, SourceKind)], keep: fn(&str) -> bool) -> Replay {
    let security_log = files.iter().any(|(_, k)| *k == SourceKind::Security);
    let (mut app, asked) = watched_app(security_log, AFTER_OFFICE_DAY).await;
    let mut lines = Vec::new();
    for (name, kind) in files {
        let path = app.path(name);
        std::fs::write(&path, "").unwrap();
        app.follow(&path, Some(*kind), StartAt::Beginning).await;
        let text = std::fs::read_to_string(fixture(&format!("office-day/{name}"))).unwrap();
        lines.extend(
            text.lines()
                .filter(|l| l.starts_with("[Dec") && keep(l))
                .map(|l| (line_time(l), path.clone(), l.to_owned())),
        );
    }
    lines.sort_by_key(|(at, ..)| *at);
    let mut r = Replay { app, asked, fraud_calls_written: 0, fraud_calls_at_lock: None };
    for (_, path, line) in lines {
        append(&path, &format!("{line}\n"));
        if line.contains(":1] Answer(\"PJSIP/1002-") {
            r.fraud_calls_written += 1;
        }
        r.app.poll().await;
        if r.fraud_calls_at_lock.is_none() && r.asked.list().iter().any(|a| a == "locked 1002 true") {
            r.fraud_calls_at_lock = Some(r.fraud_calls_written);
        }
    }
    r
}

async fn incident_rows(app: &TestApp) -> Vec<sipwarden::store::incidents::IncidentRow> {
    let mut conn = app.store.acquire().await.unwrap();
    sipwarden::store::incidents::recent(&mut conn, 100).await.unwrap()
}

#[tokio::test]
async fn live_the_cracked_extension_is_locked_before_its_first_fraud_call_and_every_call_is_hung_up() {
    let r =
        replay(&[("security.log", SourceKind::Security), ("full.log", SourceKind::Messages)], |_| true).await;
    assert_eq!(r.fraud_calls_at_lock, Some(0), "locked at the guessed password, before any call");
    let asked = r.asked.list();
    for seq in 6..=0x41 {
        let channel = format!("hangup PJSIP/1002-{seq:08x}");
        assert!(asked.contains(&channel), "{channel} not hung up: {asked:?}");
    }
    assert!(asked.contains(&"locked 2001 true".to_string()), "chan_sip 2001 cracked too: {asked:?}");
    assert!(
        !asked.iter().any(|a| a.contains("1001") || a.contains("1003")),
        "the office is left alone: {asked:?}"
    );
    let rows = incident_rows(&r.app).await;
    let breach = rows.iter().find(|i| i.kind == "breach" && i.account == "1002").unwrap();
    assert_eq!((breach.severity.as_str(), breach.ip.as_deref()), ("critical", Some("10.98.0.66")));
    assert!(breach.is_locking());
    assert!(breach.actions.contains("10.98.0.66"), "the address is banned: {}", breach.actions);
    assert!(breach.actions.contains("1002 locked"), "{}", breach.actions);
    let bans = r.app.active_bans().await;
    assert!(bans.iter().any(|b| b.ip == "10.98.0.66" && b.until_at.is_none()));
    assert!(bans.iter().any(|b| b.ip == "10.98.0.77" && b.until_at.is_none()));
}

/// Only the dialplan's lines of the full log (the crack went unseen, e.g. its failures
/// were spread over many addresses): the calls alone trip the breaker.
#[tokio::test]
async fn live_from_the_full_log_alone_the_fraud_is_stopped_within_five_calls() {
    let r = replay(&[("full.log", SourceKind::Messages)], |l| l.contains(" pbx.c: ")).await;
    let calls = r.fraud_calls_at_lock.expect("1002 locked by the breaker");
    assert!((1..=5).contains(&calls), "locked after {calls} fraud calls");
    let asked = r.asked.list();
    // The calls in progress when it tripped, and every later one, are hung up.
    for seq in 6..=0x41 {
        let channel = format!("hangup PJSIP/1002-{seq:08x}");
        assert!(asked.contains(&channel), "{channel} not hung up: {asked:?}");
    }
    assert!(!asked.iter().any(|a| a.contains("1001") || a.contains("1003")), "{asked:?}");
    let rows = incident_rows(&r.app).await;
    let trip = rows.iter().find(|i| i.kind == "toll_fraud" && i.severity == "critical").unwrap();
    assert_eq!(trip.account, "1002");
    assert!(trip.calls.is_some_and(|c| c <= 5), "{trip:?}");
}

fn wrong_password(ip: &str, account: &str, second: u32) -> String {
    format!(
        "[Dec  1 21:46:{second:02}] SECURITY[1] res_security_log.c: SecurityEvent=\"InvalidPassword\",EventTV=\"2026-12-01T21:46:{second:02}.100+0000\",Severity=\"Error\",Service=\"SIP\",EventVersion=\"1\",AccountID=\"{account}\",SessionID=\"0x{second}\",LocalAddress=\"IPV4/UDP/10.0.0.1/5060\",RemoteAddress=\"IPV4/UDP/{ip}/5060\",Challenge=\"a\",ReceivedChallenge=\"a\",ReceivedHash=\"b\"\n"
    )
}

/// One wrong password each from many addresses (a botnet) for one extension: no single
/// address reaches a ban rule, the pattern is told.
#[tokio::test]
async fn distributed_guessing_is_a_warning_offline_and_live() {
    let text: String = (0..6).map(|i| wrong_password(&format!("203.0.113.{}", 10 + i), "1005", i)).collect();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("security");
    std::fs::write(&path, &text).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_sipwarden"))
        .args(["check-log", "--format", "json"])
        .arg(&path)
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let found = report["incidents"].as_array().unwrap();
    assert_eq!(found.len(), 1, "{report}");
    assert_eq!(
        (found[0]["severity"].as_str(), found[0]["account"].as_str()),
        (Some("warning"), Some("1005"))
    );
    assert!(found[0]["reason"].as_str().unwrap().contains("5 addresses"), "told at the fifth");

    let (mut app, _) = watched_app(true, AFTER_OFFICE_DAY).await;
    let log = app.path("security");
    std::fs::write(&log, &text).unwrap();
    app.follow(&log, Some(SourceKind::Security), StartAt::Beginning).await;
    app.poll().await;
    let rows = incident_rows(&app).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(
        (rows[0].severity.as_str(), rows[0].account.as_str(), rows[0].locked),
        ("warning", "1005", false)
    );
}

/// A leaked password (no failures, so no breach): the office phone of 1002 logs in as
/// always, another address logs in and calls abroad. The breaker bans the address that
/// logged in during the burst, not the office phone.
#[tokio::test]
async fn the_burst_bans_the_address_it_came_from_not_the_office_phone() {
    use sipwarden::domain::{CallEvent, CallStart, DatedCall, Service};
    use sipwarden::watch::Seen;
    let app = TestApp::new(TrustedNetworks::default(), true).await;
    let asked = Arc::new(Asked::default());
    let watch = Watch::new(
        app.store.clone(),
        Arc::new(app.clock.clone()),
        asked.clone(),
        app.pipeline.bans_changed.clone(),
    );
    let t0 = AFTER_OFFICE_DAY - 3_600_000;
    let office = "10.98.0.22".parse().unwrap();
    let thief = "203.0.113.5".parse().unwrap();
    let login = |at, ip| Seen::Login { at, ip, account: "1002", service: Service::Pjsip };
    watch.observe(&[login(t0, office), login(t0 + 1_800_000, office)]).await.unwrap();
    let calls: Vec<DatedCall> = (0..4)
        .map(|i| DatedCall {
            at: Some(t0 + 2_400_000 + i * 500 + 10),
            event: CallEvent::Start(CallStart {
                channel: format!("PJSIP/1002-{i:08x}"),
                tech: "PJSIP".into(),
                endpoint: "1002".into(),
                number: format!("0088223233211{i}"),
                context: "from-internal".into(),
            }),
        })
        .collect();
    let mut seen = Vec::new();
    for (i, call) in calls.iter().enumerate() {
        seen.push(login(t0 + 2_400_000 + i as i64 * 500, thief));
        seen.push(Seen::Call(call));
    }
    watch.observe(&seen).await.unwrap();
    let bans = app.active_bans().await;
    assert!(bans.iter().any(|b| b.ip == "203.0.113.5"), "{bans:?}");
    assert!(!bans.iter().any(|b| b.ip == "10.98.0.22"), "the office phone stays: {bans:?}");
    let rows = incident_rows(&app).await;
    let trip = rows.iter().find(|i| i.kind == "toll_fraud" && i.severity == "critical").unwrap();
    assert_eq!(trip.ip.as_deref(), Some("203.0.113.5"));
    assert!(asked.list().contains(&"locked 1002 true".to_string()));
}

/// An old log imported at start is history (`check-log` reports it): nothing is locked
/// or banned today for a crack of yesterday.
#[tokio::test]
async fn an_old_log_imported_at_start_locks_nothing_today() {
    let (mut app, asked) = watched_app(true, AFTER_OFFICE_DAY + 86_400_000).await;
    for name in ["security.log", "full.log"] {
        let path = app.path(name);
        std::fs::copy(fixture(&format!("office-day/{name}")), &path).unwrap();
        let kind = if name == "security.log" { SourceKind::Security } else { SourceKind::Messages };
        app.follow(&path, Some(kind), StartAt::Beginning).await;
    }
    app.poll().await;
    assert!(asked.list().is_empty(), "{:?}", asked.list());
    assert!(incident_rows(&app).await.is_empty());
    // The attackers' failures are still counted and banned by the rules, as always.
    assert!(app.active_bans().await.iter().any(|b| b.ip == "10.98.0.66"));
}

/// The registrations of the recorded day, read from the full log as it is written: at
/// 21:50 the office's 1003, the cracked 1002 twice (svcrack's own contact, which gave
/// 1.1.1.1 as its host, and the attacker's phone) and chan_sip's 2001; 1001's two
/// registrations have ended.
#[tokio::test]
async fn the_full_logs_registrations_are_kept_as_they_come_and_go() {
    let r = replay(&[("full.log", SourceKind::Messages)], |l| {
        l.contains("res_pjsip_registrar.c") || l.contains("Registered SIP")
    })
    .await;
    let mut conn = r.app.store.acquire().await.unwrap();
    let at_2150 = AFTER_OFFICE_DAY - 10 * 60_000;
    let now: Vec<(String, String)> = sipwarden::store::contacts::current(&mut conn, None, at_2150, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|c| (c.account, c.uri))
        .collect();
    let expected = [
        ("1002", "sip:123@10.98.0.66:5060;x-ast-orig-host=1.1.1.1:0"),
        ("1002", "sip:1002@10.98.0.66:40770"),
        ("1003", "sip:1003@10.98.0.30:44244"),
        ("2001", "sip:2001@10.98.0.77:5060"),
    ];
    let expected: Vec<(String, String)> =
        expected.iter().map(|(a, u)| (a.to_string(), u.to_string())).collect();
    assert_eq!(now, expected);
    // By 22:00 the 60- and 600-second registrations have run out unless renewed.
    let later = sipwarden::store::contacts::current(&mut conn, None, AFTER_OFFICE_DAY, 100).await.unwrap();
    assert_eq!(later.iter().map(|c| c.account.as_str()).collect::<Vec<_>>(), ["1002", "2001"]);
}

/// A long log renews each registration every minute: a batch is written as where each
/// contact ends up, keeping when it began (and a removal and return within the batch
/// begins it anew).
#[tokio::test]
async fn a_batch_of_renewals_keeps_when_each_registration_began() {
    use sipwarden::domain::{ContactChange, DatedContact};
    let app = TestApp::new(TrustedNetworks::default(), false).await;
    let change = |uri: &str, at: i64, present: bool| DatedContact {
        at: Some(at),
        change: ContactChange {
            account: "1001".into(),
            uri: uri.into(),
            user_agent: None,
            present,
            expires_in_s: Some(60),
        },
    };
    let t = AFTER_OFFICE_DAY - 3_600_000;
    let (a, b) = ("sip:1001@10.98.0.20:49125", "sip:1001@10.98.0.20:46778");
    let mut batch: Vec<DatedContact> = (0..30).map(|i| change(a, t + i * 60_000, true)).collect();
    batch.extend([change(b, t, true), change(b, t + 60_000, false), change(b, t + 29 * 60_000, true)]);
    let mut conn = app.store.acquire().await.unwrap();
    sipwarden::store::contacts::record(&mut conn, &batch, t).await.unwrap();
    let rows = sipwarden::store::contacts::current(&mut conn, None, t + 29 * 60_000 + 1, 10).await.unwrap();
    let seen: Vec<(&str, i64, i64)> = rows.iter().map(|r| (r.uri.as_str(), r.first_at, r.last_at)).collect();
    assert_eq!(seen, [(a, t, t + 29 * 60_000), (b, t + 29 * 60_000, t + 29 * 60_000)]);
}

/// With a country database: an extension that always logged in from one country logs
/// in from another. Another address of the same country is only a new address.
#[tokio::test]
async fn a_login_from_a_country_new_to_the_extension_is_a_warning_naming_it() {
    use sipwarden::domain::Service;
    use sipwarden::watch::Seen;
    let app = TestApp::new(TrustedNetworks::default(), true).await;
    let geoip = app.path("geoip");
    // 203.0.113.0/24 (3405803776 – 3405804031) in FR, 198.51.100.0/24 (3325256704 – 3325256959) in BR.
    std::fs::write(&geoip, "3325256704,3325256959,BR\n3405803776,3405804031,FR\n").unwrap();
    let watch = Watch {
        geo: sipwarden::geo::Geo::open(&geoip).unwrap(),
        ..Watch::new(
            app.store.clone(),
            Arc::new(app.clock.clone()),
            Arc::new(Asked::default()),
            app.pipeline.bans_changed.clone(),
        )
    };
    let t0 = AFTER_OFFICE_DAY - 3_600_000;
    let login =
        |at, ip: &str| Seen::Login { at, ip: ip.parse().unwrap(), account: "1002", service: Service::Pjsip };
    watch.observe(&[login(t0, "203.0.113.20")]).await.unwrap();
    watch.observe(&[login(t0 + 60_000, "203.0.113.21")]).await.unwrap();
    watch.observe(&[login(t0 + 120_000, "198.51.100.9")]).await.unwrap();
    let rows = incident_rows(&app).await;
    let reasons: Vec<(&str, &str)> =
        rows.iter().map(|i| (i.ip.as_deref().unwrap_or(""), i.reason.as_str())).collect();
    assert_eq!(rows.len(), 2, "{reasons:?}");
    let abroad = rows.iter().find(|i| i.ip.as_deref() == Some("198.51.100.9")).unwrap();
    assert_eq!(abroad.severity, "warning");
    assert!(abroad.reason.contains("from BR, a country it never logged in from"), "{reasons:?}");
    let next_door = rows.iter().find(|i| i.ip.as_deref() == Some("203.0.113.21")).unwrap();
    assert_eq!(next_door.reason, "first login to this account from this address");
}
