//! Panel pages with many stored offenders: time per request, one client.

use std::io::{Read, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use argon2::Argon2;
use argon2::password_hash::PasswordHasher;
use sipwarden::clock::{Clock, SystemClock};
use sipwarden::domain::TrustedNetworks;
use sipwarden::policy::Ladder;
use sipwarden::store::{self, Store};
use sipwarden::web::{self, PanelOptions, WebState};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

pub fn get(port: u16, path: &str, cookie: &str) -> (Duration, String) {
    let start = Instant::now();
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nCookie: {cookie}\r\n\r\n").unwrap();
    let mut reply = String::new();
    s.read_to_string(&mut reply).unwrap();
    (start.elapsed(), reply)
}

/// `bans` bans (half timed, half until released) and the admin `login` signs in as.
pub async fn seed_bans_and_admin(tx: &mut store::Conn, bans: u64, now: i64) -> anyhow::Result<()> {
    for i in 0..bans {
        let ip = super::kernel::address(i).to_string();
        let until = (i % 2 == 0).then_some(now + 3_600_000);
        let ban = store::bans::NewBan { ip: &ip, reason: "bench", rung: 1, created_at: now, until_at: until };
        store::bans::insert(tx, &ban).await?;
    }
    let hash =
        Argon2::default().hash_password(b"bench password").map_err(|e| anyhow::anyhow!("{e}"))?.to_string();
    store::admins::create(tx, "bench", &hash, sipwarden::domain::Role::Admin, now).await?;
    Ok(())
}

/// Logs in as the bench's admin; returns the session cookie.
pub fn login(port: u16) -> String {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let body = "username=bench&password=bench+password";
    write!(s, "POST /login HTTP/1.1\r\nHost: x\r\nConnection: close\r\nSec-Fetch-Site: same-origin\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}", body.len()).unwrap();
    let mut reply = String::new();
    s.read_to_string(&mut reply).unwrap();
    reply
        .lines()
        .find_map(|l| l.strip_prefix("set-cookie: "))
        .and_then(|c| c.split(';').next())
        .unwrap()
        .to_string()
}

pub fn offenders(args: impl Iterator<Item = String>) -> anyhow::Result<()> {
    let args: Vec<String> = args.collect();
    let n = super::kernel::flag(&args, "--offenders", 100_000);
    let extra_failures = super::kernel::flag(&args, "--failures", 1_000_000).saturating_sub(n);
    let bans = super::kernel::flag(&args, "--bans", 100_000);
    let rt = tokio::runtime::Runtime::new()?;
    // With --database-url: a shared PostgreSQL store, its failures from three PBXes.
    let server =
        args.iter().any(|a| a == "--database-url").then(|| super::shared::server(&args)).transpose()?;
    let shared = match &server {
        Some(server) => Some(rt.block_on(super::shared::scratch_database(server))?),
        None => None,
    };
    let result = rt.block_on(measure(shared.as_deref(), n, extra_failures, bans));
    if let (Some(server), Some(url)) = (&server, &shared) {
        rt.block_on(super::shared::drop_database(server, url));
    }
    result
}

async fn measure(shared: Option<&str>, n: u64, extra_failures: u64, bans: u64) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (store, nodes) = match shared {
        Some(url) => (Store::connect_postgres(url).await?, 3),
        None => (Store::open(&dir.path().join("bench.db")).await?, 1),
    };
    let now = SystemClock.now();
    for node in 0..nodes {
        let mut tx = store.clone().with_node(&format!("pbx-{node}")).begin().await?;
        seed_failures(&mut tx, n, extra_failures, now, (node, nodes)).await?;
        tx.commit().await?;
    }
    let mut tx = store.begin().await?;
    seed_bans_and_admin(&mut tx, bans, now).await?;
    tx.commit().await?;
    let state = WebState::new(
        store.clone(),
        Arc::new(SystemClock),
        TrustedNetworks::default(),
        Ladder::default(),
        true,
        Arc::new(Notify::new()),
        "bench".into(),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let options = PanelOptions {
        listen: listener.local_addr()?,
        secure_cookies: false,
        session_idle: time::Duration::hours(1),
    };
    let stopped = CancellationToken::new();
    let sessions =
        web::sessions(&store, &options, &tokio_util::task::TaskTracker::new(), stopped.clone()).await?;
    tokio::spawn(web::serve(state, sessions, listener, stopped));
    let cookie = tokio::task::spawn_blocking(move || login(port)).await?;
    println!("offenders {n}, failures {}, bans {bans}", n + extra_failures);
    for path in [
        "/",
        "/offenders",
        "/offenders?sort=failures",
        &format!("/offenders?page={}", n / 100),
        "/offenders?q=1001",
        "/offenders?q=40.0.0.0%2F24",
        "/bans",
        "/log",
    ] {
        let (p, c) = (path.to_string(), cookie.clone());
        let times = tokio::task::spawn_blocking(move || {
            let mut t: Vec<Duration> = (0..20)
                .map(|_| get(port, &p, &c))
                .map(|(d, r)| {
                    assert!(r.starts_with("HTTP/1.1 200"), "{}", r.lines().next().unwrap_or(""));
                    d
                })
                .collect();
            t.sort();
            t
        })
        .await?;
        println!(
            "GET {path:<28} p50 {:>6.1} ms  max {:>6.1} ms",
            times[10].as_secs_f64() * 1e3,
            times[19].as_secs_f64() * 1e3
        );
    }
    // 100 concurrent clients with wrk, when it is installed (Debian: wrk).
    if std::process::Command::new("wrk").arg("--version").output().is_ok() {
        for path in ["/", "/offenders", "/offenders?q=40.0.0.0%2F24", "/bans?page=1"] {
            let url = format!("http://127.0.0.1:{port}{path}");
            let out = tokio::process::Command::new("wrk")
                .args(["-t2", "-c100", "-d5s", "--latency", "-H", &format!("Cookie: {cookie}"), &url])
                .output()
                .await?;
            let text = String::from_utf8_lossy(&out.stdout);
            let pick = |label: &str| {
                text.lines()
                    .find(|l| l.trim_start().starts_with(label))
                    .map(|l| l.split_whitespace().nth(1).unwrap_or("?").to_string())
                    .unwrap_or_default()
            };
            let rps = text
                .lines()
                .find(|l| l.starts_with("Requests/sec"))
                .map(|l| l.split_whitespace().nth(1).unwrap_or("?").to_string())
                .unwrap_or_default();
            let non2xx = text
                .lines()
                .find(|l| l.contains("Non-2xx"))
                .map(|l| l.trim().to_string())
                .unwrap_or_default();
            println!(
                "wrk -c100 GET {path:<24} p50 {:>8}  p99 {:>8}  {rps} req/s {non2xx}",
                pick("50%"),
                pick("99%")
            );
        }
    }
    let rss = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmHWM:")).map(|l| l.to_string()));
    println!("bench process (panel and database in it) peak {}", rss.unwrap_or_default());
    Ok(())
}

/// This node's share (`node` of `nodes`) of the offenders and failures.
async fn seed_failures(
    tx: &mut store::Conn,
    n: u64,
    extra_failures: u64,
    now: i64,
    (node, nodes): (u64, u64),
) -> anyhow::Result<()> {
    let failure = |at, ip, service| store::failures::NewFailure {
        at,
        ip: Some(ip),
        service,
        account: Some("1001"),
        kind: "wrong_password",
        source: "bench",
        raw: "bench line",
        tampered: false,
        verdict: "watch",
    };
    for i in (0..n).filter(|i| i % nodes == node) {
        let ip = super::kernel::address(i).to_string();
        let at = now - (i as i64 % 86_400) * 1000;
        store::offenders::record(tx, &ip, "PJSIP", Some(&format!("{}", 100 + i % 900)), at).await?;
        store::failures::insert(tx, &failure(at, ip, "PJSIP")).await?;
    }
    // More failures spread over the same addresses.
    for i in (0..extra_failures).filter(|i| i % nodes == node) {
        let ip = super::kernel::address(i % n).to_string();
        store::failures::insert(tx, &failure(now - (i as i64 % 86_400) * 1000, ip, "SIP")).await?;
    }
    Ok(())
}
