//! `serve` starting on a full database: time until the panel answers and until the
//! kernel (in a namespace of the bench's own) holds every ban, then serve's memory
//! once an admin has opened its pages. With `--database-url SERVER` the database is
//! a shared PostgreSQL one, spread over three nodes: a new PBX joining them.

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sipwarden::clock::{Clock, SystemClock};
use sipwarden::store::{self, Store};

pub fn run(args: impl Iterator<Item = String>) -> anyhow::Result<()> {
    let args: Vec<String> = args.collect();
    let failures = super::kernel::flag(&args, "--failures", 1_000_000);
    let bans = super::kernel::flag(&args, "--bans", 100_000);
    let ns = super::kernel::Namespace::new()?;
    let dir = tempfile::tempdir()?;
    let rt = tokio::runtime::Runtime::new()?;
    let server =
        args.iter().any(|a| a == "--database-url").then(|| super::shared::server(&args)).transpose()?;
    let shared = match &server {
        Some(server) => Some(rt.block_on(super::shared::scratch_database(server))?),
        None => None,
    };
    let result = run_on(&rt, &dir, &ns, shared.as_deref(), failures, bans);
    if let (Some(server), Some(url)) = (&server, &shared) {
        rt.block_on(super::shared::drop_database(server, url));
    }
    result
}

fn run_on(
    rt: &tokio::runtime::Runtime,
    dir: &tempfile::TempDir,
    ns: &super::kernel::Namespace,
    shared: Option<&str>,
    failures: u64,
    bans: u64,
) -> anyhow::Result<()> {
    rt.block_on(async {
        let store = match shared {
            Some(url) => Store::connect_postgres(url).await?,
            None => Store::open(&dir.path().join("sipwarden.db")).await?,
        };
        let now = SystemClock.now();
        let mut tx = store.begin().await?;
        let rows: Vec<store::failures::Pending> = (0..failures)
            .map(|i| store::failures::Pending {
                at: now - (i as i64 % 86_400) * 1000,
                ip: Some(super::kernel::address(i % 100_000).to_string()),
                service: "PJSIP",
                account: Some("1001".into()),
                kind: "wrong_password",
                raw: "bench line".into(),
                tampered: false,
                verdict: "watch".into(),
            })
            .collect();
        if shared.is_some() {
            // Spread over three PBXes (on PostgreSQL the open transaction blocks no other).
            for (n, part) in rows.chunks(rows.len().div_ceil(3).max(1)).enumerate() {
                let mut node_tx = store.clone().with_node(&format!("pbx-{n}")).begin().await?;
                store::failures::insert_many(&mut node_tx, "bench", part).await?;
                node_tx.commit().await?;
            }
        } else {
            store::failures::insert_many(&mut tx, "bench", &rows).await?;
        }
        for i in 0..failures.min(100_000) {
            let ip = super::kernel::address(i).to_string();
            store::offenders::record(&mut tx, &ip, "PJSIP", Some("1001"), now - (i as i64 % 86_400) * 1000)
                .await?;
        }
        super::panel::seed_bans_and_admin(&mut tx, bans, now).await?;
        tx.commit().await?;
        store.close().await;
        anyhow::Ok(())
    })?;
    let config = dir.path().join("sipwarden.toml");
    std::fs::write(
        &config,
        format!(
            "[firewall]\nbackend = \"nft\"\ncommand_prefix = [\"ip\", \"netns\", \"exec\", \"{}\"]\n{}",
            ns.0,
            shared.map_or(String::new(), |url| format!("\n[store]\nurl = \"{url}\"\nnode = \"pbx-new\"\n"))
        ),
    )?;
    let binary = std::env::current_exe()?.with_file_name("sipwarden");
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let start = Instant::now();
    let mut serve = Command::new(binary)
        .args(["serve", "--config"])
        .arg(&config)
        .arg("--data-dir")
        .arg(dir.path())
        .args(["--listen", &format!("127.0.0.1:{port}"), "--log"])
        .arg(dir.path().join("none.log"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let mut serving = None;
    let mut enforced = None;
    while start.elapsed() < Duration::from_secs(120) && (serving.is_none() || enforced.is_none()) {
        if serving.is_none() {
            if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
                let _ = s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
                let mut reply = String::new();
                let _ = s.read_to_string(&mut reply);
                // Any answer: /healthz says 503 while this bench's serve has no log to read.
                if reply.starts_with("HTTP/1.1 ") {
                    serving = Some(start.elapsed());
                }
            }
        }
        if enforced.is_none() {
            let out = Command::new("ip")
                .args(["netns", "exec", &ns.0, "nft", "-j", "list", "table", "inet", "sipwarden"])
                .output()?;
            if out.status.success() {
                let json = String::from_utf8_lossy(&out.stdout);
                // One element per ban: count the addresses the bench used.
                if json.matches("\"40.").count() as u64 >= bans {
                    enforced = Some(start.elapsed());
                }
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let cookie = super::panel::login(port);
    for path in ["/", "/offenders", "/offenders?sort=failures", "/bans", "/log", "/networks"] {
        for _ in 0..5 {
            let (_, reply) = super::panel::get(port, path, &cookie);
            anyhow::ensure!(
                reply.starts_with("HTTP/1.1 200"),
                "{path}: {}",
                reply.lines().next().unwrap_or("")
            );
        }
    }
    let status = std::fs::read_to_string(format!("/proc/{}/status", serve.id()))?;
    let memory =
        |key: &str| status.lines().find(|l| l.starts_with(key)).map_or(String::new(), |l| l.to_string());
    let _ = serve.kill();
    let _ = serve.wait();
    println!(
        "stored                    {failures} failures, {} offenders, {bans} bans{}",
        failures.min(100_000),
        if shared.is_some() { " (shared PostgreSQL store, 3 nodes; serve is a new 4th)" } else { "" }
    );
    println!("panel answering after     {:.2} s", serving.map_or(f64::NAN, |d| d.as_secs_f64()));
    println!("kernel holding every ban  {:.2} s", enforced.map_or(f64::NAN, |d| d.as_secs_f64()));
    println!("serve after the panel's pages: {} / {}", memory("VmRSS:"), memory("VmHWM:"));
    Ok(())
}
