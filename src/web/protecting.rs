//! Whether sipwarden protects the PBX right now, and if not, why and how to fix it:
//! one answer for the dashboard and `/healthz`.

/// What the admin needs to know, worst first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Protecting {
    /// Logs are read, decisions stored and bans reach the firewall.
    Yes,
    /// Everything is watched and recorded on purpose, nothing is blocked.
    MonitorOnly(String),
    /// Attackers are not being stopped: each reason says what to do.
    No(Vec<String>),
}

/// The facts `serve` knows, gathered for [`verdict`].
#[derive(Debug, Clone, Default)]
pub struct Facts {
    pub protection_on: bool,
    pub firewall_enforces: bool,
    /// Why the firewall runs dry although `nft` was wanted.
    pub firewall_fallback: Option<String>,
    /// The enforcer's last report: `None` before its first pass.
    pub firewall_ok: Option<bool>,
    pub firewall_detail: String,
    pub storing_problem: Option<String>,
    pub log_problems: Vec<String>,
    pub log_sources: usize,
    /// The manager interface, when configured: `Err` says why it is down.
    pub manager: Option<Result<(), String>>,
}

/// The verdict from what `serve` knows now: its firewall, its logs, the database.
pub async fn now(state: &super::WebState, conn: &mut crate::store::Conn) -> crate::store::Result<Protecting> {
    use crate::store;
    let health = store::health::all(conn).await?;
    let firewall = health.iter().find(|h| h.component == crate::enforcer::HEALTH_COMPONENT);
    Ok(verdict(&Facts {
        protection_on: store::settings::protection(conn, state.protection_default).await?,
        firewall_enforces: state.firewall_enforces,
        firewall_fallback: state.firewall_fallback.clone(),
        firewall_ok: firewall.map(|h| h.ok),
        firewall_detail: firewall.map_or_else(String::new, |h| h.detail.clone()),
        storing_problem: state.ingest.problem().map(|p| p.detail),
        log_problems: state.ingest.log_problems(),
        log_sources: state.log_sources,
        manager: state.manager.as_ref().map(|m| {
            let s = m.state();
            if s.connected { Ok(()) } else { Err(s.problem.unwrap_or_else(|| "connecting".into())) }
        }),
    }))
}

/// The health row `sipwarden status` shows: component, ok, detail.
pub const HEALTH_COMPONENT: &str = "protecting";
/// How that row's detail begins when nothing is blocked on purpose.
pub const MONITOR_ONLY: &str = "monitor only";

impl Protecting {
    /// As one health row: whether all is well, and in words.
    pub fn as_health(&self) -> (bool, String) {
        match self {
            Protecting::Yes => (true, "yes: attackers are blocked".into()),
            Protecting::MonitorOnly(why) => (true, format!("{MONITOR_ONLY}: {why}")),
            Protecting::No(why) => (false, format!("NO: {}", why.join("; "))),
        }
    }
}

pub fn verdict(f: &Facts) -> Protecting {
    let mut problems = Vec::new();
    if let Some(why) = &f.firewall_fallback {
        problems.push(format!("Bans are not enforced: {why}"));
    } else if f.firewall_enforces && f.firewall_ok == Some(false) {
        problems.push(format!("The firewall cannot be updated: {}", f.firewall_detail));
    }
    match (&f.manager, f.log_sources) {
        // Without logs the manager interface is the only source.
        (Some(Err(why)), 0) => {
            problems.push(format!("The manager interface is down and no log is read: {why}"))
        }
        (None, 0) => {
            problems.push("No Asterisk log is configured: set `logs` in the config file (or --log)".into())
        }
        _ => {}
    }
    problems.extend(f.log_problems.iter().map(|p| format!("A log cannot be read: {p}")));
    if let Some(p) = &f.storing_problem {
        problems.push(format!("Log records cannot be stored: {p}"));
    }
    if !problems.is_empty() {
        return Protecting::No(problems);
    }
    if !f.firewall_enforces {
        return Protecting::MonitorOnly(
            "the firewall runs as a dry run (chosen in the configuration)".into(),
        );
    }
    if !f.protection_on {
        return Protecting::MonitorOnly("protection is switched off".into());
    }
    Protecting::Yes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn healthy() -> Facts {
        Facts {
            protection_on: true,
            firewall_enforces: true,
            firewall_ok: Some(true),
            log_sources: 2,
            ..Facts::default()
        }
    }

    #[test]
    fn each_thing_that_stops_protection_is_named_with_its_fix() {
        assert_eq!(verdict(&healthy()), Protecting::Yes);
        let not_root = Facts {
            firewall_enforces: false,
            firewall_fallback: Some("nft is not usable here (run as root or with CAP_NET_ADMIN)".into()),
            ..healthy()
        };
        let Protecting::No(why) = verdict(&not_root) else { panic!() };
        assert!(why[0].contains("CAP_NET_ADMIN"));
        let missing =
            Facts { log_problems: vec!["/var/log/asterisk/security does not exist".into()], ..healthy() };
        assert!(matches!(verdict(&missing), Protecting::No(w) if w[0].contains("security does not exist")));
        let none = Facts { log_sources: 0, ..healthy() };
        assert!(matches!(verdict(&none), Protecting::No(w) if w[0].contains("No Asterisk log")));
        let failing = Facts { firewall_ok: Some(false), firewall_detail: "nft failed".into(), ..healthy() };
        assert!(matches!(verdict(&failing), Protecting::No(_)));
        // The manager interface alone: protecting while it is up.
        let only_manager = Facts { log_sources: 0, manager: Some(Ok(())), ..healthy() };
        assert_eq!(verdict(&only_manager), Protecting::Yes);
        let down = Facts { log_sources: 0, manager: Some(Err("connection refused".into())), ..healthy() };
        assert!(matches!(verdict(&down), Protecting::No(w) if w[0].contains("connection refused")));
        // With logs read, a manager link that is down stops nothing.
        let with_logs = Facts { manager: Some(Err("connection refused".into())), ..healthy() };
        assert_eq!(verdict(&with_logs), Protecting::Yes);
    }

    #[test]
    fn a_chosen_dry_run_and_protection_off_are_monitor_only() {
        let dry = Facts { firewall_enforces: false, ..healthy() };
        assert!(matches!(verdict(&dry), Protecting::MonitorOnly(_)));
        let off = Facts { protection_on: false, ..healthy() };
        assert!(matches!(verdict(&off), Protecting::MonitorOnly(w) if w.contains("switched off")));
        // Before the enforcer's first pass nothing is known to be wrong.
        assert_eq!(verdict(&Facts { firewall_ok: None, ..healthy() }), Protecting::Yes);
    }
}
