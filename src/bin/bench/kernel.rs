//! Kernel benchmarks, each in a network namespace of its own (never the host's
//! firewall): a full reconcile of many bans, and log-append → kernel latency.

use std::collections::HashMap;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nftables::expr::{Expression, NamedExpression};
use nftables::schema::Nftables;
use sipwarden::asterisk::SourceKind;
use sipwarden::clock::{Clock, SystemClock};
use sipwarden::domain::TrustedNetworks;
use sipwarden::enforcer::Enforcer;
use sipwarden::firewall::{Firewall, FirewallError, KernelState, NftBackend};
use sipwarden::ingest::pipeline::Pipeline;
use sipwarden::ingest::{self, StartAt};
use sipwarden::policy::Ladder;
use sipwarden::store::{self, Store};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

pub struct Namespace(pub String);

impl Namespace {
    pub fn new() -> anyhow::Result<Namespace> {
        Namespace::named("")
    }

    /// One of several namespaces of this run, told apart by `suffix`.
    pub fn named(suffix: &str) -> anyhow::Result<Namespace> {
        let name = format!("swb-{}{suffix}", std::process::id());
        let ok = Command::new("ip").args(["netns", "add", &name]).status()?.success();
        anyhow::ensure!(ok, "cannot create a network namespace (run as root with iproute2 and nftables)");
        Ok(Namespace(name))
    }

    pub fn backend(&self) -> NftBackend {
        NftBackend::new(vec!["ip".into(), "netns".into(), "exec".into(), self.0.clone()])
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// The live pipeline as `serve` builds it: default ladder, nothing trusted, protection on.
pub fn bench_pipeline(store: &Store, bans_changed: Arc<Notify>) -> Pipeline {
    Pipeline {
        store: store.clone(),
        ladder: Ladder::default(),
        trusted: TrustedNetworks::default(),
        clock: Arc::new(SystemClock),
        security_source_present: false,
        protection_default: true,
        clean_log: None,
        bans_changed,
        health: Default::default(),
        attempts: Default::default(),
        corroboration: Default::default(),
        prefix_rule: Default::default(),
        count_per_node: false,
        watch: None,
        spool: None,
    }
}

pub fn flag(args: &[String], name: &str, default: u64) -> u64 {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

pub fn address(i: u64) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(0x2800_0000u32 + i as u32))
}

pub fn reconcile(args: impl Iterator<Item = String>) -> anyhow::Result<()> {
    let args: Vec<String> = args.collect();
    let n = flag(&args, "--bans", 100_000);
    let ns = Namespace::new()?;
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        let dir = tempfile::tempdir()?;
        let store = Store::open(&dir.path().join("bench.db")).await?;
        let now = SystemClock.now();
        let mut tx = store.begin().await?;
        for i in 0..n {
            let ip = address(i).to_string();
            let until = if i % 2 == 0 { Some(now + 3_600_000) } else { None };
            let ban =
                store::bans::NewBan { ip: &ip, reason: "bench", rung: 1, created_at: now, until_at: until };
            store::bans::insert(&mut tx, &ban).await?;
        }
        tx.commit().await?;
        let enforcer = Enforcer::new(
            store,
            Arc::new(ns.backend()),
            Arc::new(SystemClock),
            TrustedNetworks::default(),
            true,
            Arc::new(Notify::new()),
        );
        let start = Instant::now();
        let report = enforcer.reconcile_once().await?;
        let full = start.elapsed();
        let start = Instant::now();
        let again = enforcer.reconcile_once().await?;
        let check = start.elapsed();
        let kernel = ns.backend().list()?;
        // Where the time goes: rendering alone, and nft alone.
        let bans: Vec<sipwarden::firewall::KernelBan> = (0..n)
            .map(|i| sipwarden::firewall::KernelBan::address(address(i), (i % 2 == 0).then_some(3600)))
            .collect();
        let start = Instant::now();
        let ruleset =
            sipwarden::firewall::render::full_ruleset(&sipwarden::firewall::Access::default(), &bans);
        let json = serde_json::to_string(&ruleset)?;
        let render = start.elapsed();
        let start = Instant::now();
        ns.backend().apply(&ruleset)?;
        let apply = start.elapsed();
        let start = Instant::now();
        ns.backend().list()?;
        let list = start.elapsed();
        println!("  of which render + JSON  {:.3} s ({} bytes)", render.as_secs_f64(), json.len());
        println!("  of which nft -f         {:.3} s", apply.as_secs_f64());
        println!("  nft list + parse        {:.3} s", list.as_secs_f64());
        println!("bans in the database      {n} (half timed, half until released)");
        println!(
            "full reconcile            {:.3} s (table replaced, {} elements)",
            full.as_secs_f64(),
            report.enforced
        );
        println!(
            "reconcile with no change  {:.3} s (list + compare, {} repairs)",
            check.as_secs_f64(),
            again.repairs.len()
        );
        println!("elements in the kernel    {}", kernel.bans.len());
        anyhow::ensure!(kernel.bans.len() as u64 == n, "kernel holds {} of {n} bans", kernel.bans.len());
        Ok(())
    })
}

/// Records when each address first reached the kernel (when `nft` returned).
/// The nft backend, noting when each address was first sent to the kernel.
pub struct Timed {
    pub inner: NftBackend,
    /// Address → (nft started, nft returned).
    pub seen: Mutex<HashMap<IpAddr, (Instant, Instant)>>,
}

