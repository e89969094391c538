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

/// `tests/fixtures/geo/make.py` made these from one slice of Debian's files.
fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/geo").join(name)
}

#[test]
fn a_maxmind_database_gives_the_countries_tor_s_files_give() {
    let tor = sipwarden::geo::load(&fixture("slice.geoip")).unwrap();
    let mmdb = sipwarden::geo::load(&fixture("slice.mmdb")).unwrap();
    assert_eq!(mmdb.unreadable, 0);
    for cc in ["DE", "FR", "CN", "US", "GB", "BR"] {
        let country = sipwarden::geo::Country::parse(cc).unwrap();
        let v4 = tor.v4.merged(|c| c == country);
        assert!(!v4.is_empty(), "{cc} is in the slice");
        assert_eq!(mmdb.v4.merged(|c| c == country), v4, "{cc} IPv4");
        assert_eq!(mmdb.v6.merged(|c| c == country), tor.v6.merged(|c| c == country), "{cc} IPv6");
        for (start, end) in v4 {
            for ip in [start, end, start + (end - start) / 2] {
                let ip = std::net::IpAddr::V4(ip.into());
                assert_eq!(mmdb.lookup(ip), Some(country), "{ip}");
            }
        }
    }
    // What the slice does not hold is in no country, as with Tor's files.
    for ip in ["10.1.2.3", "127.0.0.1", "fd00::1", "0.0.0.1"] {
        assert_eq!(mmdb.lookup(ip.parse().unwrap()), None, "{ip}");
    }
}

#[test]
fn check_log_reads_a_maxmind_database_and_a_broken_one_is_refused_with_its_name() {
    let slice = std::fs::read_to_string(fixture("slice.geoip")).unwrap();
    let german = first_range_of(&slice, "DE").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("messages");
    std::fs::write(&log, crate::common::sip_failure_dated(&german, "1001", "2026-06-01 10:00:00")).unwrap();
    let check = |db: &std::path::Path| {
        Command::new(env!("CARGO_BIN_EXE_sipwarden"))
            .args(["check-log", "--format", "json", "--geoip"])
            .arg(db)
            .arg(&log)
            .output()
            .unwrap()
    };
    let out = check(&fixture("slice.mmdb"));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["by_ip"][&german]["country"], "DE", "{}", report["by_ip"]);

    // Cut short (a download interrupted): refused, naming the file and the format.
    let bytes = std::fs::read(fixture("slice.mmdb")).unwrap();
    let cut = dir.path().join("dbip-country-lite.mmdb");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let out = check(&cut);
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("cannot read the MaxMind-format database") && said.contains("dbip-country-lite.mmdb"),
        "{said}"
    );

    // A database in use stays in use while its replacement cannot be read.
    let live = dir.path().join("countries.mmdb");
    std::fs::write(&live, &bytes).unwrap();
    let geo = sipwarden::geo::Geo::open(&live).unwrap();
    assert_eq!(geo.shown(&german), "DE");
    std::fs::write(&live, &bytes[..bytes.len() / 2]).unwrap();
    assert!(geo.reload_if_changed().is_err());
    assert_eq!(geo.shown(&german), "DE");
    std::fs::write(&live, &bytes).unwrap();
    assert!(geo.reload_if_changed().unwrap(), "the whole file is read again");
}

/// A successful registration of 2001 from `ip`, as the security log writes it.
fn registered(ip: &str, minute: u32, session: u32) -> String {
    format!(
        "[Dec  1 09:{minute:02}:00] SECURITY[1] res_security_log.c: SecurityEvent=\"SuccessfulAuth\",EventTV=\"2026-12-01T09:{minute:02}:00.000+0000\",Severity=\"Informational\",Service=\"PJSIP\",EventVersion=\"1\",AccountID=\"2001\",SessionID=\"0x{session:x}\",LocalAddress=\"IPV4/UDP/10.0.0.1/5060\",RemoteAddress=\"IPV4/UDP/{ip}/5060\",UsingPassword=\"1\"\n"
    )
}

#[test]
fn check_log_reports_a_login_from_a_country_new_to_the_extension() {
    // Two German addresses and a Brazilian one from the fixture's slice.
    let slice = std::fs::read_to_string(fixture("slice.geoip")).unwrap();
    let nth = |cc: &str, n: usize| {
        let line = slice.lines().filter(|l| l.ends_with(cc)).nth(n).unwrap();
        std::net::Ipv4Addr::from(line.split(',').next().unwrap().parse::<u32>().unwrap()).to_string()
    };
    let (home, office, abroad) = (nth("DE", 0), nth("DE", 1), nth("BR", 0));
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("security");
    let text = registered(&home, 0, 1) + &registered(&office, 10, 2) + &registered(&abroad, 20, 3);
    std::fs::write(&log, text).unwrap();
    let incidents = |geoip: Option<PathBuf>| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_sipwarden"));
        cmd.args(["check-log", "--format", "json"]);
        if let Some(db) = geoip {
            cmd.arg("--geoip").arg(db);
        }
        let out = cmd.arg(&log).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        report["incidents"].as_array().cloned().unwrap_or_default()
    };
    let reason = |found: &[serde_json::Value], ip: &str| {
        let incident = found.iter().find(|i| i["address"] == ip).unwrap_or_else(|| panic!("{ip}: {found:?}"));
        assert_eq!(incident["severity"], "warning");
        incident["reason"].as_str().unwrap().to_string()
    };
    let found = incidents(Some(fixture("slice.mmdb")));
    assert_eq!(found.len(), 2, "{found:?}");
    assert_eq!(reason(&found, &office), "first login to this account from this address");
    assert_eq!(
        reason(&found, &abroad),
        "first login to this account from BR, a country it never logged in from"
    );
    // Without a database, the country goes unnoticed.
    let found = incidents(None);
    assert_eq!(reason(&found, &abroad), "first login to this account from this address");
}
