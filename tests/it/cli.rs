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

/// The database `serve` creates on its first start.
fn served_once(dir: &std::path::Path) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        sipwarden::store::Store::open(&dir.join("sipwarden.db")).await.unwrap().close().await
    });
}

#[test]
fn admin_commands_never_create_a_database_of_their_own() {
    let elsewhere = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_sipwarden"))
        .current_dir(elsewhere.path())
        .args(["protection", "on"])
        .env_remove("SIPWARDEN_CONFIG")
        .env_remove("SIPWARDEN_DATA_DIR")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no sipwarden database") && err.contains("--config"), "{err}");
    assert_eq!(std::fs::read_dir(elsewhere.path()).unwrap().count(), 0, "nothing created");
}

#[test]
fn ban_status_unban_and_protection_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    served_once(dir.path());
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

#[test]
fn the_demo_prints_its_login_and_bans_the_replayed_attackers() {
    use std::io::{BufRead, BufReader};
    use std::time::Duration;

    use crate::harness::{eventually, request};
    // Port 0: the panel takes a free port and says which in its log.
    let mut demo = Command::new(env!("CARGO_BIN_EXE_sipwarden"))
        .args(["demo", "--listen", "127.0.0.1:0", "--pace", "20ms"])
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(demo.stdout.take().unwrap()).lines().map_while(Result::ok);
    let password = lines
        .find_map(|l| l.trim().strip_prefix("password").map(|p| p.trim().to_string()))
        .expect("the demo prints a password");
    std::thread::spawn(move || lines.for_each(drop));
    let port = crate::harness::printed_port(demo.stderr.take().unwrap());
    // Killed however the test ends.
    let demo =
        crate::harness::Running { child: demo, host: [127, 0, 0, 1].into(), port, setup_url: String::new() };
    let reply = request(port, "POST", "/login", None, &format!("username=demo&password={password}"));
    let cookie = reply.cookie().expect("logged in");
    eventually("the cracker and the AMI guesser are banned", Duration::from_secs(10), || {
        let page = request(port, "GET", "/bans", Some(&cookie), "").body;
        page.contains("203.0.113.77") && page.contains("198.51.100.99")
    });
    // SIGTERM, as Ctrl-C would: the demo removes its temporary data on the way out.
    assert!(demo.terminate().0.success(), "the demo stops cleanly");
}

#[test]
fn a_banned_ipv6_prefix_is_released_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    served_once(dir.path());
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let store = sipwarden::store::Store::open(&dir.path().join("sipwarden.db")).await.unwrap();
        let mut conn = store.acquire().await.unwrap();
        let ban = sipwarden::store::bans::NewBan {
            ip: "2001:db8:5:6::/64",
            reason: "3 addresses of 2001:db8:5:6::/64 banned within 1d",
            rung: 1,
            created_at: 0,
            until_at: None,
        };
        sipwarden::store::bans::insert(&mut conn, &ban).await.unwrap();
        drop(conn);
        store.close().await;
    });
    assert_eq!(status(dir.path())["bans_until_released"], 1);
    let out = sipwarden(dir.path(), &["unban", "2001:db8:5:6::/64"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && text.contains("2001:db8:5:6::/64 released (1 ban)"), "{text}");
    assert_eq!(status(dir.path())["bans_until_released"], 0);
    let out = sipwarden(dir.path(), &["unban", "not-an-address"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("not an address or a network"));
}

/// What an attack left in the database, as the pipeline stores it.
fn attacked(dir: &std::path::Path) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let store = sipwarden::store::Store::open(&dir.join("sipwarden.db")).await.unwrap();
        let mut conn = store.acquire().await.unwrap();
        let now = chrono::Utc::now().timestamp_millis();
        for (service, account) in [("PJSIP", "1003"), ("PJSIP", "1003"), ("SIP", "1004")] {
            sipwarden::store::offenders::record(&mut conn, "203.0.113.9", service, Some(account), now)
                .await
                .unwrap();
        }
        let ban = sipwarden::store::bans::NewBan {
            ip: "203.0.113.9",
            reason: "2 failures within 1h",
            rung: 1,
            created_at: now,
            until_at: Some(now + 3_600_000),
        };
        sipwarden::store::bans::insert(&mut conn, &ban).await.unwrap();
        sipwarden::store::networks::add(
            &mut conn,
            sipwarden::domain::NetworkList::Extensions,
            "10.20.0.0/16",
            "office phones",
            "test",
            now,
        )
        .await
        .unwrap();
        drop(conn);
        store.close().await;
    });
}

