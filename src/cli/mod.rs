//! The admin commands (`ban`, `unban`, `protection`, `status`, `reset-password`): they change the
//! database, then have the running enforcer converge the kernel (or, with no
//! `serve` running, converge it themselves with the same code). `bans` and
//! `networks` list what is in force ([`lists`]).

mod lists;

pub use lists::{bans, networks};

use std::net::IpAddr;
use std::sync::Arc;

use serde::Serialize;
use tokio::sync::Notify;

use crate::actions::{self, Actor};
use crate::app;
use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::domain::{DAY_MS, HOUR_MS};
use crate::store;

const CLI: Actor<'static> = Actor { name: "cli", client_ip: None };

/// Makes the kernel follow the database now. Returns a line for the admin.
async fn converge(config: &Config, store: &store::Store) -> String {
    let socket = crate::control::socket_path(&config.data_dir);
    match crate::control::request_reconcile(&socket).await {
        Some(Ok(r)) => format!("firewall updated by the running sipwarden ({r})"),
        Some(Err(e)) => format!("the running sipwarden could not update the firewall: {e}"),
        None => {
            let (firewall, warning) = app::choose_firewall(config);
            // The country rules need the database; unreadable, the kernel keeps them as they are.
            let geo = config.geoip.as_deref().map_or_else(crate::geo::Geo::none, crate::geo::Geo::at);
            if let Err(e) = geo.reload_if_changed() {
                tracing::warn!(error = %e, "country rules left as the firewall holds them");
            }
            let enforcer = app::enforcer_for(config, store, firewall, Arc::new(Notify::new())).with_geo(geo);
            match (enforcer.reconcile_once().await, warning) {
                (Ok(r), None) => format!("firewall updated ({} bans enforced)", r.enforced),
                (Ok(_), Some(w)) => w,
                (Err(e), _) => format!("firewall not updated: {e}"),
            }
        }
    }
}

pub async fn ban(config: Config, ip: IpAddr, duration_ms: Option<i64>, reason: &str) -> anyhow::Result<()> {
    let store = app::open_existing_store(&config).await?;
    let now = SystemClock.now();
    actions::ban(&store, &config.trusted, &CLI, ip, duration_ms.map(|d| now + d), reason, now).await?;
    let length = duration_ms
        .map_or("until released".to_string(), |d| format!("for {}", crate::policy::human_duration(d)));
    println!("{ip} banned {length}; {}", converge(&config, &store).await);
    Ok(())
}

/// Releases an address (`ip` a /32 or /128) or a banned IPv6 prefix.
pub async fn unban(config: Config, ip: ipnet::IpNet) -> anyhow::Result<()> {
    let store = app::open_existing_store(&config).await?;
    let n = if ip.prefix_len() == ip.max_prefix_len() {
        actions::release(&store, &CLI, ip.addr(), SystemClock.now()).await?
    } else {
        actions::release_target(&store, &CLI, &ip.to_string(), SystemClock.now()).await?
    };
    let ip = crate::firewall::render::target_text(&ip);
    println!("{ip} released ({n} ban{}); {}", if n == 1 { "" } else { "s" }, converge(&config, &store).await);
    Ok(())
}

/// Sets a new random password for a panel account (the only admin forgot theirs) and
/// prints it once. The account's sessions end.
pub async fn reset_password(config: Config, username: &str) -> anyhow::Result<()> {
    let store = app::open_existing_store(&config).await?;
    let mut conn = store.acquire().await?;
    let Some(account) = store::admins::by_username(&mut conn, username).await? else {
        let names: Vec<String> =
            store::admins::list(&mut conn).await?.into_iter().map(|a| a.username).collect();
        anyhow::bail!(if names.is_empty() {
            "there is no panel account yet: open the setup address `sipwarden serve` prints (also in \
             setup-url in the data directory)"
                .to_string()
        } else {
            format!("no panel account named {username:?}; the accounts are: {}", names.join(", "))
        });
    };
    drop(conn);
    let password = actions::admins::random_password();
    let hashed = tokio::task::spawn_blocking({
        let password = password.clone();
        move || actions::admins::hash_password(&password)
    })
    .await??;
    actions::admins::reset_password(&store, &CLI, account.id, &hashed, SystemClock.now()).await?;
    println!(
        "new password for {} ({}): {password}\nIt is shown only now; change it after logging in.",
        account.username, account.role
    );
    Ok(())
}

pub async fn protection(config: Config, on: bool) -> anyhow::Result<()> {
    let store = app::open_existing_store(&config).await?;
    actions::set_protection(&store, &CLI, on, SystemClock.now()).await?;
    let what = if on { "protection ON: bans are enforced" } else { "protection OFF: monitor mode" };
    println!("{what}; {}", converge(&config, &store).await);
    Ok(())
}

#[derive(Debug, Serialize)]
pub struct Status {
    pub protection: bool,
    pub bans_timed: i64,
    pub bans_until_released: i64,
    pub failures_last_hour: i64,
    pub failures_last_day: i64,
    pub health: Vec<HealthLine>,
    pub sources: Vec<SourceLine>,
    /// Extensions a breach or toll-fraud incident locked.
    pub locked: Vec<LockedLine>,
    /// This PBX's name, and every PBX writing to the store.
    pub node: String,
    pub nodes: Vec<NodeLine>,
}

#[derive(Debug, Serialize)]
pub struct NodeLine {
    pub name: String,
    pub first_seen: i64,
    pub last_contact: i64,
    pub version: String,
}

