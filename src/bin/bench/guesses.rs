//! "Guesses an attacker gets": attackers in one network namespace send REGISTERs at
//! svcrack's pace to a stand-in PBX in another, which writes Asterisk's failure line
//! for every one it receives; sipwarden follows that log and bans in the PBX's
//! namespace. The guesses that reached the PBX are the log lines per address.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::UdpSocket;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sipwarden::asterisk::SourceKind;
use sipwarden::clock::SystemClock;
use sipwarden::domain::TrustedNetworks;
use sipwarden::enforcer::Enforcer;
use sipwarden::firewall::NftBackend;
use sipwarden::ingest::{self, StartAt};
use sipwarden::store::Store;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::kernel::flag;

const PBX: &str = "10.78.0.1";

fn ip(args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new("ip").args(args).output()?;
    anyhow::ensure!(out.status.success(), "ip {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    Ok(())
}

/// Two namespaces joined by a veth pair: the PBX at 10.78.0.1, attackers at 10.78.1.x.
struct Wire {
    pbx: String,
    outside: String,
}

impl Wire {
    fn new(attackers: u64) -> anyhow::Result<Wire> {
        let base = format!("swb-{}", std::process::id());
        let wire = Wire { pbx: format!("{base}-p"), outside: format!("{base}-o") };
        ip(&["netns", "add", &wire.pbx])?;
        ip(&["netns", "add", &wire.outside])?;
        ip(&[
            "-n",
            &wire.pbx,
            "link",
            "add",
            "va",
            "type",
            "veth",
            "peer",
            "name",
            "vb",
            "netns",
            &wire.outside,
        ])?;
        ip(&["-n", &wire.pbx, "addr", "add", &format!("{PBX}/16"), "dev", "va"])?;
        for i in 1..=attackers {
            ip(&["-n", &wire.outside, "addr", "add", &format!("10.78.1.{i}/16"), "dev", "vb"])?;
        }
        for (ns, dev) in [(&wire.pbx, "va"), (&wire.outside, "vb")] {
            ip(&["-n", ns, "link", "set", dev, "up"])?;
            ip(&["-n", ns, "link", "set", "lo", "up"])?;
        }
        Ok(wire)
    }

    /// This program again, inside namespace `ns`.
    fn bench_in(ns: &str, args: &[String]) -> anyhow::Result<Child> {
        Ok(Command::new("ip")
            .args(["netns", "exec", ns])
            .arg(std::env::current_exe()?)
            .args(args)
            .stdout(Stdio::null())
            .spawn()?)
    }
}

impl Drop for Wire {
    fn drop(&mut self) {
        for ns in [&self.pbx, &self.outside] {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
    }
}

/// `fake-pbx LOG`: one chan_sip wrong-password line per REGISTER received.
pub fn fake_pbx(mut args: impl Iterator<Item = String>) -> anyhow::Result<()> {
    let log = args.next().ok_or_else(|| anyhow::anyhow!("fake-pbx LOG"))?;
    let socket = UdpSocket::bind((PBX, 5060))?;
    let mut file = std::fs::OpenOptions::new().append(true).open(log)?;
    let mut buf = [0u8; 1500];
    loop {
        let (_, from) = socket.recv_from(&mut buf)?;
        let line = format!(
            "[{}] NOTICE[1] chan_sip.c: Registration from '<sip:100@pbx>' failed for '{}:{}' - Wrong password\n",
            chrono::Local::now().format("%Y-%m-%d %H:%M:%S"),
            from.ip(),
            from.port()
        );
        file.write_all(line.as_bytes())?;
    }
}

/// `attacker FROM COUNT RATE`: COUNT REGISTERs from address FROM, RATE a second.
pub fn attacker(args: impl Iterator<Item = String>) -> anyhow::Result<()> {
    let args: Vec<String> = args.collect();
    let [from, count, rate] = args.as_slice() else { anyhow::bail!("attacker FROM COUNT RATE") };
    let (count, rate): (u64, u64) = (count.parse()?, rate.parse()?);
    let socket = UdpSocket::bind((from.as_str(), 0))?;
    let start = Instant::now();
    for i in 0..count {
        let due = start + Duration::from_micros(i * 1_000_000 / rate);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let msg = format!("REGISTER sip:{PBX} SIP/2.0\r\nCSeq: {i} REGISTER\r\n\r\n");
        socket.send_to(msg.as_bytes(), (PBX, 5060))?;
    }
    Ok(())
}

pub fn guesses(args: impl Iterator<Item = String>) -> anyhow::Result<()> {
    let args: Vec<String> = args.collect();
    let attackers = flag(&args, "--attackers", 20).clamp(1, 250);
    let count = flag(&args, "--guesses", 50);
    let rate = flag(&args, "--rate", 25);
    let wire = Wire::new(attackers)?;
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        let dir = tempfile::tempdir()?;
        let log = dir.path().join("messages");
        std::fs::write(&log, "")?;
        let store = Store::open(&dir.path().join("bench.db")).await?;
        let poke = Arc::new(Notify::new());
        let nft = NftBackend::new(["ip", "netns", "exec", &wire.pbx].iter().map(|s| s.to_string()).collect());
        let enforcer = Arc::new(Enforcer::new(
            store.clone(),
            Arc::new(nft),
            Arc::new(SystemClock),
            TrustedNetworks::default(),
            true,
            poke.clone(),
        ));
        let pipeline = super::kernel::bench_pipeline(&store, poke);
        let needed = pipeline.ladder.rungs[0].failures;
        let follower =
            ingest::follower_for(&store, log.clone(), Some(SourceKind::Messages), StartAt::End).await?;
        let stop = CancellationToken::new();
        let stopped = stop.clone();
        let tasks = [
            tokio::spawn(ingest::run(vec![follower], pipeline, Duration::from_secs(1), stopped.clone())),
            tokio::spawn(enforcer.run(Duration::from_secs(5), stopped)),
        ];
        let mut pbx = Wire::bench_in(&wire.pbx, &["fake-pbx".into(), log.display().to_string()])?;
        tokio::time::sleep(Duration::from_millis(700)).await;
        let mut sent = Vec::new();
        for i in 1..=attackers {
            let args = ["attacker".into(), format!("10.78.1.{i}"), count.to_string(), rate.to_string()];
            sent.push(Wire::bench_in(&wire.outside, &args)?);
        }
        for mut a in sent {
            a.wait()?;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        pbx.kill()?;
        pbx.wait()?;
        stop.cancel();
        for t in tasks {
            t.await?;
        }
        let mut reached: BTreeMap<String, u64> = BTreeMap::new();
        for line in std::fs::read_to_string(&log)?.lines() {
            if let Some(from) = line.split("failed for '").nth(1).and_then(|r| r.split(':').next()) {
                *reached.entry(from.to_string()).or_insert(0) += 1;
            }
        }
        let mut spread: BTreeMap<u64, u64> = BTreeMap::new();
        for i in 1..=attackers {
            *spread.entry(reached.get(&format!("10.78.1.{i}")).copied().unwrap_or(0)).or_insert(0) += 1;
        }
        println!("attackers                 {attackers}, each sending {count} guesses at {rate}/s");
        println!("ban rung                  {needed} failures");
        for (guesses, n) in &spread {
            println!("guesses that reached the PBX: {guesses:>3} for {n} attacker(s)");
        }
        Ok(())
    })
}