#[test]
fn bans_and_networks_are_listed_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    served_once(dir.path());
    let out = sipwarden(dir.path(), &["bans"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("no bans in force"));

    attacked(dir.path());
    sipwarden(dir.path(), &["ban", "198.51.100.4", "--until-released", "--reason", "seen in pcap"]);
    let out = sipwarden(dir.path(), &["bans", "--format", "json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let bans: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let bans = bans.as_array().unwrap();
    assert_eq!(bans.len(), 2, "{bans:?}");
    let timed = bans.iter().find(|b| b["address"] == "203.0.113.9").unwrap();
    assert_eq!(timed["accounts"], serde_json::json!(["1003", "1004"]), "most tried first");
    assert_eq!(timed["services"], serde_json::json!(["PJSIP", "SIP"]));
    assert!(timed["until"].is_string() && timed["since"].as_str().unwrap().contains('T'));
    let forever = bans.iter().find(|b| b["address"] == "198.51.100.4").unwrap();
    assert!(forever["until"].is_null());
    assert_eq!(forever["reason"], "manual: seen in pcap");

    let text = String::from_utf8_lossy(&sipwarden(dir.path(), &["bans"]).stdout).to_string();
    assert!(
        text.contains("203.0.113.9") && text.contains("1003,1004") && text.contains("until released"),
        "{text}"
    );
    assert!(text.contains("2 bans in force"), "{text}");

    let out = sipwarden(dir.path(), &["networks", "--format", "json"]);
    let nets: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let has = |list: &str, net: &str| {
        nets.as_array().unwrap().iter().any(|n| n["list"] == list && n["network"] == net)
    };
    assert!(has("trusted", "192.168.1.0/24"), "the --trusted network: {nets}");
    assert!(has("extensions", "10.20.0.0/16"), "{nets}");
    let text = String::from_utf8_lossy(&sipwarden(dir.path(), &["networks"]).stdout).to_string();
    assert!(text.contains("extensions (office phones") && text.contains("10.20.0.0/16"), "{text}");
    assert!(text.contains("deny (always blocked): none"), "{text}");
}

/// `sipwarden unlock 1002` ends the lock in the database (audited) and tells Asterisk
/// through its CLI (here a script in its place that records what it is asked).
#[test]
fn an_extension_is_unlocked_from_the_command_line_and_asterisk_is_told() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    served_once(&data);
    let asked = dir.path().join("asked");
    let fake = dir.path().join("asterisk");
    std::fs::write(&fake, format!("#!/bin/sh\necho \"$@\" >> {}\n", asked.display())).unwrap();
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let config = dir.path().join("sipwarden.toml");
    std::fs::write(&config, format!("[asterisk]\ncommand = [{:?}]\n", fake.display().to_string())).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let store = sipwarden::store::Store::open(&data.join("sipwarden.db")).await.unwrap();
        let mut conn = store.acquire().await.unwrap();
        let incident = sipwarden::store::incidents::NewIncident {
            kind: "breach",
            severity: "critical",
            account: "1002",
            tech: Some("PJSIP"),
            ip: Some("203.0.113.5"),
            at: 1,
            reason: "password guessed",
            calls: None,
            numbers: "",
            locked: true,
        };
        sipwarden::store::incidents::insert(&mut conn, &incident).await.unwrap();
        drop(conn);
        store.close().await;
    });
    let unlock = |ext: &str| {
        Command::new(env!("CARGO_BIN_EXE_sipwarden"))
            .arg("--config")
            .arg(&config)
            .arg("--data-dir")
            .arg(&data)
            .args(["unlock", ext])
            .env_remove("SIPWARDEN_CONFIG")
            .output()
            .unwrap()
    };
    let status = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_sipwarden"))
            .arg("--data-dir")
            .arg(&data)
            .arg("status")
            .args(args)
            .env_remove("SIPWARDEN_CONFIG")
            .output()
            .unwrap()
    };
    let shown = String::from_utf8_lossy(&status(&[]).stdout).into_owned();
    assert!(
        shown.contains("LOCKED          extension 1002") && shown.contains("sipwarden unlock 1002"),
        "{shown}"
    );
    let out = unlock("1002");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("extension 1002 unlocked"));
    assert_eq!(std::fs::read_to_string(&asked).unwrap().trim(), "-rx database del sipwarden-locked 1002");
    let again = unlock("1002");
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("extension 1002 is not locked"));
    let json: serde_json::Value = serde_json::from_slice(&status(&["--format", "json"]).stdout).unwrap();
    assert_eq!(json["locked"], serde_json::json!([]), "no longer locked");
    let audit = rt.block_on(async {
        let store = sipwarden::store::Store::open(&data.join("sipwarden.db")).await.unwrap();
        let mut conn = store.acquire().await.unwrap();
        sipwarden::store::audit::recent(&mut conn, 10).await.unwrap()
    });
    assert!(audit.iter().any(|a| a.action == "unlock" && a.actor == "cli" && a.detail.contains("1002")));
}

