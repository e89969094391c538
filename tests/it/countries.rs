//! Countries from the IPFire Location database as Debian ships it for Tor
//! (`tor-geoipdb`: `/usr/share/tor/geoip` and `geoip6`; `tests/run-all.sh` unpacks the
//! package). The expected countries are read from the files' own lines here, so the
//! test holds whatever release of the data is installed.

use std::path::PathBuf;
use std::process::Command;

const INSTALLED: &str = "/usr/share/tor/geoip";

pub(crate) fn debian_geoip() -> Option<PathBuf> {
    let unpacked = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/tor-geoipdb/usr/share/tor/geoip");
    std::env::var_os("SIPWARDEN_TOR_GEOIP")
        .map(PathBuf::from)
        .into_iter()
        .chain([unpacked, PathBuf::from(INSTALLED)])
        .find(|p| p.is_file())
}

/// The start address and country of the first range of `country` in a geoip text
/// (IPv4 bounds are integers, IPv6 bounds addresses).
fn first_range_of(text: &str, country: &str) -> Option<String> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let mut f = l.split(',');
        let (start, _end, cc) = (f.next()?, f.next()?, f.next()?);
        (cc.trim() == country).then(|| match start.parse::<u32>() {
            Ok(n) => std::net::Ipv4Addr::from(n).to_string(),
            Err(_) => start.to_string(),
        })
    })
}

#[test]
fn check_log_names_each_attackers_country_from_debians_database() {
    let Some(geoip) = debian_geoip() else {
        crate::common::runnable("the country test", &[("tor-geoipdb (tests/run-all.sh unpacks it)", false)]);
        return;
    };
    let v4 = std::fs::read_to_string(&geoip).unwrap();
    let v6 = std::fs::read_to_string(geoip.with_file_name("geoip6")).unwrap();
    let expected: Vec<(String, &str)> = vec![
        (first_range_of(&v4, "DE").unwrap(), "DE"),
        (first_range_of(&v4, "BR").unwrap(), "BR"),
        (first_range_of(&v6, "US").unwrap(), "US"),
        // Private space is in no country.
        ("10.1.2.3".to_string(), "—"),
    ];
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("messages");
    let lines: String = expected
        .iter()
        .map(|(ip, _)| {
            crate::common::sip_failure_dated(
                &if ip.contains(':') { format!("[{ip}]") } else { ip.clone() },
                "1001",
                "2026-06-01 10:00:00",
            )
        })
        .collect();
    std::fs::write(&log, lines).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_sipwarden"))
        .args(["check-log", "--format", "json", "--geoip"])
        .arg(&geoip)
        .arg(&log)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for (ip, country) in &expected {
        let shown = &report["by_ip"][ip]["country"];
        assert_eq!(shown, country, "{ip}: {}", report["by_ip"]);
    }

    // Without a database, no country field at all.
    let out = Command::new(env!("CARGO_BIN_EXE_sipwarden"))
        .args(["check-log", "--format", "json"])
        .arg(&log)
        .output()
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(report["by_ip"][&expected[0].0].get("country").is_none());
}
