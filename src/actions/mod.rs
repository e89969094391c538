//! Admin actions shared by the CLI and the panel: the one way an admin changes
//! anything. Each one changes the database and writes the audit log in one
//! transaction; the enforcer then converges the kernel.

pub(crate) mod admins;
pub mod countries;
pub mod networks;

use std::net::IpAddr;

use crate::domain::{TrustedNetworks, UnixMs, network::canonical_ip};
use crate::store::{self, Store};

#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    #[error("{0} is trusted (a trusted network or an address an admin logged in from) and is never banned")]
    Trusted(IpAddr),
    #[error("{0} has no active ban")]
    NotBanned(String),
    #[error("extension {0} is not locked")]
    NotLocked(String),
    #[error("not found")]
    NotFound,
    /// The change is refused; the message says why, for the admin.
    #[error("{0}")]
    Refused(String),
    /// The change would cut off the admin's own access: done only when confirmed.
    #[error("{0}")]
    NeedsConfirmation(String),
    #[error(transparent)]
    Store(#[from] store::StoreError),
}

/// Who acts, for the audit log.
#[derive(Debug, Clone)]
pub struct Actor<'a> {
    pub name: &'a str,
    pub client_ip: Option<&'a str>,
}

pub async fn ban(
    store: &Store,
    trusted: &TrustedNetworks,
    actor: &Actor<'_>,
    ip: IpAddr,
    until: Option<UnixMs>,
    reason: &str,
    now: UnixMs,
) -> Result<i64, ActionError> {
    let ip = canonical_ip(ip);
    let mut tx = store.begin().await?;
    // The panel's trusted networks and the admins' own addresses, whoever bans.
    if trusted.with(store::networks::trusted_nets(&mut tx).await?).contains(ip) {
        return Err(ActionError::Trusted(ip));
    }
    let ip_text = ip.to_string();
    let reason = crate::domain::BanReason::manual(reason);
    let id = store::bans::insert(
        &mut tx,
        &store::bans::NewBan { ip: &ip_text, reason: &reason, rung: 0, created_at: now, until_at: until },
    )
    .await?;
    store::bans::set_created_by(&mut tx, id, actor.name).await?;
    let detail = match until {
        Some(u) => format!("{ip_text} for {} ({reason})", crate::policy::human_duration(u - now)),
        None => format!("{ip_text} until released ({reason})"),
    };
    store::audit::record(&mut tx, now, actor.name, actor.client_ip, "ban", &detail).await?;
    tx.commit().await?;
    Ok(id)
}

/// Ends every active ban of `ip`.
pub async fn release(store: &Store, actor: &Actor<'_>, ip: IpAddr, now: UnixMs) -> Result<u64, ActionError> {
    release_target(store, actor, &canonical_ip(ip).to_string(), now).await
}

/// Ends every active ban of a target as stored: an address, or a banned IPv6 prefix
/// (`2001:db8:1:2::/64`; the bans of its member addresses stay).
pub async fn release_target(
    store: &Store,
    actor: &Actor<'_>,
    target: &str,
    now: UnixMs,
) -> Result<u64, ActionError> {
    let mut tx = store.begin().await?;
    let released = store::bans::release_ip(&mut tx, target, now, actor.name).await?;
    if released == 0 {
        return Err(ActionError::NotBanned(target.to_owned()));
    }
    store::audit::record(&mut tx, now, actor.name, actor.client_ip, "release", target).await?;
    tx.commit().await?;
    Ok(released)
}

pub async fn set_protection(
    store: &Store,
    actor: &Actor<'_>,
    on: bool,
    now: UnixMs,
) -> Result<(), ActionError> {
    let mut tx = store.begin().await?;
    store::settings::set_protection(&mut tx, on).await?;
    store::changes::record(&mut tx, store::changes::kind::ACCESS, "protection", now).await?;
    let detail = if on { "protection on: bans are enforced" } else { "protection off: monitor mode" };
    store::audit::record(&mut tx, now, actor.name, actor.client_ip, "protection", detail).await?;
    tx.commit().await?;
    Ok(())
}

/// Unlocks an extension a breach or toll-fraud incident locked. Asterisk is told by
/// the caller (its CLI or manager interface may be down; the database is the truth).
pub async fn unlock(
    store: &Store,
    actor: &Actor<'_>,
    account: &str,
    now: UnixMs,
) -> Result<u64, ActionError> {
    let mut tx = store.begin().await?;
    let unlocked = store::incidents::unlock(&mut tx, account, now, actor.name).await?;
    if unlocked == 0 {
        return Err(ActionError::NotLocked(account.to_owned()));
    }
    let detail = format!("extension {account} unlocked: change its SIP password if it was guessed");
    store::audit::record(&mut tx, now, actor.name, actor.client_ip, "unlock", &detail).await?;
    tx.commit().await?;
    Ok(unlocked)
}

/// Saves the ladder (`summary` describes it for the audit log).
pub async fn set_ladder(
    store: &Store,
    actor: &Actor<'_>,
    ladder: &crate::domain::Ladder,
    summary: &str,
    now: UnixMs,
) -> Result<(), ActionError> {
    let mut tx = store.begin().await?;
    store::settings::set_ladder(&mut tx, ladder).await?;
    store::audit::record(&mut tx, now, actor.name, actor.client_ip, "ladder changed", summary).await?;
    tx.commit().await?;
    Ok(())
}

/// Saves the alert settings (JSON; `detail` says what changed, without secrets).
pub async fn set_alert_settings(
    store: &Store,
    actor: &Actor<'_>,
    json: &str,
    detail: &str,
    now: UnixMs,
) -> Result<(), ActionError> {
    let mut tx = store.begin().await?;
    store::settings::set(&mut tx, store::settings::ALERTS, json).await?;
    store::audit::record(&mut tx, now, actor.name, actor.client_ip, "alerts", detail).await?;
    tx.commit().await?;
    Ok(())
}
