//! The panel's admins: the first one created, a password changed, logins and logouts
//! (each with its audit row). An address an admin logs in from is never banned: it is
//! remembered in the admin list and any ban of it ends.

use std::net::IpAddr;

use super::{ActionError, Actor};
use crate::domain::UnixMs;
use crate::store::{self, Store};

/// Creates the first admin, unless another request created one first (`None`).
pub async fn create_first(
    store: &Store,
    actor: &Actor<'_>,
    password_hash: &str,
    now: UnixMs,
) -> Result<Option<i64>, ActionError> {
    let mut tx = store.begin().await?;
    let Some(id) = store::admins::create_first(&mut tx, actor.name, password_hash, now).await? else {
        return Ok(None);
    };
    store::audit::record(&mut tx, now, actor.name, actor.client_ip, "setup", "first admin created").await?;
    tx.commit().await.map_err(store::StoreError::from)?;
    Ok(Some(id))
}

pub async fn change_password(
    store: &Store,
    actor: &Actor<'_>,
    admin_id: i64,
    password_hash: &str,
    now: UnixMs,
) -> Result<(), ActionError> {
    let mut tx = store.begin().await?;
    store::admins::set_password(&mut tx, admin_id, password_hash, now).await?;
    store::audit::record(&mut tx, now, actor.name, actor.client_ip, "password changed", "").await?;
    tx.commit().await.map_err(store::StoreError::from)?;
    Ok(())
}

/// A login refused (`actor.name` is the name that was tried).
pub async fn login_failed(store: &Store, actor: &Actor<'_>, now: UnixMs) -> Result<(), ActionError> {
    let mut conn = store.pool().acquire().await.map_err(store::StoreError::from)?;
    let detail = "wrong user name or password";
    store::audit::record(&mut conn, now, actor.name, actor.client_ip, store::audit::LOGIN_FAILED, detail)
        .await?;
    Ok(())
}

/// A login: audited, and the address made an admin address (never banned; its bans
/// end). Whether the address's bans changed, for the enforcer.
pub async fn logged_in(
    store: &Store,
    actor: &Actor<'_>,
    ip: IpAddr,
    now: UnixMs,
) -> Result<bool, ActionError> {
    let mut tx = store.begin().await?;
    store::audit::record(&mut tx, now, actor.name, actor.client_ip, "login", "").await?;
    let changed = remember_admin_address(&mut tx, actor.name, ip, now).await?;
    tx.commit().await.map_err(store::StoreError::from)?;
    Ok(changed)
}

/// The first admin's address, remembered as a login's is.
pub async fn remember_address(
    store: &Store,
    name: &str,
    ip: IpAddr,
    now: UnixMs,
) -> Result<bool, ActionError> {
    let mut tx = store.begin().await?;
    let changed = remember_admin_address(&mut tx, name, ip, now).await?;
    tx.commit().await.map_err(store::StoreError::from)?;
    Ok(changed)
}

async fn remember_admin_address(
    tx: &mut store::Conn,
    name: &str,
    ip: IpAddr,
    now: UnixMs,
) -> store::Result<bool> {
    let net = ipnet::IpNet::from(ip).to_string();
    let label = format!("panel login by {name}");
    if !store::networks::add(tx, crate::domain::NetworkList::Admin, &net, &label, name, now).await? {
        return Ok(false);
    }
    store::bans::release_ip(tx, &ip.to_string(), now, name).await?;
    Ok(true)
}

pub async fn logged_out(store: &Store, actor: &Actor<'_>, now: UnixMs) -> Result<(), ActionError> {
    let mut conn = store.pool().acquire().await.map_err(store::StoreError::from)?;
    store::audit::record(&mut conn, now, actor.name, actor.client_ip, "logout", "").await?;
    Ok(())
}
