//! Live ingest through the pipeline into SQLite: a backlog caught up from the start.

use std::sync::Arc;
use std::time::Instant;

use sipwarden::asterisk::SourceKind;
use sipwarden::ingest::{self, StartAt};
use sipwarden::store::Store;
use tokio::sync::Notify;

pub fn backlog(mut args: impl Iterator<Item = String>) -> anyhow::Result<()> {
    let log = args.next().ok_or_else(|| anyhow::anyhow!("usage: sipwarden-bench ingest LOG"))?;
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        let dir = tempfile::tempdir()?;
        let store = Store::open(&dir.path().join("bench.db")).await?;
        let pipeline = super::kernel::bench_pipeline(&store, Arc::new(Notify::new()));
        let follower =
            ingest::follower_for(&store, log.clone().into(), Some(SourceKind::Messages), StartAt::Beginning)
                .await?;
        let mut followers = vec![follower];
        let lines = std::fs::read(&log)?.iter().filter(|b| **b == b'\n').count();
        let start = Instant::now();
        let failures = ingest::poll_all(&mut followers, &pipeline).await;
        let took = start.elapsed().as_secs_f64();
        println!("lines                     {lines}");
        println!("failures stored           {failures}");
        println!("caught up in              {took:.1} s");
        println!("lines/s                   {:.0}", lines as f64 / took);
        println!("failures/s                {:.0}", failures as f64 / took);
        Ok(())
    })
}

/// `serve-backlog LOG`: the real `serve` (firewall dry run) started on a log it has
/// never seen, from its beginning: time until every line is stored, and its memory.
pub fn serve_backlog(mut args: impl Iterator<Item = String>) -> anyhow::Result<()> {
    let log = args.next().ok_or_else(|| anyhow::anyhow!("usage: sipwarden-bench serve-backlog LOG"))?;
    let size = std::fs::metadata(&log)?.len() as i64;
    let lines = std::fs::read(&log)?.iter().filter(|b| **b == b'\n').count();
    let dir = tempfile::tempdir()?;
    let binary = std::env::current_exe()?.with_file_name("sipwarden");
    let start = Instant::now();
    let mut serve = std::process::Command::new(binary)
        .args(["serve", "--firewall", "dry-run", "--listen", "127.0.0.1:0", "--start-at", "beginning"])
        .arg("--data-dir")
        .arg(dir.path())
        .arg("--log")
        .arg(&log)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    let rt = tokio::runtime::Runtime::new()?;
    let caught_up = rt.block_on(async {
        let db = dir.path().join("sipwarden.db");
        while !db.exists() {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        let store = Store::open(&db).await?;
        loop {
            let mut conn = store.acquire().await?;
            let offset = sipwarden::store::sources::get(&mut conn, &log).await?.map_or(0, |s| s.read_offset);
            if offset >= size {
                return anyhow::Ok(start.elapsed());
            }
            anyhow::ensure!(start.elapsed().as_secs() < 600, "not caught up after 10 minutes");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })?;
    let status = std::fs::read_to_string(format!("/proc/{}/status", serve.id()))?;
    let peak = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap_or("").to_string();
    let _ = serve.kill();
    let _ = serve.wait();
    let took = caught_up.as_secs_f64();
    println!("lines                     {lines}");
    println!("serve caught up in        {took:.2} s (from its start, database created and migrated)");
    println!("lines/s                   {:.0}", lines as f64 / took);
    println!("serve peak memory         {peak}");
    Ok(())
}

/// `ban-storm [--addresses N]`: a backlog of N addresses failing twice each (the
/// first rung: every address is banned), read from its start: bans decided per second.
pub fn ban_storm(mut args: impl Iterator<Item = String>) -> anyhow::Result<()> {
    let mut addresses: u32 = 20_000;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--addresses" => addresses = args.next().and_then(|n| n.parse().ok()).unwrap_or(addresses),
            other => {
                anyhow::bail!("unknown argument {other}; usage: sipwarden-bench ban-storm [--addresses N]")
            }
        }
    }
    let dir = tempfile::tempdir()?;
    let log = dir.path().join("full");
    let mut text = String::with_capacity(addresses as usize * 2 * 180);
    // Each address twice, a minute apart, as a scan of many sources leaves it; dates
    // are today's so the ladder's windows hold them.
    let base = chrono::Local::now() - chrono::Duration::minutes(30);
    for round in 0..2 {
        for i in 0..addresses {
            let at = base + chrono::Duration::minutes(round) + chrono::Duration::milliseconds(i64::from(i));
            let ip = format!("10.{}.{}.{}", 100 + i / 65_536, (i / 256) % 256, i % 256);
            text.push_str(&format!(
                "[{}] NOTICE[1] res_pjsip/pjsip_distributor.c: Request 'REGISTER' from '<sip:100@x>' failed for '{ip}:5060' (callid: {round}-{i}) - Failed to authenticate\n",
                at.format("%Y-%m-%d %H:%M:%S%.3f")
            ));
        }
    }
    std::fs::write(&log, text)?;
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        let store = Store::open(&dir.path().join("bench.db")).await?;
        let pipeline = super::kernel::bench_pipeline(&store, Arc::new(Notify::new()));
        let follower =
            ingest::follower_for(&store, log.clone(), Some(SourceKind::Messages), StartAt::Beginning).await?;
        let mut followers = vec![follower];
        let start = Instant::now();
        ingest::poll_all(&mut followers, &pipeline).await;
        let took = start.elapsed().as_secs_f64();
        let mut conn = store.acquire().await?;
        let bans = sipwarden::store::bans::active(
            &mut conn,
            sipwarden::clock::Clock::now(&sipwarden::clock::SystemClock),
        )
        .await?
        .len();
        println!("addresses                 {addresses}");
        println!("bans decided              {bans}");
        println!("backlog read in           {took:.2} s");
        println!("bans/s                    {:.0}", bans as f64 / took);
        anyhow::ensure!(bans == addresses as usize, "expected {addresses} bans, found {bans}");
        Ok(())
    })
}

