//! Alerts reach a webhook and a mail server (both on loopback, speaking HTTP and SMTP),
//! one message per incident; a mail server that is down holds nothing up.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sipwarden::alerts::{AlertSettings, Alerts, Security, SmtpSettings};
use sipwarden::asterisk::SourceKind;
use sipwarden::domain::TrustedNetworks;
use sipwarden::ingest::StartAt;
use sipwarden::pbx::control::Cli;
use sipwarden::store;
use sipwarden::watch::Watch;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use crate::harness::{eventually_async, never_async};
use tokio_util::sync::CancellationToken;

use crate::common::{TestApp, append};

/// JSON bodies POSTed to it.
pub async fn webhook_receiver() -> (String, Arc<Mutex<Vec<serde_json::Value>>>) {
    let got = Arc::new(Mutex::new(Vec::new()));
    let keep = got.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |axum::Json(body): axum::Json<serde_json::Value>| {
            let keep = keep.clone();
            async move {
                keep.lock().unwrap().push(body);
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, got)
}

/// A mail server that takes every message (plain SMTP); returns its port and the
/// messages' text.
async fn smtp_receiver() -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let got = Arc::new(Mutex::new(Vec::new()));
    let keep = got.clone();
    tokio::spawn(async move {
        loop {
            let Ok((socket, _)) = listener.accept().await else { return };
            let keep = keep.clone();
            tokio::spawn(async move {
                let (read, mut write) = socket.into_split();
                let mut lines = BufReader::new(read).lines();
                write.write_all(b"220 mail.test ESMTP\r\n").await.unwrap();
                let (mut data, mut in_data) = (String::new(), false);
                while let Ok(Some(line)) = lines.next_line().await {
                    if in_data {
                        if line == "." {
                            in_data = false;
                            keep.lock().unwrap().push(std::mem::take(&mut data));
                            write.write_all(b"250 2.0.0 queued\r\n").await.unwrap();
                        } else {
                            data.push_str(&line);
                            data.push('\n');
                        }
                        continue;
                    }
                    let verb = line.get(..4).unwrap_or("").to_ascii_uppercase();
                    let answer: &[u8] = match verb.as_str() {
                        "EHLO" | "HELO" => b"250 mail.test\r\n",
                        "DATA" => {
                            in_data = true;
                            b"354 go ahead\r\n"
                        }
                        "QUIT" => {
                            let _ = write.write_all(b"221 bye\r\n").await;
                            return;
                        }
                        _ => b"250 ok\r\n",
                    };
                    write.write_all(answer).await.unwrap();
                }
            });
        }
    });
    (port, got)
}

async fn save(app: &TestApp, settings: &AlertSettings) {
    let mut conn = app.store.acquire().await.unwrap();
    store::settings::set(&mut conn, store::settings::ALERTS, &serde_json::to_string(settings).unwrap())
        .await
        .unwrap();
}

fn guessed(ip: &str) -> String {
    let event = |name: &str, session: &str, tail: &str| {
        let severity = if name == "SuccessfulAuth" { "Informational" } else { "Error" };
        format!(
            "[Dec  1 21:46:09] SECURITY[1] res_security_log.c: SecurityEvent=\"{name}\",EventTV=\"2026-12-01T21:46:09.181+0000\",Severity=\"{severity}\",Service=\"SIP\",EventVersion=\"1\",AccountID=\"2001\",SessionID=\"{session}\",LocalAddress=\"IPV4/UDP/10.0.0.1/5060\",RemoteAddress=\"IPV4/UDP/{ip}/5060\",{tail}\n"
        )
    };
    let wrong = "Challenge=\"a\",ReceivedChallenge=\"a\",ReceivedHash=\"b\"";
    (0..3).map(|i| event("InvalidPassword", &format!("0x{i}"), wrong)).collect::<String>()
        + &event("SuccessfulAuth", "0x9", "UsingPassword=\"1\"")
}

/// A TestApp whose watch tells `alerts`; Asterisk's CLI is a command that does nothing.
async fn watched(alerts: &Alerts) -> TestApp {
    let mut app = TestApp::new(TrustedNetworks::default(), true).await;
    app.clock.set(1_796_162_400_000);
    app.pipeline.watch = Some(Arc::new(Watch {
        alerts: Some(alerts.clone()),
        ..Watch::new(
            app.store.clone(),
            Arc::new(app.clock.clone()),
            Arc::new(Cli { command: vec!["true".into()] }),
            app.pipeline.bans_changed.clone(),
        )
    }));
    let log = app.path("security.log");
    std::fs::write(&log, "").unwrap();
    app.follow(&log, Some(SourceKind::Security), StartAt::Beginning).await;
    app
}

/// How long a message is given to arrive.
const SOON: Duration = Duration::from_secs(10);

