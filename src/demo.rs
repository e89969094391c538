//! `sipwarden demo`: the panel on a temporary data directory with a dry-run firewall,
//! fed by a replay of a realistic attack, so a newcomer sees offenders appear, bans
//! happen, and can click Release within a minute.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use chrono::{Local, Utc};

use crate::clock::{Clock, SystemClock};
use crate::config::{BackendChoice, Config, FileConfig, Overrides};
use crate::store;

/// The log lines of step `step` of the replay; `None` when the script is over.
pub fn script(step: u32) -> Option<Vec<String>> {
    let now = Local::now().format("%Y-%m-%d %H:%M:%S");
    let tv = Utc::now().format("%Y-%m-%dT%H:%M:%S%.3f+0000");
    let pjsip = |ip: &str, user: &str, reason: &str| {
        format!(
            "[{now}] NOTICE[2101] res_pjsip/pjsip_distributor.c: Request 'REGISTER' from '\"{user}\" <sip:{user}@pbx.example>' failed for '{ip}:5060' (callid: {step}a{ip}) - {reason}"
        )
    };
    let security = |event: &str, ip: &str, user: &str, tail: &str| {
        format!(
            "[{now}] SECURITY[2130] res_security_log.c: SecurityEvent=\"{event}\",EventTV=\"{tv}\",Severity=\"Error\",Service=\"PJSIP\",EventVersion=\"1\",AccountID=\"{user}\",SessionID=\"{step}@{ip}\",LocalAddress=\"IPV4/UDP/192.168.1.2/5060\",RemoteAddress=\"IPV4/UDP/{ip}/5060\"{tail}"
        )
    };
    let mut lines = vec![format!(
        "[{now}] VERBOSE[2099][C-{step:08x}] pbx.c: Executing [s@from-internal:1] NoOp(\"PJSIP/1003-{step:08x}\", \"\") in new stack"
    )];
    match step {
        // A scanner walks through extensions it cannot find.
        0..=11 => lines.push(pjsip("198.51.100.23", &(100 + step).to_string(), "No matching endpoint found")),
        // An office phone with a typo: it logged in before, so it gets more tries.
        12 => lines.push(security("SuccessfulAuth", "192.0.2.30", "1003", ",UsingPassword=\"1\"").replace("Severity=\"Error\"", "Severity=\"Informational\"")),
        13..=15 => lines.push(security("ChallengeResponseFailed", "192.0.2.30", "1003", ",Challenge=\"a\",Response=\"b\",ExpectedResponse=\"\"")),
        // svcrack against 1001: banned after two guesses, for good after twelve.
        16..=29 => lines.push(format!(
            "[{now}] NOTICE[2101] chan_sip.c: Registration from '\"1001\" <sip:1001@pbx.example>' failed for '203.0.113.77:5060' - Wrong password"
        )),
        // Somebody guessing the manager (AMI) password.
        30..=35 => lines.push(format!("[{now}] NOTICE[2140] manager.c: 198.51.100.99 failed to authenticate as 'admin'")),
        // An attacker hiding a forged address in its Call-ID: caught at its real address.
        36..=37 => lines.push(pjsip("198.51.100.66", "2000", "Failed to authenticate").replace(
            &format!("(callid: {step}a198.51.100.66)"),
            "(callid: x) - Failed to authenticate' failed for '6.6.6.6:5060' (callid: y)",
        )),
        // A user name that is a script: shown as text, never run.
        38..=39 => lines.push(security("InvalidAccountID", "198.51.100.77", "<script>alert(1)</script>", "")),
        // IAX2 with authdebug=yes.
        40..=42 => lines.push(format!("[{now}] WARNING[2150] chan_iax2.c: Host 203.0.113.150:4569 failed to authenticate as iaxuser")),
        _ => return None,
    }
    Some(lines)
}

async fn replay(log: &Path, pace: Duration) {
    let mut step = 0;
    while let Some(lines) = script(step) {
        let written = std::fs::OpenOptions::new().append(true).open(log).and_then(|mut f| {
            let mut text = lines.join("\n");
            text.push('\n');
            f.write_all(text.as_bytes())
        });
        if let Err(e) = written {
            tracing::warn!(error = %e, "demo log not written");
        }
        step += 1;
        tokio::time::sleep(pace).await;
    }
    tracing::info!("demo replay finished; the panel stays up until Ctrl-C");
}

pub async fn run(listen: Option<String>, pace: Duration) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let log = dir.path().join("full");
    std::fs::write(&log, "")?;
    let overrides = Overrides {
        data_dir: Some(dir.path().join("data")),
        logs: vec![format!("messages:{}", log.display())],
        backend: Some(BackendChoice::DryRun),
        listen: Some(listen.unwrap_or_else(|| crate::config::DEFAULT_LISTEN.into())),
        ..Overrides::default()
    };
    let config = Config::from_parts(FileConfig::default(), overrides)?;
    let store = crate::app::open_store(&config).await?;
    let password = crate::actions::admins::random_password();
    let hashed = tokio::task::spawn_blocking({
        let password = password.clone();
        move || crate::actions::admins::hash_password(&password)
    })
    .await??;
    let mut conn = store.acquire().await?;
    store::admins::create(&mut conn, "demo", &hashed, crate::domain::Role::Admin, SystemClock.now()).await?;
    drop(conn);
    store.close().await;
    let _ = writeln!(
        std::io::stdout(),
        "\n  sipwarden demo: a replayed attack on a pretend PBX (nothing is blocked for real).\n\n    open      http://{}\n    user      demo\n    password  {password}\n\n  Data in {} (deleted when you stop the demo with Ctrl-C).\n",
        config.listen,
        dir.path().display()
    );
    tokio::spawn(async move { replay(&log, pace).await });
    crate::app::serve(config).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::asterisk::read_text;

    #[test]
    fn the_replay_is_read_as_the_attack_it_tells() {
        let mut lines = Vec::new();
        let mut step = 0;
        while let Some(step_lines) = script(step) {
            lines.extend(step_lines);
            step += 1;
        }
        let out = read_text(&lines.join("\n"), Utc::now().timestamp_millis());
        let from = |ip: &str| {
            out.iter()
                .filter(|r| r.event.as_ref().and_then(|e| e.ip).is_some_and(|a| a.to_string() == ip))
                .count()
        };
        assert_eq!(from("198.51.100.23"), 12);
        assert_eq!(from("203.0.113.77"), 14);
        assert_eq!(from("198.51.100.99"), 6);
        assert_eq!(from("192.0.2.30"), 4, "one success and three failures");
        assert_eq!(from("198.51.100.66"), 2);
        assert_eq!(from("6.6.6.6"), 0);
        assert_eq!(from("203.0.113.150"), 3);
        assert!(out.iter().filter(|r| r.tampered).count() >= 2);
    }
}
