//! Several PBXes on one PostgreSQL store: a ban decided by node A reaching the
//! kernels of nodes B and C. Each node has its own store handle (its own
//! connections and `LISTEN`), its own enforcer and its own network namespace; A alone
//! reads an attack log written at a steady rate.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sipwarden::asterisk::SourceKind;
use sipwarden::clock::SystemClock;
use sipwarden::domain::TrustedNetworks;
use sipwarden::enforcer::Enforcer;
use sipwarden::ingest::{self, StartAt};
use sipwarden::store::Store;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::kernel::{Namespace, Timed, bench_pipeline, flag, percentile, write_attack};

/// A new database on `server` (a PostgreSQL URL) for this run; its URL.
pub async fn scratch_database(server: &str) -> anyhow::Result<String> {
    use sqlx::Connection;
    let name = format!("sipwarden_bench_{}", std::process::id());
    let mut admin = sqlx::PgConnection::connect(server).await?;
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name}")).execute(&mut admin).await?;
    sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut admin).await?;
    let mut url = url::Url::parse(server)?;
    url.set_path(&name);
    Ok(url.to_string())
}

pub async fn drop_database(server: &str, url: &str) {
    use sqlx::Connection;
    let name = url::Url::parse(url).map(|u| u.path().trim_start_matches('/').to_string()).unwrap_or_default();
    if let Ok(mut admin) = sqlx::PgConnection::connect(server).await {
        let _ =
            sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&mut admin).await;
    }
}

/// `--database-url SERVER`: the PostgreSQL server the shared-store benches use.
pub fn server(args: &[String]) -> anyhow::Result<String> {
    args.iter()
        .position(|a| a == "--database-url")
        .and_then(|i| args.get(i + 1).cloned())
        .or_else(|| std::env::var("SIPWARDEN_DATABASE_URL").ok())
        .ok_or_else(|| {
            anyhow::anyhow!("give a PostgreSQL server: --database-url postgres://user:password@host/postgres")
        })
}

struct Node {
    timed: Arc<Timed>,
    _ns: Namespace,
}

pub fn propagation(args: impl Iterator<Item = String>) -> anyhow::Result<()> {
    let args: Vec<String> = args.collect();
    let bans = flag(&args, "--bans", 1000);
    let rate = flag(&args, "--rate", 5000);
    let nodes = flag(&args, "--nodes", 3).max(2) as usize;
    let server = server(&args)?;
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        let url = scratch_database(&server).await?;
        let result = run(&url, bans, rate, nodes).await;
        drop_database(&server, &url).await;
        result
    })
}

async fn run(url: &str, bans: u64, rate: u64, count: usize) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let log = dir.path().join("messages");
    std::fs::write(&log, "")?;
    let base = Store::connect_postgres(url).await?;
    let stop = CancellationToken::new();
    let mut tasks = Vec::new();
    let mut nodes = Vec::new();
    for n in 0..count {
        let store = base.clone().with_node(&format!("pbx-{n}"));
        sipwarden::shared::register(&store).await?;
        let ns = Namespace::named(&format!("-{n}"))?;
        let timed = Arc::new(Timed { inner: ns.backend(), seen: Mutex::new(HashMap::new()) });
        let poke = Arc::new(Notify::new());
        let enforcer = Arc::new(Enforcer::new(
            store.clone(),
            timed.clone(),
            Arc::new(SystemClock),
            TrustedNetworks::default(),
            true,
            poke.clone(),
        ));
        tasks.push(tokio::spawn(enforcer.run(Duration::from_secs(30), stop.clone())));
        tasks.push(tokio::spawn(sipwarden::shared::run(store.clone(), poke.clone(), stop.clone())));
        if n == 0 {
            let pipeline = bench_pipeline(&store, poke);
            let follower =
                ingest::follower_for(&store, log.clone(), Some(SourceKind::Messages), StartAt::End).await?;
            tasks.push(tokio::spawn(ingest::run(
                vec![follower],
                pipeline,
                Duration::from_secs(1),
                stop.clone(),
            )));
        }
        nodes.push(Node { timed, _ns: ns });
    }
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let appended = write_attack(log, bans, rate).join().expect("writer thread")?;
    let addresses: Vec<IpAddr> = appended.keys().copied().collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    while nodes.iter().any(|n| n.timed.seen.lock().unwrap().len() < addresses.len())
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.cancel();
    for t in tasks {
        t.await?;
    }
    let origin = nodes[0].timed.seen.lock().unwrap().clone();
    let (mut spread, mut to_other, mut to_origin) = (Vec::new(), Vec::new(), Vec::new());
    let mut missing = 0;
    for ip in &addresses {
        if let (Some((_, at_a)), Some(line)) = (origin.get(ip), appended.get(ip)) {
            to_origin.push(at_a.saturating_duration_since(*line));
        }
    }
    for other in &nodes[1..] {
        let seen = other.timed.seen.lock().unwrap();
        for ip in &addresses {
            match (origin.get(ip), seen.get(ip), appended.get(ip)) {
                (Some((_, at_a)), Some((_, at_b)), Some(line)) => {
                    spread.push(at_b.saturating_duration_since(*at_a));
                    to_other.push(at_b.saturating_duration_since(*line));
                }
                _ => missing += 1,
            }
        }
    }
    for v in [&mut spread, &mut to_other, &mut to_origin] {
        v.sort();
    }
    anyhow::ensure!(!spread.is_empty(), "no ban reached another node");
    println!("nodes                     {count} (one reading the log)");
    println!("failure lines appended    {} at {rate}/s from {bans} addresses", bans * 3);
    println!("bans on node A            {} of {bans}", origin.len());
    println!(
        "bans reaching the others  {} of {} ({missing} missing)",
        spread.len(),
        (count - 1) as u64 * bans
    );
    println!("A's kernel → other p50    {:.1} ms", percentile(&spread, 0.50).as_secs_f64() * 1e3);
    println!("A's kernel → other p99    {:.1} ms", percentile(&spread, 0.99).as_secs_f64() * 1e3);
    println!("A's kernel → other max    {:.1} ms", spread.last().unwrap().as_secs_f64() * 1e3);
    let ms = |v: &[Duration], p: f64| percentile(v, p).as_secs_f64() * 1e3;
    println!(
        "log append → A's kernel   p50 {:.1} ms, p99 {:.1} ms",
        ms(&to_origin, 0.5),
        ms(&to_origin, 0.99)
    );
    println!("log append → other kernel p50 {:.1} ms, p99 {:.1} ms", ms(&to_other, 0.5), ms(&to_other, 0.99));
    Ok(())
}
