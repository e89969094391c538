//! The lockout guard's undo: a change that narrows access (an always-deny entry, an
//! allow entry removed while a service is closed, closed mode, a country rule) is
//! stored with a snapshot of the lists before it, and put back unless an admin keeps it within
//! [`KEEP_WITHIN_MS`]. The snapshot is taken in the change's own transaction.

use serde::{Deserialize, Serialize};

use crate::domain::UnixMs;
use crate::store::{self, Store, networks::NetworkRow};

pub const KEEP_WITHIN_MS: UnixMs = 60_000;
const PENDING: &str = "pending_change";

/// A narrowing change waiting to be kept, and what to put back otherwise.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Pending {
    pub deadline: UnixMs,
    pub what: String,
    pub by: String,
    pub rows: Vec<NetworkRow>,
    pub closed: Vec<crate::domain::ClosableService>,
    /// The country rules before the change (absent in a change saved by an older version).
    #[serde(default)]
    pub countries: Option<crate::geo::rules::CountryRules>,
}

pub async fn pending(conn: &mut store::Conn) -> store::Result<Option<Pending>> {
    Ok(store::settings::get(conn, PENDING).await?.and_then(|j| serde_json::from_str(&j).ok()))
}

/// Saves a narrowing change with the snapshot to restore if it is not kept. A change
/// already pending keeps its older snapshot: reverting goes back to before both.
pub async fn remember(
    tx: &mut store::Conn,
    now: UnixMs,
    what: &str,
    by: &str,
    rows: Vec<NetworkRow>,
    closed: Vec<crate::domain::ClosableService>,
) -> store::Result<()> {
    let deadline = now + KEEP_WITHIN_MS;
    let p = match pending(tx).await? {
        Some(p) => Pending { deadline, what: format!("{}; {what}", p.what), ..p },
        None => {
            let countries = Some(store::settings::country_rules(tx).await?);
            Pending { deadline, what: what.into(), by: by.into(), rows, closed, countries }
        }
    };
    store::settings::set(tx, PENDING, &serde_json::to_string(&p).unwrap_or_default()).await
}

/// Forgets the pending change (kept); its description when there was one.
pub async fn keep(tx: &mut store::Conn) -> store::Result<Option<String>> {
    let Some(p) = pending(tx).await? else { return Ok(None) };
    store::settings::set(tx, PENDING, "null").await?;
    Ok(Some(p.what))
}

/// Undoes the pending change, with its audit row (`by`: an admin, or the clock).
pub async fn revert(store: &Store, by: &str, client_ip: Option<&str>, now: UnixMs) -> store::Result<bool> {
    let mut tx = store.begin().await?;
    let Some(p) = pending(&mut tx).await? else { return Ok(false) };
    store::networks::restore(&mut tx, &p.rows).await?;
    store::changes::record(&mut tx, store::changes::kind::ACCESS, "networks", now).await?;
    store::settings::set_closed_services(&mut tx, &p.closed).await?;
    if let Some(countries) = &p.countries {
        store::settings::set_country_rules(&mut tx, countries).await?;
    }
    store::settings::set(&mut tx, PENDING, "null").await?;
    store::audit::record(&mut tx, now, by, client_ip, "reverted", &p.what).await?;
    tx.commit().await?;
    Ok(true)
}

/// Reverts a narrowing change nobody kept in time; whether it did. Runs once a second
/// in `serve`.
pub async fn revert_when_due(store: &Store, now: UnixMs) -> store::Result<bool> {
    let mut conn = store.acquire().await?;
    let Some(p) = pending(&mut conn).await? else { return Ok(false) };
    drop(conn);
    if now < p.deadline || !revert(store, "sipwarden (not kept in time)", None, now).await? {
        return Ok(false);
    }
    tracing::warn!(change = %p.what, "firewall change reverted: not kept within 60 s");
    Ok(true)
}