impl Firewall for Timed {
    fn name(&self) -> String {
        self.inner.name()
    }

    fn apply(&self, ruleset: &Nftables<'_>) -> Result<(), FirewallError> {
        let started = Instant::now();
        self.inner.apply(ruleset)?;
        let done = Instant::now();
        let mut seen = self.seen.lock().unwrap();
        for obj in ruleset.objects.iter() {
            let Some((_, elem)) = sipwarden::firewall::render::elements_added(obj) else { continue };
            for v in elem {
                let text = match v {
                    Expression::Named(NamedExpression::Elem(el)) => match el.val.as_ref() {
                        Expression::String(s) => s.to_string(),
                        _ => continue,
                    },
                    Expression::String(s) => s.to_string(),
                    _ => continue,
                };
                if let Ok(ip) = text.parse() {
                    seen.entry(ip).or_insert((started, done));
                }
            }
        }
        Ok(())
    }

    fn list(&self) -> Result<KernelState, FirewallError> {
        self.inner.list()
    }

    fn countries_fingerprint(&self) -> Result<Option<String>, FirewallError> {
        self.inner.countries_fingerprint()
    }
}

/// Appends an attack to `log` at `rate` lines/s: each of `bans` addresses fails three
/// times, and the second failure bans it (2 within 1 h). Returns when each address's
/// banning line was written.
pub fn write_attack(
    log: std::path::PathBuf,
    bans: u64,
    rate: u64,
) -> std::thread::JoinHandle<std::io::Result<HashMap<IpAddr, Instant>>> {
    std::thread::spawn(move || {
        let mut file = std::fs::OpenOptions::new().append(true).open(&log)?;
        let mut banning_line_at = HashMap::new();
        let per_tick = (rate / 500).max(1); // every 2 ms
        let start = Instant::now();
        let mut written = 0u64;
        for round in 0..3u64 {
            for i in 0..bans {
                let ip = address(i);
                let line = format!(
                    "[{}] NOTICE[1] chan_sip.c: Registration from '<sip:100@pbx>' failed for '{ip}:5060' - Wrong password\n",
                    chrono::Local::now().format("%Y-%m-%d %H:%M:%S")
                );
                file.write_all(line.as_bytes())?;
                if round == 1 {
                    banning_line_at.insert(ip, Instant::now());
                }
                written += 1;
                if written % per_tick == 0 {
                    let due = start + Duration::from_micros(written * 1_000_000 / rate);
                    if let Some(wait) = due.checked_duration_since(Instant::now()) {
                        std::thread::sleep(wait);
                    }
                }
            }
        }
        Ok(banning_line_at)
    })
}

pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

pub fn time_to_ban(args: impl Iterator<Item = String>) -> anyhow::Result<()> {
    let args: Vec<String> = args.collect();
    let bans = flag(&args, "--bans", 1000);
    let rate = flag(&args, "--rate", 5000);
    let ns = Namespace::new()?;
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        let dir = tempfile::tempdir()?;
        let log = dir.path().join("messages");
        std::fs::write(&log, "")?;
        let store = Store::open(&dir.path().join("bench.db")).await?;
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
        let pipeline = bench_pipeline(&store, poke);
        let follower =
            ingest::follower_for(&store, log.clone(), Some(SourceKind::Messages), StartAt::End).await?;
        let stop = CancellationToken::new();
        let stopped = stop.clone();
        let tasks = [
            tokio::spawn(ingest::run(vec![follower], pipeline, Duration::from_secs(1), stopped.clone())),
            tokio::spawn(enforcer.run(Duration::from_secs(5), stopped)),
        ];
        tokio::time::sleep(Duration::from_millis(500)).await;
        let appended = write_attack(log, bans, rate).join().expect("writer thread")?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while timed.seen.lock().unwrap().len() < appended.len() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        stop.cancel();
        for t in tasks {
            t.await?;
        }
        let seen = timed.seen.lock().unwrap();
        let mut latencies: Vec<Duration> = appended
            .iter()
            .filter_map(|(ip, at)| seen.get(ip).map(|(_, done)| done.saturating_duration_since(*at)))
            .collect();
        latencies.sort();
        let mut to_nft: Vec<Duration> = appended
            .iter()
            .filter_map(|(ip, at)| seen.get(ip).map(|(start, _)| start.saturating_duration_since(*at)))
            .collect();
        to_nft.sort();
        let mut in_nft: Vec<Duration> = seen.values().map(|(s, d)| d.saturating_duration_since(*s)).collect();
        in_nft.sort();
        in_nft.dedup();
        anyhow::ensure!(!latencies.is_empty(), "no ban reached the kernel");
        println!("failure lines appended    {} at {rate}/s from {bans} addresses", appended.len() * 3);
        println!("bans in the kernel        {} of {}", latencies.len(), appended.len());
        println!("append → kernel p50       {:.1} ms", percentile(&latencies, 0.50).as_secs_f64() * 1e3);
        println!("append → kernel p99       {:.1} ms", percentile(&latencies, 0.99).as_secs_f64() * 1e3);
        println!("append → kernel max       {:.1} ms", latencies.last().unwrap().as_secs_f64() * 1e3);
        println!("  append → nft start p50  {:.1} ms", percentile(&to_nft, 0.50).as_secs_f64() * 1e3);
        println!(
            "  one nft call p50        {:.1} ms ({} calls)",
            percentile(&in_nft, 0.50).as_secs_f64() * 1e3,
            in_nft.len()
        );
        Ok(())
    })
}