/// The only admin forgot the password: `reset-password` on the server prints a new one
/// that verifies, and an unknown name is told which accounts exist.
#[test]
fn a_forgotten_panel_password_is_reset_from_the_command_line() {
    use argon2::password_hash::{PasswordHasher, PasswordVerifier, phc::PasswordHash};
    let dir = tempfile::tempdir().unwrap();
    served_once(dir.path());
    let out = sipwarden(dir.path(), &["reset-password", "admin"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no panel account yet"));

    let rt = tokio::runtime::Runtime::new().unwrap();
    let store = rt.block_on(sipwarden::store::Store::open(&dir.path().join("sipwarden.db"))).unwrap();
    let old = argon2::Argon2::default().hash_password(b"the forgotten one").unwrap().to_string();
    rt.block_on(async {
        let mut conn = store.acquire().await.unwrap();
        sipwarden::store::admins::create(&mut conn, "office", &old, sipwarden::domain::Role::Admin, 1)
            .await
            .unwrap();
    });
    let out = sipwarden(dir.path(), &["reset-password", "ofice"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("the accounts are: office"));

    let out = sipwarden(dir.path(), &["reset-password", "office"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let password = text.lines().next().unwrap().rsplit(": ").next().unwrap().trim().to_string();
    assert_eq!(password.len(), 16, "{text}");
    let row = rt.block_on(async {
        let mut conn = store.acquire().await.unwrap();
        sipwarden::store::admins::by_username(&mut conn, "office").await.unwrap().unwrap()
    });
    let stored = PasswordHash::new(&row.password_hash).unwrap();
    assert!(argon2::Argon2::default().verify_password(password.as_bytes(), &stored).is_ok());
    assert!(row.password_changed_at > 1, "sessions of the old password end");
    let audit = rt.block_on(async {
        let mut conn = store.acquire().await.unwrap();
        sipwarden::store::audit::recent(&mut conn, 5).await.unwrap()
    });
    assert!(
        audit.iter().any(|a| a.actor == "cli" && a.action == "password reset" && a.detail == "for office")
    );
}
