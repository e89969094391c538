//! The admin commands through the real binary, on a dry-run firewall.

use std::process::{Command, Output};

fn sipwarden(dir: &std::path::Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sipwarden"))
        .arg("--data-dir")
        .arg(dir)
        .args(["--firewall", "dry-run", "--trusted", "192.168.1.0/24"])
        .args(args)
        .env_remove("SIPWARDEN_CONFIG")
        .output()
        .unwrap()
}

fn status(dir: &std::path::Path) -> serde_json::Value {
    let out = sipwarden(dir, &["status", "--format", "json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn ban_status_unban_and_protection_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let out = sipwarden(dir.path(), &["ban", "203.0.113.5", "--for", "10m", "--reason", "seen in pcap"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && text.contains("203.0.113.5 banned for 10m"), "{text}");
    sipwarden(dir.path(), &["ban", "2001:db8::5", "--until-released"]);
    let s = status(dir.path());
    assert_eq!((s["bans_timed"].as_i64(), s["bans_until_released"].as_i64()), (Some(1), Some(1)));
    assert_eq!(s["protection"], true);

    let out = sipwarden(dir.path(), &["unban", "203.0.113.5"]);
    assert!(out.status.success());
    assert_eq!(status(dir.path())["bans_timed"], 0);
    let out = sipwarden(dir.path(), &["unban", "203.0.113.5"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("203.0.113.5 has no active ban"));

    for refused in ["192.168.1.7", "127.0.0.1"] {
        let out = sipwarden(dir.path(), &["ban", refused]);
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains("trusted"), "{refused}");
    }
    let out = sipwarden(dir.path(), &["ban", "203.0.113.9", "--for", "soon"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a duration"));

    assert!(sipwarden(dir.path(), &["protection", "off"]).status.success());
    assert_eq!(status(dir.path())["protection"], false);
    let text = String::from_utf8(sipwarden(dir.path(), &["status"]).stdout).unwrap();
    assert!(text.contains("OFF (monitor mode)") && text.contains("1 until released"), "{text}");
}
