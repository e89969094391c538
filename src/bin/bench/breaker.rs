//! `sipwarden-bench breaker [--calls N]`: a cracked extension's burst of calls over the
//! manager interface (a scripted server on loopback playing Asterisk's protocol): how
//! many calls start before the stop at 1, 3 and 10 calls/s, and, once the extension is
//! locked, the time from a call's Newchannel event to the Hangup action for it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sipwarden::ami::scripted::{SECRET, Script, ScriptedAmi};
use sipwarden::ami::{self, AmiControl, AmiHealth, AmiSettings};
use sipwarden::clock::SystemClock;
use sipwarden::store::Store;
use sipwarden::watch::Watch;
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

use crate::kernel::{bench_pipeline, flag};

fn new_channel(seq: u32, number: &str) -> String {
    format!(
        "Event: Newchannel\r\nPrivilege: call,all\r\nChannel: PJSIP/1002-{seq:08x}\r\nChannelState: 4\r\nChannelStateDesc: Ring\r\nCallerIDNum: 1002\r\nCallerIDName: <unknown>\r\nConnectedLineNum: <unknown>\r\nConnectedLineName: <unknown>\r\nLanguage: en\r\nAccountCode: \r\nContext: from-internal\r\nExten: {number}\r\nPriority: 1\r\nUniqueid: 1796161521.{seq}\r\nLinkedid: 1796161521.{seq}\r\n\r\n"
    )
}

/// sipwarden as `serve` runs it with `[ami]` and no log: a fresh database, the link,
/// the pipeline it feeds and the watch acting over it.
async fn sipwarden_on(address: &str, stop: &CancellationToken) -> anyhow::Result<tempfile::TempDir> {
    let dir = tempfile::tempdir()?;
    let store = Store::open(&dir.path().join("sipwarden.db")).await?;
    let health = AmiHealth::default();
    let (requests_tx, requests) = mpsc::channel(64);
    let mut pipeline = bench_pipeline(&store, Arc::new(Notify::new()));
    pipeline.watch = Some(Arc::new(Watch::new(
        store.clone(),
        Arc::new(SystemClock),
        Arc::new(AmiControl { requests: requests_tx, health: health.clone() }),
        pipeline.bans_changed.clone(),
    )));
    let settings =
        AmiSettings { address: address.to_owned(), username: "sipwarden".into(), secret: SECRET.into() };
    let (out, delivered) = mpsc::channel(ami::QUEUE);
    tokio::spawn(ami::run(settings, health.clone(), Arc::new(SystemClock), out, requests, stop.clone()));
    let stop = stop.clone();
    tokio::spawn(async move {
        sipwarden::ingest::manager::feed(delivered, &pipeline, "bench".into(), health, stop).await
    });
    Ok(dir)
}

/// Calls that had started when the first Hangup came, at `rate` calls/s to `number`, and
/// the time from the call that tripped the breaker to that Hangup (ms).
async fn calls_before_stop(rate: u32, number: &str) -> anyhow::Result<(usize, f64)> {
    let every = Duration::from_secs_f64(1.0 / f64::from(rate));
    let events = (0..60).map(|i| (every, new_channel(i, number))).collect();
    let server =
        ScriptedAmi::start(vec![Script { events, drop_after: false, trickle: None, listing: Vec::new() }])
            .await?;
    let stop = CancellationToken::new();
    let _dir = sipwarden_on(&server.address, &stop).await?;
    let started = Instant::now();
    while server.received.actions("Hangup").is_empty() {
        anyhow::ensure!(started.elapsed() < Duration::from_secs(90), "never stopped");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let stopped_at = server.received.actions("Hangup")[0].0;
    let sent = server.sent.lock().unwrap_or_else(|p| p.into_inner()).clone();
    stop.cancel();
    let before: Vec<Instant> = sent.iter().map(|(at, _)| *at).filter(|at| *at < stopped_at).collect();
    let tripped = before.last().copied().ok_or_else(|| anyhow::anyhow!("stopped before any call"))?;
    Ok((before.len(), (stopped_at - tripped).as_secs_f64() * 1000.0))
}

/// Newchannel → Hangup for each call of a locked extension, in milliseconds.
async fn refusal_latencies(calls: u32) -> anyhow::Result<Vec<f64>> {
    // Three international calls lock the extension; the rest come at 50 calls/s.
    let mut events: Vec<(Duration, String)> =
        (0..3).map(|i| (Duration::from_millis(100), new_channel(i, "00882232332113"))).collect();
    events.push((Duration::from_secs(1), new_channel(3, "5551234")));
    events.extend((4..calls + 4).map(|i| (Duration::from_millis(20), new_channel(i, "5551234"))));
    let server =
        ScriptedAmi::start(vec![Script { events, drop_after: false, trickle: None, listing: Vec::new() }])
            .await?;
    let stop = CancellationToken::new();
    let _dir = sipwarden_on(&server.address, &stop).await?;
    let started = Instant::now();
    let last = format!("PJSIP/1002-{:08x}", calls + 3);
    while !server.received.actions("Hangup").iter().any(|(_, a)| a.contains(&last)) {
        anyhow::ensure!(started.elapsed() < Duration::from_secs(120), "the last call was never hung up");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.cancel();
    let sent = server.sent.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let hangups = server.received.actions("Hangup");
    let mut latencies = Vec::new();
    for i in 4..calls + 4 {
        let channel = format!("PJSIP/1002-{i:08x}");
        let at_sent =
            sent.iter().find(|(_, b)| b.contains(&format!("Channel: {channel}\r\n"))).map(|(t, _)| *t);
        let at_hangup =
            hangups.iter().find(|(_, a)| a.contains(&format!("Channel: {channel}\r\n"))).map(|(t, _)| *t);
        if let (Some(s), Some(h)) = (at_sent, at_hangup) {
            latencies.push((h - s).as_secs_f64() * 1000.0);
        }
    }
    Ok(latencies)
}

pub fn breaker(args: impl Iterator<Item = String>) -> anyhow::Result<()> {
    let args: Vec<String> = args.collect();
    let calls = flag(&args, "--calls", 500) as u32;
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(async {
        println!("calls started before the stop (default thresholds; each call lasts past the stop)");
        for rate in [1, 3, 10] {
            let (abroad, abroad_ms) = calls_before_stop(rate, "00441664119743").await?;
            let (home, home_ms) = calls_before_stop(rate, "5551234").await?;
            println!(
                "  {rate:>2} calls/s   international {abroad} (Hangup {abroad_ms:.2} ms after the last)   national {home} ({home_ms:.2} ms)"
            );
        }
        let mut ms = refusal_latencies(calls).await?;
        anyhow::ensure!(ms.len() as u32 == calls, "{} of {calls} calls hung up", ms.len());
        ms.sort_by(f64::total_cmp);
        let at = |q: f64| ms[((ms.len() as f64 * q).ceil() as usize).clamp(1, ms.len()) - 1];
        println!("Newchannel -> Hangup for a locked extension's call ({calls} calls at 50/s)");
        println!("  p50 {:.2} ms   p99 {:.2} ms   max {:.2} ms", at(0.5), at(0.99), at(1.0));
        Ok(())
    })
}
