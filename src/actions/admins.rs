//! The panel's accounts: the first one created, others added, removed, their role or
//! password changed, logins and logouts (each with its audit row). An address an
//! account logs in from is never banned: it is remembered in the admin list and any
//! ban of it ends.

use std::net::IpAddr;

use argon2::Argon2;
use argon2::password_hash::PasswordHasher;

use super::{ActionError, Actor};
use crate::domain::{NetworkList, Role, UnixMs};
use crate::store::{self, Store};

/// The one way a password is hashed (argon2id, a fresh salt). Slow on purpose: call it
/// off the async threads.
pub fn hash_password(password: &str) -> Result<String, ActionError> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| ActionError::Refused(format!("the password could not be hashed: {e}")))
}

/// A password for an account reset from the command line: 16 letters and digits
/// (about 95 bits), without look-alikes such as 0/O and 1/l.
pub fn random_password() -> String {
    use rand::Rng;
    const READABLE: &[u8] = b"abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = rand::rng();
    (0..16).map(|_| READABLE[rng.random_range(0..READABLE.len())] as char).collect()
}

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
    tx.commit().await?;
    Ok(Some(id))
}

/// The admin's own new password; returns its change time, which the admin's own
/// session keeps (the others end).
pub async fn change_password(
    store: &Store,
    actor: &Actor<'_>,
    admin_id: i64,
    password_hash: &str,
    now: UnixMs,
) -> Result<i64, ActionError> {
    let mut tx = store.begin().await?;
    let changed_at = store::admins::set_password(&mut tx, admin_id, password_hash, now).await?;
    store::audit::record(&mut tx, now, actor.name, actor.client_ip, "password changed", "").await?;
    tx.commit().await?;
    Ok(changed_at)
}

/// A login refused (`actor.name` is the name that was tried).
pub async fn login_failed(store: &Store, actor: &Actor<'_>, now: UnixMs) -> Result<(), ActionError> {
    let mut conn = store.acquire().await?;
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
    tx.commit().await?;
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
    tx.commit().await?;
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
    if !store::networks::add(tx, NetworkList::Admin, &net, &label, name, now).await? {
        return Ok(false);
    }
    store::bans::release_ip(tx, &ip.to_string(), now, name).await?;
    Ok(true)
}

pub async fn logged_out(store: &Store, actor: &Actor<'_>, now: UnixMs) -> Result<(), ActionError> {
    let mut conn = store.acquire().await?;
    store::audit::record(&mut conn, now, actor.name, actor.client_ip, "logout", "").await?;
    Ok(())
}

/// Another panel account. Refused when the name is taken.
pub async fn add_account(
    store: &Store,
    actor: &Actor<'_>,
    username: &str,
    password_hash: &str,
    role: Role,
    now: UnixMs,
) -> Result<i64, ActionError> {
    let mut tx = store.begin().await?;
    let Some(id) = store::admins::create(&mut tx, username, password_hash, role, now).await? else {
        return Err(ActionError::Refused(format!("There is already an account named {username}.")));
    };
    let detail = format!("{username} ({role})");
    store::audit::record(&mut tx, now, actor.name, actor.client_ip, "account added", &detail).await?;
    tx.commit().await?;
    Ok(id)
}

/// Removes an account: its sessions end at their next request, and the addresses only
/// it logged in from are no longer exempt from bans. Nobody removes their own account
/// or the last admin.
pub async fn remove_account(
    store: &Store,
    actor: &Actor<'_>,
    id: i64,
    now: UnixMs,
) -> Result<(), ActionError> {
    let mut tx = store.begin().await?;
    let account = store::admins::by_id(&mut tx, id).await?.ok_or(ActionError::NotFound)?;
    if account.username == actor.name {
        return Err(ActionError::Refused("You cannot remove your own account.".into()));
    }
    if !store::admins::remove(&mut tx, id).await? {
        return Err(ActionError::Refused(LAST_ADMIN.into()));
    }
    let still_used = store::audit::login_addresses_of_accounts(&mut tx).await?;
    for row in store::networks::in_list(&mut tx, NetworkList::Admin).await? {
        let address = row.cidr.parse::<ipnet::IpNet>().map(|n| n.addr().to_string()).unwrap_or_default();
        if row.created_by == account.username && !still_used.contains(&address) {
            store::networks::remove(&mut tx, row.id).await?;
        }
    }
    store::audit::record(&mut tx, now, actor.name, actor.client_ip, "account removed", &account.username)
        .await?;
    tx.commit().await?;
    Ok(())
}

const LAST_ADMIN: &str = "At least one account must keep the admin role.";

/// Gives an account a new role (at once: roles are read on every request).
pub async fn set_role(
    store: &Store,
    actor: &Actor<'_>,
    id: i64,
    role: Role,
    now: UnixMs,
) -> Result<(), ActionError> {
    let mut tx = store.begin().await?;
    let account = store::admins::by_id(&mut tx, id).await?.ok_or(ActionError::NotFound)?;
    if !store::admins::set_role(&mut tx, id, role).await? {
        return Err(ActionError::Refused(LAST_ADMIN.into()));
    }
    let detail = format!("{} is now {role}", account.username);
    store::audit::record(&mut tx, now, actor.name, actor.client_ip, "role changed", &detail).await?;
    tx.commit().await?;
    Ok(())
}

/// Sets another account's password (a forgotten one): its sessions end.
pub async fn reset_password(
    store: &Store,
    actor: &Actor<'_>,
    id: i64,
    password_hash: &str,
    now: UnixMs,
) -> Result<String, ActionError> {
    let mut tx = store.begin().await?;
    let account = store::admins::by_id(&mut tx, id).await?.ok_or(ActionError::NotFound)?;
    store::admins::set_password(&mut tx, id, password_hash, now).await?;
    let detail = format!("for {}", account.username);
    store::audit::record(&mut tx, now, actor.name, actor.client_ip, "password reset", &detail).await?;
    tx.commit().await?;
    Ok(account.username)
}
