//! `sipwarden-bench`: the measurements quoted in README "Performance".
//!
//!   sipwarden-bench check-log LOG [TRUTH.tsv] [--runs N]
//!   sipwarden-bench reconcile [--bans N]            (root: uses its own network namespace)
//!   sipwarden-bench time-to-ban [--bans N] [--rate LINES_PER_S]   (root, idem)
//!   sipwarden-bench panel [--offenders N]
//!   sipwarden-bench ingest LOG
//!   sipwarden-bench serve-backlog LOG
//!   sipwarden-bench startup [--failures N] [--bans N]   (root)
//!   sipwarden-bench guesses [--attackers N] [--guesses N] [--rate PER_S]   (root)
//!   sipwarden-bench breaker [--calls N]
//!   sipwarden-bench propagation --database-url SERVER [--nodes N] [--bans N] [--rate R]   (root)
//!   sipwarden-bench countries [GEOIP]

mod breaker;
mod countries;
mod guesses;
mod ingest;
mod kernel;
mod panel;
mod shared;
mod startup;

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Instant;

use sipwarden::checklog::check_files;
use sipwarden::domain::TrustedNetworks;
use sipwarden::policy::Ladder;

/// A memory figure of this process in KiB: `VmRSS` (resident now), `VmHWM` (peak).
fn status_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.strip_prefix(field).is_some_and(|rest| rest.starts_with(':')))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    match args.next().as_deref() {
        Some("check-log") => check_log(args),
        Some("reconcile") => kernel::reconcile(args),
        Some("time-to-ban") => kernel::time_to_ban(args),
        Some("panel") => panel::offenders(args),
        Some("ingest") => ingest::backlog(args),
        Some("serve-backlog") => ingest::serve_backlog(args),
        Some("ban-storm") => ingest::ban_storm(args),
        Some("idle") => ingest::idle(args),
        Some("startup") => startup::run(args),
        Some("guesses") => guesses::guesses(args),
        Some("breaker") => breaker::breaker(args),
        Some("propagation") => shared::propagation(args),
        Some("countries") => countries::lookups(args),
        // Helpers that `guesses` runs inside its namespaces.
        Some("fake-pbx") => guesses::fake_pbx(args),
        Some("attacker") => guesses::attacker(args),
        _ => anyhow::bail!(
            "usage: sipwarden-bench check-log LOG [TRUTH] [--runs N] | reconcile [--bans N] | time-to-ban [--bans N] [--rate R] | ban-storm [--addresses N] | idle [--seconds N] | ingest LOG | serve-backlog LOG | panel | startup | guesses | breaker [--calls N] | propagation --database-url SERVER | countries [GEOIP]"
        ),
    }
}

fn check_log(mut args: impl Iterator<Item = String>) -> anyhow::Result<()> {
    let mut log = None;
    let mut truth = None;
    let mut runs = 5usize;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--runs" => runs = args.next().and_then(|n| n.parse().ok()).unwrap_or(5),
            _ if log.is_none() => log = Some(PathBuf::from(a)),
            _ => truth = Some(PathBuf::from(a)),
        }
    }
    let log = log.ok_or_else(|| anyhow::anyhow!("usage: sipwarden-bench LOG [TRUTH.tsv] [--runs N]"))?;
    let bytes = std::fs::metadata(&log)?.len();
    let mut best = f64::MAX;
    let mut report = None;
    for _ in 0..runs.max(1) {
        let start = Instant::now();
        let r = check_files(std::slice::from_ref(&log), Ladder::default(), TrustedNetworks::default())?;
        best = best.min(start.elapsed().as_secs_f64());
        report = Some(r);
    }
    let report = report.expect("at least one run");
    let lines = report.files[0].lines;
    println!("file            {}", log.display());
    println!("lines           {lines}");
    println!("bytes           {bytes}");
    println!("best of {runs}       {best:.3} s");
    println!("lines/s         {:.0}", lines as f64 / best);
    println!("MB/s            {:.0}", bytes as f64 / best / 1e6);
    println!("failures        {}", report.total_failures);
    println!("addresses       {}", report.by_ip.len());
    if let Some(rss) = status_kib("VmHWM") {
        println!("peak RSS        {:.1} MiB", rss as f64 / 1024.0);
    }
    if let Some(truth) = truth {
        let mut expected: HashMap<String, u64> = HashMap::new();
        for line in std::fs::read_to_string(&truth)?.lines().skip(1) {
            if let Some(ip) = line.split('\t').nth(1) {
                *expected.entry(ip.parse::<std::net::IpAddr>()?.to_string()).or_default() += 1;
            }
        }
        let truth_lines: u64 = expected.values().sum();
        let found: u64 =
            expected.iter().map(|(ip, n)| report.by_ip.get(ip).map_or(0, |r| r.failures.min(*n))).sum();
        let wrong: Vec<_> =
            report.by_ip.iter().filter(|(ip, r)| expected.get(*ip) != Some(&r.failures)).collect();
        println!("truth lines     {truth_lines}");
        println!("found           {found} ({:.2} %)", 100.0 * found as f64 / truth_lines as f64);
        println!("wrong addresses {}", wrong.len());
        if !wrong.is_empty() || found != truth_lines {
            anyhow::bail!(
                "disagreement with the truth, e.g. {:?}",
                wrong.first().map(|(ip, r)| (ip, r.failures))
            );
        }
    }
    Ok(())
}