#[derive(Debug, Serialize)]
pub struct LockedLine {
    pub extension: String,
    pub since: i64,
    pub kind: String,
    pub reason: String,
}

#[derive(Debug, Serialize)]
pub struct HealthLine {
    pub component: String,
    pub ok: bool,
    pub detail: String,
    pub updated_at: i64,
}

#[derive(Debug, Serialize)]
pub struct SourceLine {
    pub path: String,
    pub kind: String,
    pub lines_read: i64,
    pub unreadable_lines: i64,
    pub tampered_records: i64,
    pub last_line_at: Option<i64>,
}

pub async fn gather_status(config: &Config, store: &store::Store) -> anyhow::Result<Status> {
    let now = SystemClock.now();
    let mut conn = store.acquire().await?;
    let (bans_timed, bans_until_released) = store::bans::active_counts(&mut conn, now).await?;
    let locked = store::incidents::locking(&mut conn)
        .await?
        .into_iter()
        .map(|i| LockedLine { extension: i.account, since: i.at, kind: i.kind, reason: i.reason })
        .collect();
    let nodes = store::nodes::all(&mut conn)
        .await?
        .into_iter()
        .map(|n| NodeLine {
            name: n.name,
            first_seen: n.first_seen,
            last_contact: n.last_contact,
            version: n.version,
        })
        .collect();
    Ok(Status {
        node: store.node().to_string(),
        nodes,
        locked,
        protection: store::settings::protection(&mut conn, config.protection_default).await?,
        bans_timed,
        bans_until_released,
        failures_last_hour: store::failures::count_all_since(&mut conn, now - HOUR_MS).await?,
        failures_last_day: store::failures::count_all_since(&mut conn, now - DAY_MS).await?,
        health: store::health::all(&mut conn)
            .await?
            .into_iter()
            .map(|h| HealthLine {
                component: h.component,
                ok: h.ok,
                detail: h.detail,
                updated_at: h.updated_at,
            })
            .collect(),
        sources: store::sources::all(&mut conn)
            .await?
            .into_iter()
            .map(|s| SourceLine {
                path: s.path,
                kind: s.kind,
                lines_read: s.lines_read,
                unreadable_lines: s.unreadable_lines,
                tampered_records: s.tampered_records,
                last_line_at: s.last_line_at,
            })
            .collect(),
    })
}

fn when(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|d| d.with_timezone(&chrono::Local).format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_else(|| "-".into())
}

pub async fn status(config: Config, json: bool) -> anyhow::Result<()> {
    let store = app::open_existing_store(&config).await?;
    let s = gather_status(&config, &store).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&s)?);
        return Ok(());
    }
    let protecting = s.health.iter().find(|h| h.component == crate::web::protecting::HEALTH_COMPONENT);
    let switch = match (s.protection, protecting) {
        (true, Some(h)) if !h.ok => "ON, but NOT PROTECTING (see \"protecting\" below)",
        (true, Some(h)) if h.detail.starts_with(crate::web::protecting::MONITOR_ONLY) => {
            "ON, but monitor only (see \"protecting\" below)"
        }
        (true, _) => "ON (bans enforced)",
        (false, _) => "OFF (monitor mode)",
    };
    println!("protection      {switch}");
    println!("active bans     {} timed, {} until released", s.bans_timed, s.bans_until_released);
    println!(
        "failures        {} in the last hour, {} in the last 24 h",
        s.failures_last_hour, s.failures_last_day
    );
    for h in &s.health {
        println!(
            "{:<15} {} {} (at {})",
            h.component,
            if h.ok { "ok" } else { "ERROR" },
            h.detail,
            when(h.updated_at)
        );
    }
    for l in &s.locked {
        println!(
            "LOCKED          extension {} since {} ({}: {}); `sipwarden unlock {}` when it is safe",
            l.extension,
            when(l.since),
            l.kind.replace('_', " "),
            l.reason,
            l.extension
        );
    }
    for src in &s.sources {
        println!(
            "log             {} ({}): {} lines, {} unreadable, {} tampered, last line {}",
            src.path,
            src.kind,
            src.lines_read,
            src.unreadable_lines,
            src.tampered_records,
            src.last_line_at.map_or("-".into(), when)
        );
    }
    // Several PBXes on one store: each, and when it was last heard from.
    if s.nodes.len() > 1 {
        for n in &s.nodes {
            let this = if n.name == s.node { " (this PBX)" } else { "" };
            println!(
                "node            {}{this}: last contact {}, version {}",
                n.name,
                when(n.last_contact),
                n.version
            );
        }
    }
    Ok(())
}

/// Unlocks an extension an incident locked, and tells Asterisk (its CLI).
pub async fn unlock(config: Config, account: &str) -> anyhow::Result<()> {
    use crate::pbx::control::Control;
    let store = app::open_existing_store(&config).await?;
    let n = actions::unlock(&store, &CLI, account, SystemClock.now()).await?;
    let pbx = crate::pbx::control::Cli { command: config.asterisk_command.clone() };
    let told = match pbx.set_locked(account, false) {
        Ok(()) => "Asterisk told".to_string(),
        Err(e) => format!(
            "Asterisk could not be told ({e}); run `asterisk -rx 'database del sipwarden-locked {account}'`"
        ),
    };
    println!(
        "extension {account} unlocked ({n} incident{}); {told}. Change its SIP password if it was guessed.",
        if n == 1 { "" } else { "s" }
    );
    Ok(())
}
