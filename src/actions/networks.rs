//! Changes to the network lists, closed mode and the Asterisk ACL targets, each in one
//! transaction with its audit row. A change that narrows access is remembered by the
//! lockout guard (`crate::lockout`) in the same transaction, so it can be put back.

use std::net::IpAddr;

use ipnet::IpNet;

use super::{ActionError, Actor};
use crate::domain::{ClosableService, NetworkList, TrustedNetworks, UnixMs};
use crate::store::{self, Store};

/// What a list entry names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    Network(IpNet),
    /// A host name, resolved now and then (`crate::resolver`).
    Host(String),
}

impl Entry {
    pub fn shown(&self) -> String {
        match self {
            Entry::Network(n) => n.to_string(),
            Entry::Host(h) => h.clone(),
        }
    }

    fn stored(&self) -> String {
        match self {
            Entry::Network(n) => n.to_string(),
            Entry::Host(h) => format!("host:{h}"),
        }
    }
}

/// An entry to add to one of the lists.
pub struct NewEntry<'a> {
    pub list: NetworkList,
    pub entry: Entry,
    /// Empty: the entry itself.
    pub label: &'a str,
    /// The trunk's name, for the trunk-provider list.
    pub trunk: &'a str,
    pub expires_at: Option<UnixMs>,
    /// The admin confirmed cutting off their own address.
    pub confirmed: bool,
}

fn own_address(actor: &Actor<'_>) -> Option<IpAddr> {
    actor.client_ip.and_then(|ip| ip.parse().ok())
}

/// Adds an entry. Refused when it overlaps an entry of the same list or contradicts
/// one (allow against deny), or is there already; an always-deny entry holding the
/// admin's own address needs confirming.
pub async fn add(
    store: &Store,
    actor: &Actor<'_>,
    new: &NewEntry<'_>,
    now: UnixMs,
) -> Result<(), ActionError> {
    let mut tx = store.begin().await?;
    let rows = store::networks::editable(&mut tx).await?;
    if let Entry::Network(net) = &new.entry {
        for r in &rows {
            let Ok(other) = r.cidr.parse::<IpNet>() else { continue };
            let overlap = other.contains(&net.network()) || net.contains(&other.network());
            let contradicts = (new.list == NetworkList::Deny) != (r.list == NetworkList::Deny);
            if overlap && (r.list == new.list || contradicts) {
                return Err(ActionError::Refused(format!("{net} overlaps {other} in the {} list.", r.list)));
            }
        }
        if let Some(own) = own_address(actor).filter(|ip| new.list == NetworkList::Deny && net.contains(ip)) {
            if !new.confirmed {
                return Err(ActionError::NeedsConfirmation(format!(
                    "{net} contains your own address {own}: you would lose this panel. Tick the box to do it anyway."
                )));
            }
        }
    }
    let shown = new.entry.shown();
    let label = match new.label.trim() {
        "" => shown.clone(),
        l => l.to_string(),
    };
    if new.list == NetworkList::Deny {
        let closed = store::settings::closed_services(&mut tx).await?;
        crate::lockout::remember(&mut tx, now, &format!("always deny {shown}"), actor.name, rows, closed)
            .await?;
    }
    let host = match &new.entry {
        Entry::Host(h) => Some(h.as_str()),
        Entry::Network(_) => None,
    };
    let entry = store::networks::NewEntry {
        list: new.list,
        cidr: new.entry.stored(),
        label: &label,
        trunk: if new.list == NetworkList::Trunk { new.trunk } else { "" },
        expires_at: new.expires_at,
        host,
    };
    if !store::networks::add_entry(&mut tx, &entry, actor.name, now).await? {
        return Err(ActionError::Refused(format!("{shown} is already in that list.")));
    }
    let detail = format!("{}: {shown} ({label})", new.list);
    store::changes::record(&mut tx, store::changes::kind::ACCESS, "networks", now).await?;
    store::audit::record(&mut tx, now, actor.name, actor.client_ip, "network added", &detail).await?;
    tx.commit().await?;
    Ok(())
}

