//! `sipwarden bans` and `sipwarden networks`: what is in force, read from the database
//! the running `serve` uses.

use serde::Serialize;

use super::when;
use crate::app;
use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::domain::NetworkList;
use crate::store;

/// One ban in force, as `sipwarden bans` shows it.
#[derive(Debug, Serialize)]
pub struct BanLine {
    pub address: String,
    pub reason: String,
    #[serde(serialize_with = "rfc3339")]
    pub since: i64,
    /// `None`: until someone releases it.
    #[serde(serialize_with = "rfc3339_until")]
    pub until: Option<i64>,
    /// The accounts it tried most.
    pub accounts: Vec<String>,
    pub services: Vec<String>,
    /// The PBX that decided it (several share a store).
    pub node: String,
}

fn rfc3339_text(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).map_or_else(|| ms.to_string(), |d| d.to_rfc3339())
}

/// Times leave as RFC 3339 in JSON; the text listing shows them in local time.
fn rfc3339<S: serde::Serializer>(ms: &i64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&rfc3339_text(*ms))
}

fn rfc3339_until<S: serde::Serializer>(ms: &Option<i64>, s: S) -> Result<S::Ok, S::Error> {
    match ms {
        Some(ms) => rfc3339(ms, s),
        None => s.serialize_none(),
    }
}

async fn gather_bans(store: &store::Store, now: i64) -> anyhow::Result<Vec<BanLine>> {
    let mut conn = store.acquire().await?;
    let bans = store::bans::active(&mut conn, now).await?;
    let ips: Vec<String> = bans.iter().map(|b| b.ip.clone()).collect();
    let accounts = store::offenders::accounts_many(&mut conn, &ips, 5).await?;
    let mut lines = Vec::with_capacity(bans.len());
    for b in bans {
        let services = store::offenders::get(&mut conn, &b.ip)
            .await?
            .map(|o| o.services.split(',').filter(|s| !s.is_empty()).map(String::from).collect())
            .unwrap_or_default();
        lines.push(BanLine {
            accounts: accounts.get(&b.ip).cloned().unwrap_or_default(),
            address: b.ip,
            reason: b.reason,
            since: b.created_at,
            until: b.until_at,
            services,
            node: b.node,
        });
    }
    Ok(lines)
}

pub async fn bans(config: Config, json: bool) -> anyhow::Result<()> {
    let store = app::open_existing_store(&config).await?;
    let lines = gather_bans(&store, SystemClock.now()).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&lines)?);
        return Ok(());
    }
    if lines.is_empty() {
        println!("no bans in force");
        return Ok(());
    }
    println!("{:<40} {:<19} {:<19} {:<20} reason", "address", "since", "until", "accounts");
    for l in &lines {
        println!(
            "{:<40} {:<19} {:<19} {:<20} {}",
            l.address,
            when(l.since),
            l.until.map_or_else(|| "until released".to_string(), when),
            l.accounts.join(","),
            l.reason
        );
    }
    println!("{} ban{} in force", lines.len(), if lines.len() == 1 { "" } else { "s" });
    Ok(())
}

/// One entry of a network list.
#[derive(Debug, Serialize)]
pub struct NetworkLine {
    pub list: NetworkList,
    pub network: String,
    pub label: String,
    /// Trunk name for trunk provider networks.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub trunk: String,
    /// Host name the entry was resolved from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
}

/// Every list, in the order the panel shows them, with what each one means.
const LISTS: [(NetworkList, &str); 5] = [
    (NetworkList::Trusted, "never banned"),
    (NetworkList::Admin, "admin login addresses, never banned"),
    (NetworkList::Extensions, "office phones: may register as extensions"),
    (NetworkList::Trunk, "trunk providers"),
    (NetworkList::Deny, "always blocked"),
];

pub async fn networks(config: Config, json: bool) -> anyhow::Result<()> {
    let store = app::open_existing_store(&config).await?;
    let mut conn = store.acquire().await?;
    let mut lines = Vec::new();
    // Networks given in the configuration or on the command line count as trusted too.
    for net in config.trusted.networks() {
        lines.push(NetworkLine {
            list: NetworkList::Trusted,
            network: net.to_string(),
            label: "from the configuration".into(),
            trunk: String::new(),
            host: None,
            expires: None,
        });
    }
    for (list, _) in LISTS {
        for row in store::networks::in_list(&mut conn, list).await? {
            lines.push(NetworkLine {
                list,
                network: row.cidr,
                label: row.label,
                trunk: row.trunk,
                host: row.host,
                expires: row.expires_at.map(rfc3339_text),
            });
        }
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&lines)?);
        return Ok(());
    }
    for (list, meaning) in LISTS {
        let entries: Vec<&NetworkLine> = lines.iter().filter(|l| l.list == list).collect();
        println!("{list} ({meaning}): {}", if entries.is_empty() { "none" } else { "" });
        for l in entries {
            let trunk = if l.trunk.is_empty() { String::new() } else { format!(" trunk {}", l.trunk) };
            let host = l.host.as_deref().map_or(String::new(), |h| format!(" from {h}"));
            let expires = l.expires.as_deref().map_or(String::new(), |e| format!(" until {e}"));
            println!("  {:<43} {}{trunk}{host}{expires}", l.network, l.label);
        }
    }
    Ok(())
}