#[tokio::test]
async fn a_breach_reaches_the_webhook_and_the_mailbox_once() {
    let (url, hooked) = webhook_receiver().await;
    let (port, mailed) = smtp_receiver().await;
    let (alerts, queue) = Alerts::new();
    let mut app = watched(&alerts).await;
    save(
        &app,
        &AlertSettings {
            webhook: Some(url),
            smtp: Some(SmtpSettings {
                host: "127.0.0.1".into(),
                port,
                security: Security::None,
                username: None,
                password: None,
                from: "pbx@example.com".into(),
                to: vec!["admin@example.com".into()],
            }),
            ..AlertSettings::default()
        },
    )
    .await;
    let stop = CancellationToken::new();
    tokio::spawn(alerts.clone().run(queue, app.store.clone(), stop.clone()));
    append(&app.path("security.log"), &guessed("198.51.100.77"));
    app.poll().await;
    // The same login seen again (another log, a retry) is no second message.
    append(&app.path("security.log"), &guessed("198.51.100.77"));
    app.poll().await;
    eventually_async("the webhook got it", SOON, async || !hooked.lock().unwrap().is_empty()).await;
    eventually_async("the mail got it", SOON, async || !mailed.lock().unwrap().is_empty()).await;
    let hook = hooked.lock().unwrap()[0].clone();
    assert_eq!(hook["kind"], "breach");
    assert!(hook["text"].as_str().unwrap().contains("Extension 2001 locked"), "{hook}");
    assert!(hook["body"].as_str().unwrap().contains("198.51.100.77 banned until released"), "{hook}");
    let mail = mailed.lock().unwrap()[0].clone();
    assert!(mail.contains("Subject: [sipwarden] Extension 2001 locked"), "{mail}");
    assert!(mail.contains("To: admin@example.com"), "{mail}");
    never_async("a second message for one incident", Duration::from_millis(500), async || {
        hooked.lock().unwrap().len() > 1 || mailed.lock().unwrap().len() > 1
    })
    .await;
    stop.cancel();
}

#[tokio::test]
async fn a_mail_server_that_is_down_holds_nothing_up() {
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let (alerts, queue) = Alerts::new();
    let mut app = watched(&alerts).await;
    let smtp = SmtpSettings {
        host: "127.0.0.1".into(),
        port,
        security: Security::None,
        username: None,
        password: None,
        from: "pbx@example.com".into(),
        to: vec!["admin@example.com".into()],
    };
    save(&app, &AlertSettings { smtp: Some(smtp), ..AlertSettings::default() }).await;
    let stop = CancellationToken::new();
    tokio::spawn(alerts.clone().run(queue, app.store.clone(), stop.clone()));
    append(&app.path("security.log"), &guessed("198.51.100.78"));
    let started = Instant::now();
    app.poll().await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "detection did not wait for mail: {:?}",
        started.elapsed()
    );
    let mut conn = app.store.acquire().await.unwrap();
    assert!(!store::incidents::locking(&mut conn).await.unwrap().is_empty(), "the extension is locked");
    drop(conn);
    eventually_async("the failure is shown", SOON, async || {
        alerts.health().problem.is_some_and(|p| p.contains("trying again"))
    })
    .await;
    stop.cancel();
}

/// New bans are told together, at most once an hour by default; the morning summary
/// once a day after 07:00. When each went out is stored, so a restart repeats nothing.
#[tokio::test]
async fn bans_are_told_together_and_the_day_once_each_morning() {
    use chrono::TimeZone;
    let (url, hooked) = webhook_receiver().await;
    let (alerts, queue) = Alerts::new();
    let app = watched(&alerts).await;
    save(&app, &AlertSettings { webhook: Some(url), ..AlertSettings::default() }).await;
    let stop = CancellationToken::new();
    tokio::spawn(alerts.clone().run(queue, app.store.clone(), stop.clone()));
    let morning = |day: u32, hour: u32| {
        chrono::Local.with_ymd_and_hms(2026, 12, day, hour, 0, 0).unwrap().timestamp_millis()
    };
    let t = morning(2, 5);
    let step = |at| {
        let (alerts, store) = (alerts.clone(), app.store.clone());
        async move { sipwarden::alerts::digest_step(&alerts, &store, at).await.unwrap() }
    };
    step(t).await;
    let mut conn = app.store.acquire().await.unwrap();
    for ip in ["203.0.113.1", "203.0.113.2"] {
        let ban = store::bans::NewBan {
            ip,
            reason: "2 failures within 1h",
            rung: 1,
            created_at: t + 60_000,
            until_at: None,
        };
        store::bans::insert(&mut conn, &ban).await.unwrap();
    }
    drop(conn);
    step(t + 30 * 60_000).await;
    step(t + 61 * 60_000).await;
    step(t + 62 * 60_000).await;
    eventually_async("the digest arrives", SOON, async || !hooked.lock().unwrap().is_empty()).await;
    never_async("a second digest", Duration::from_millis(500), async || hooked.lock().unwrap().len() > 1)
        .await;
    let got = hooked.lock().unwrap().clone();
    assert_eq!(got[0]["subject"], "2 addresses banned");
    assert!(got[0]["body"].as_str().unwrap().contains("203.0.113.2 until released: 2 failures within 1h"));

    let summary = |at| {
        let (alerts, store) = (alerts.clone(), app.store.clone());
        async move { sipwarden::alerts::summary_step(&alerts, &store, at).await.unwrap() }
    };
    summary(morning(2, 6)).await;
    summary(morning(2, 7) + 60_000).await;
    summary(morning(2, 9)).await;
    eventually_async("the summary arrives", SOON, async || hooked.lock().unwrap().len() == 2).await;
    summary(morning(3, 7) + 120_000).await;
    eventually_async("the next morning's", SOON, async || hooked.lock().unwrap().len() == 3).await;
    let got = hooked.lock().unwrap().clone();
    assert_eq!(got[1]["kind"], "daily_summary");
    assert!(got[1]["body"].as_str().unwrap().contains("2 new bans"), "{}", got[1]);
    stop.cancel();
}