/// Removes an entry of the lists. Taking a network off an allow list narrows access
/// while a service is closed: the lockout guard remembers it.
pub async fn remove(store: &Store, actor: &Actor<'_>, id: i64, now: UnixMs) -> Result<(), ActionError> {
    let mut tx = store.begin().await?;
    let rows = store::networks::editable(&mut tx).await?;
    let closed = store::settings::closed_services(&mut tx).await?;
    let Some(row) = rows.iter().find(|r| r.id == id).cloned() else { return Err(ActionError::NotFound) };
    if row.list != NetworkList::Deny && !closed.is_empty() {
        let what = format!("removed {} from {}", row.cidr, row.list);
        crate::lockout::remember(&mut tx, now, &what, actor.name, rows, closed).await?;
    }
    store::networks::remove(&mut tx, id).await?;
    let detail = format!("{}: {}", row.list, row.cidr);
    store::changes::record(&mut tx, store::changes::kind::ACCESS, "networks", now).await?;
    store::audit::record(&mut tx, now, actor.name, actor.client_ip, "network removed", &detail).await?;
    tx.commit().await?;
    Ok(())
}

/// Sets the services closed to all but the allow lists. Closing the panel from an
/// address that is not trusted needs confirming; newly closed services can be put back.
pub async fn set_closed(
    store: &Store,
    actor: &Actor<'_>,
    configured: &TrustedNetworks,
    wanted: &[ClosableService],
    confirmed: bool,
    now: UnixMs,
) -> Result<(), ActionError> {
    let mut tx = store.begin().await?;
    let before = store::settings::closed_services(&mut tx).await?;
    let trusted = configured.with(store::networks::trusted_nets(&mut tx).await?);
    let own = own_address(actor);
    if wanted.contains(&ClosableService::Panel) && !own.is_some_and(|ip| trusted.contains(ip)) && !confirmed {
        return Err(ActionError::NeedsConfirmation(format!(
            "Closing the panel's port would shut out your address {}. Tick the box to do it anyway.",
            actor.client_ip.unwrap_or("(unknown)")
        )));
    }
    let narrowing: Vec<&str> = wanted.iter().filter(|s| !before.contains(s)).map(|s| s.as_str()).collect();
    if !narrowing.is_empty() {
        let what = format!("closed mode for {}", narrowing.join(", "));
        let rows = store::networks::editable(&mut tx).await?;
        crate::lockout::remember(&mut tx, now, &what, actor.name, rows, before.clone()).await?;
    }
    store::settings::set_closed_services(&mut tx, wanted).await?;
    let names: Vec<&str> = wanted.iter().map(|s| s.as_str()).collect();
    let detail =
        if wanted.is_empty() { "open mode".to_string() } else { format!("closed: {}", names.join(", ")) };
    store::changes::record(&mut tx, store::changes::kind::ACCESS, "networks", now).await?;
    store::audit::record(&mut tx, now, actor.name, actor.client_ip, "closed mode", &detail).await?;
    tx.commit().await?;
    Ok(())
}