/// `idle [--seconds N]`: the real `serve` (firewall dry run) following a quiet log
/// while another program reads the log's directory: CPU share over N seconds (20),
/// resident memory, and how long SIGTERM takes to stop it.
pub fn idle(mut args: impl Iterator<Item = String>) -> anyhow::Result<()> {
    let mut seconds = 20u64;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--seconds" => seconds = args.next().and_then(|n| n.parse().ok()).unwrap_or(seconds),
            other => anyhow::bail!("unknown argument {other}; usage: sipwarden-bench idle [--seconds N]"),
        }
    }
    let dir = tempfile::tempdir()?;
    let log = dir.path().join("messages");
    let line = "[2026-11-27 09:00:00] NOTICE[1] chan_sip.c: Registration from '<sip:1@x>' failed for '192.0.2.7:5060' - Wrong password\n";
    std::fs::write(&log, line.repeat(200))?;
    let binary = std::env::current_exe()?.with_file_name("sipwarden");
    let mut serve = std::process::Command::new(binary)
        .args(["serve", "--firewall", "dry-run", "--listen", "127.0.0.1:0", "--trusted", "192.0.2.0/24"])
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .arg("--log")
        .arg(&log)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    std::thread::sleep(std::time::Duration::from_secs(3));
    let ticks = |pid: u32| -> anyhow::Result<u64> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
        let fields: Vec<&str> = stat[stat.rfind(')').unwrap_or(0) + 2..].split(' ').collect();
        Ok(fields[11].parse::<u64>()? + fields[12].parse::<u64>()?)
    };
    let hz = std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse::<f64>().ok())
        .unwrap_or(100.0);
    let before = ticks(serve.id())?;
    let start = Instant::now();
    while start.elapsed().as_secs() < seconds {
        let _ = std::fs::read(&log)?;
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let cpu = (ticks(serve.id())? - before) as f64 / hz / start.elapsed().as_secs_f64();
    let status = std::fs::read_to_string(format!("/proc/{}/status", serve.id()))?;
    let rss = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap_or("").to_string();
    let sent = Instant::now();
    std::process::Command::new("kill").args(["-TERM", &serve.id().to_string()]).status()?;
    serve.wait()?;
    println!("idle CPU                  {:.2} % of a core over {seconds} s", cpu * 100.0);
    println!("resident memory           {}", rss.trim_start_matches("VmRSS:").trim());
    println!("SIGTERM to exit           {} ms", sent.elapsed().as_millis());
    Ok(())
}
