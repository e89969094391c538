//! The shared corpus (real Asterisk 20 under a real SIPVicious attack) must
//! reproduce its wire-counted truth, offline and through the live pipeline.

use std::collections::BTreeMap;
use std::process::Command;

use sipwarden::asterisk::SourceKind;
use sipwarden::checklog::check_files;
use sipwarden::domain::TrustedNetworks;
use sipwarden::ingest::StartAt;
use sipwarden::policy::Ladder;

use crate::common::{TestApp, fixture};

/// TRUTH.md: failure lines per source address, in each file and in both together.
fn truth() -> BTreeMap<String, u64> {
    [("127.0.0.13".to_string(), 49), ("127.0.0.15".to_string(), 26)].into()
}

fn offline(files: &[&str]) -> BTreeMap<String, u64> {
    let paths: Vec<_> = files.iter().map(|f| fixture(&format!("corpus/{f}"))).collect();
    let report = check_files(&paths, Ladder::default(), TrustedNetworks::default()).unwrap();
    report.by_ip.into_iter().map(|(ip, r)| (ip, r.failures)).collect()
}

#[test]
fn check_log_matches_truth_per_file_and_together() {
    assert_eq!(offline(&["messages.log"]), truth());
    assert_eq!(offline(&["security.log"]), truth());
    assert_eq!(offline(&["messages.log", "security.log"]), truth());
}

#[test]
fn check_log_binary_prints_json_by_ip() {
    let out = Command::new(env!("CARGO_BIN_EXE_sipwarden"))
        .args(["check-log", "--format", "json"])
        .arg(fixture("corpus/messages.log"))
        .arg(fixture("corpus/security.log"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["by_ip"]["127.0.0.13"]["failures"], 49);
    assert_eq!(json["by_ip"]["127.0.0.15"]["failures"], 26);
    assert_eq!(json["by_ip"].as_object().unwrap().len(), 2);
    // Loopback is always trusted: recorded, never banned.
    assert_eq!(json["by_ip"]["127.0.0.13"]["verdict"], "trusted");
}

/// A generated log big enough to be read in pieces by both cores: every failure line
/// the generator labelled, counted once, against the right address.
#[test]
fn check_log_of_a_big_log_read_in_pieces_matches_its_truth() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("full");
    let generated = Command::new("python3")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/bench_gen_asterisk_log.py"))
        .args(["--lines", "150000", "--seed", "7", "--out"])
        .arg(&log)
        .output()
        .unwrap();
    assert!(generated.status.success(), "{}", String::from_utf8_lossy(&generated.stderr));
    assert!(std::fs::metadata(&log).unwrap().len() > 20 << 20, "big enough to be cut in pieces");
    let mut truth: BTreeMap<String, u64> = BTreeMap::new();
    let rows = std::fs::read_to_string(dir.path().join("full.truth.tsv")).unwrap();
    for row in rows.lines().skip(1) {
        let ip: std::net::IpAddr = row.split('\t').nth(1).unwrap().parse().unwrap();
        *truth.entry(ip.to_string()).or_default() += 1;
    }
    let out = Command::new(env!("CARGO_BIN_EXE_sipwarden"))
        .args(["check-log", "--format", "json"])
        .arg(&log)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let found: BTreeMap<String, u64> = json["by_ip"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(ip, r)| (ip.clone(), r["failures"].as_u64().unwrap()))
        .collect();
    assert_eq!(truth.values().sum::<u64>(), 15_000);
    assert_eq!(found, truth);
    assert_eq!(json["files"][0]["lines"], 150_000);
}

#[test]
fn check_log_text_output_and_missing_file_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_sipwarden"))
        .arg("check-log")
        .arg(fixture("corpus/messages.log"))
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("127.0.0.13") && text.contains("49"), "{text}");
    let out = Command::new(env!("CARGO_BIN_EXE_sipwarden"))
        .args(["check-log", "/nonexistent/messages"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/messages"));
}

async fn live(files: &[(&str, SourceKind)]) -> BTreeMap<String, u64> {
    live_from("corpus", files).await
}

async fn live_from(dir: &str, files: &[(&str, SourceKind)]) -> BTreeMap<String, u64> {
    let security = files.iter().any(|(_, k)| *k == SourceKind::Security);
    let mut app = TestApp::new(TrustedNetworks::default(), security).await;
    for (name, kind) in files {
        // Copy so the follower sees a log of its own, as on a PBX.
        let path = app.path(name);
        std::fs::copy(fixture(&format!("{dir}/{name}")), &path).unwrap();
        app.follow(&path, Some(*kind), StartAt::Beginning).await;
    }
    app.poll().await;
    app.counts().await.into_iter().map(|(ip, n)| (ip, n as u64)).collect()
}

#[tokio::test]
async fn live_pipeline_stores_truth_per_file_and_together() {
    assert_eq!(live(&[("messages.log", SourceKind::Messages)]).await, truth());
    assert_eq!(live(&[("security.log", SourceKind::Security)]).await, truth());
    assert_eq!(
        live(&[("messages.log", SourceKind::Messages), ("security.log", SourceKind::Security)]).await,
        truth()
    );
}

fn office_day_truth() -> BTreeMap<String, u64> {
    [("10.98.0.66".to_string(), 26), ("10.98.0.77".to_string(), 16), ("10.98.0.20".to_string(), 1)].into()
}

/// The office-day recording (real Asterisk 20.20.1: office phones, a typo, svwar, svcrack
/// cracking 1002 with one reused Call-ID, an AMI guesser, chan_sip 2001 cracked), counted
/// on the wire: every guess counts once, from either log and in the live pipeline.
#[tokio::test]
async fn the_office_day_recording_stores_each_attempt_once() {
    let (sec, msg) = (("security.log", SourceKind::Security), ("messages.log", SourceKind::Messages));
    assert_eq!(live_from("office-day", &[sec]).await, office_day_truth());
    assert_eq!(live_from("office-day", &[msg]).await, office_day_truth());
    assert_eq!(live_from("office-day", &[sec, msg]).await, office_day_truth());
}

#[test]
fn the_office_day_recording_counts_each_attempt_once() {
    let count = |files: &[&str]| -> BTreeMap<String, u64> {
        let paths: Vec<_> = files.iter().map(|f| fixture(&format!("office-day/{f}"))).collect();
        let report = check_files(&paths, Ladder::default(), TrustedNetworks::default()).unwrap();
        report.by_ip.into_iter().map(|(ip, r)| (ip, r.failures)).collect()
    };
    let truth = office_day_truth();
    assert_eq!(count(&["security.log"]), truth);
    assert_eq!(count(&["messages.log"]), truth);
    assert_eq!(count(&["security.log", "messages.log"]), truth);
}