/// Keeps the change the lockout guard would otherwise put back.
pub async fn keep(store: &Store, actor: &Actor<'_>, now: UnixMs) -> Result<(), ActionError> {
    let mut tx = store.begin().await?;
    if let Some(what) = crate::lockout::keep(&mut tx).await? {
        store::audit::record(&mut tx, now, actor.name, actor.client_ip, "kept", &what).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Puts back the lists as they were before the pending change; whether there was one.
pub async fn revert(store: &Store, actor: &Actor<'_>, now: UnixMs) -> Result<bool, ActionError> {
    Ok(crate::lockout::revert(store, actor.name, actor.client_ip, now).await?)
}

/// Trusts a network from now on.
pub async fn trust(
    store: &Store,
    actor: &Actor<'_>,
    net: IpNet,
    label: &str,
    now: UnixMs,
) -> Result<(), ActionError> {
    let mut tx = store.begin().await?;
    store::networks::add(
        &mut tx,
        crate::domain::NetworkList::Trusted,
        &net.to_string(),
        label,
        actor.name,
        now,
    )
    .await?;
    store::changes::record(&mut tx, store::changes::kind::ACCESS, "networks", now).await?;
    store::audit::record(&mut tx, now, actor.name, actor.client_ip, "trust", &format!("{net} ({label})"))
        .await?;
    tx.commit().await?;
    Ok(())
}

/// Removes a trusted network (one the panel added).
pub async fn untrust(store: &Store, actor: &Actor<'_>, id: i64, now: UnixMs) -> Result<(), ActionError> {
    let mut tx = store.begin().await?;
    if let Some(row) = store::networks::remove_trusted(&mut tx, id).await? {
        store::changes::record(&mut tx, store::changes::kind::ACCESS, "networks", now).await?;
        store::audit::record(&mut tx, now, actor.name, actor.client_ip, "untrust", &row.cidr).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Ends every active ban of one address and trusts it from now on, in one transaction.
/// A prefix is never trusted as a whole: one wrong ban of it would trust its attackers.
pub async fn release_and_trust(
    store: &Store,
    actor: &Actor<'_>,
    target: &str,
    now: UnixMs,
) -> Result<IpNet, ActionError> {
    let net = crate::domain::network::parse_ban_target(target)
        .ok_or_else(|| ActionError::Refused(format!("{target} is no address")))?;
    if net.prefix_len() < net.max_prefix_len() {
        return Err(ActionError::Refused(format!(
            "{net} is a prefix: it is not trusted as a whole. Release it instead."
        )));
    }
    let mut tx = store.begin().await?;
    if store::bans::release_ip(&mut tx, target, now, actor.name).await? > 0 {
        store::audit::record(&mut tx, now, actor.name, actor.client_ip, "release", target).await?;
    }
    let label = format!("released and trusted by {}", actor.name);
    store::networks::add(
        &mut tx,
        crate::domain::NetworkList::Trusted,
        &net.to_string(),
        &label,
        actor.name,
        now,
    )
    .await?;
    store::changes::record(&mut tx, store::changes::kind::ACCESS, "networks", now).await?;
    store::audit::record(&mut tx, now, actor.name, actor.client_ip, "trust", &net.to_string()).await?;
    tx.commit().await?;
    Ok(net)
}

/// One PJSIP endpoint or chan_sip peer and the part it plays in the rendered ACLs.
pub struct Assignment<'a> {
    pub tech: &'a str,
    pub name: &'a str,
    pub role: &'a str,
    pub trunk: &'a str,
}

/// Saves which endpoints are extensions and which are trunks (and whose).
pub async fn set_targets(
    store: &Store,
    actor: &Actor<'_>,
    assignments: &[Assignment<'_>],
    now: UnixMs,
) -> Result<(), ActionError> {
    let mut tx = store.begin().await?;
    for a in assignments {
        if !["pjsip", "sip"].contains(&a.tech) || !["extension", "trunk", "ignore"].contains(&a.role) {
            return Err(ActionError::Refused(format!("unknown role {:?} for {}", a.role, a.name)));
        }
        let trunk = match (a.role, a.trunk.trim()) {
            ("trunk", "") => a.name,
            ("trunk", t) => t,
            _ => "",
        };
        store::targets::set(&mut tx, a.name, a.tech, a.role, trunk).await?;
    }
    let detail = "extensions and trunks assigned";
    store::audit::record(&mut tx, now, actor.name, actor.client_ip, "acl targets", detail).await?;
    tx.commit().await?;
    Ok(())
}

/// Records what writing the Asterisk ACLs did (`Ok`: what was written; `Err`: why not).
pub async fn acl_applied(
    store: &Store,
    actor: &Actor<'_>,
    outcome: Result<&str, &str>,
    now: UnixMs,
) -> Result<(), ActionError> {
    let mut conn = store.acquire().await?;
    let (action, detail) = match outcome {
        Ok(d) => ("asterisk acl applied", d),
        Err(e) => ("asterisk acl failed", e),
    };
    store::audit::record(&mut conn, now, actor.name, actor.client_ip, action, detail).await?;
    Ok(())
}
