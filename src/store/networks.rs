use sqlx::FromRow;

use super::{Conn, Result};
use crate::domain::{NetworkList, UnixMs};

#[derive(Debug, Clone, PartialEq, Eq, FromRow, serde::Serialize, serde::Deserialize)]
pub struct NetworkRow {
    pub id: i64,
    #[sqlx(try_from = "String")]
    pub list: NetworkList,
    pub cidr: String,
    pub label: String,
    pub created_at: i64,
    pub created_by: String,
    pub trunk: String,
    pub expires_at: Option<i64>,
    pub host: Option<String>,
    pub resolved_at: Option<i64>,
}

const ROW: &str = "id, list, cidr, label, created_at, created_by, trunk, expires_at, host, resolved_at";

pub async fn in_list(conn: &mut Conn, list: NetworkList) -> Result<Vec<NetworkRow>> {
    Ok(on!(conn, |c| sqlx::query_as(&format!(
        "SELECT {ROW} FROM networks WHERE list = $1 ORDER BY trunk, cidr"
    ))
    .bind(list.as_str())
    .fetch_all(&mut *c)
    .await)?)
}

/// Adds `cidr` to `list`; an entry already there keeps its label. Returns whether it was new.
pub async fn add(
    conn: &mut Conn,
    list: NetworkList,
    cidr: &str,
    label: &str,
    by: &str,
    now: UnixMs,
) -> Result<bool> {
    let done = on!(conn, |c| sqlx::query(
        "INSERT INTO networks (list, cidr, label, created_at, created_by) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (list, cidr) DO NOTHING",
    )
    .bind(list.as_str())
    .bind(cidr)
    .bind(label)
    .bind(now)
    .bind(by)
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(done == 1)
}

pub async fn remove(conn: &mut Conn, id: i64) -> Result<Option<NetworkRow>> {
    let row: Option<NetworkRow> =
        on!(conn, |c| sqlx::query_as(&format!("DELETE FROM networks WHERE id = $1 RETURNING {ROW}"))
            .bind(id)
            .fetch_optional(&mut *c)
            .await)?;
    on!(conn, |c| sqlx::query("DELETE FROM resolved_addresses WHERE network_id = $1")
        .bind(id)
        .execute(&mut *c)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(row)
}

/// [`remove`], only when the entry is on the trusted or the admin list: the others go
/// through the networks page and its lockout guard.
pub async fn remove_trusted(conn: &mut Conn, id: i64) -> Result<Option<NetworkRow>> {
    let list: Option<String> = on!(conn, |c| sqlx::query_scalar("SELECT list FROM networks WHERE id = $1")
        .bind(id)
        .fetch_optional(&mut *c)
        .await)?;
    match list.as_deref().and_then(NetworkList::parse) {
        Some(NetworkList::Trusted | NetworkList::Admin) => remove(conn, id).await,
        _ => Ok(None),
    }
}

/// The trusted networks added from the panel and the admins' login addresses, parsed (a row that no longer parses is skipped).
pub async fn trusted_nets(conn: &mut Conn) -> Result<Vec<ipnet::IpNet>> {
    let rows: Vec<(String,)> =
        on!(conn, |c| sqlx::query_as("SELECT cidr FROM networks WHERE list IN ($1, $2)")
            .bind(NetworkList::Trusted.as_str())
            .bind(NetworkList::Admin.as_str())
            .fetch_all(&mut *c)
            .await)?;
    Ok(rows.into_iter().filter_map(|(c,)| c.parse().ok()).collect())
}

/// The networks of `list` in force at `now` (entries past their expiry are left out).
pub async fn nets(conn: &mut Conn, list: NetworkList, now: UnixMs) -> Result<Vec<ipnet::IpNet>> {
    let rows: Vec<(String,)> = on!(conn, |c| sqlx::query_as(
        "SELECT cidr FROM networks WHERE list = $1 AND (expires_at IS NULL OR expires_at > $2)",
    )
    .bind(list.as_str())
    .bind(now)
    .fetch_all(&mut *c)
    .await)?;
    Ok(rows.into_iter().filter_map(|(c,)| c.parse().ok()).collect())
}

/// Trunk name → its provider's networks in force at `now`.
pub async fn trunk_nets(conn: &mut Conn, now: UnixMs) -> Result<Vec<(String, ipnet::IpNet)>> {
    let rows: Vec<(String, String)> = on!(conn, |c| {
        sqlx::query_as(
        "SELECT trunk, cidr FROM networks WHERE list = $1 AND host IS NULL AND (expires_at IS NULL OR expires_at > $2) \
         UNION SELECT n.trunk, r.address FROM resolved_addresses r JOIN networks n ON n.id = r.network_id \
         WHERE n.list = $1 AND (n.expires_at IS NULL OR n.expires_at > $2) ORDER BY 1, 2",
    )
    .bind(NetworkList::Trunk.as_str())
    .bind(now)
    .fetch_all(&mut *c).await
    })?;
    Ok(rows.into_iter().filter_map(|(t, c)| parse_net(&c).map(|n| (t, n))).collect())
}

fn parse_net(text: &str) -> Option<ipnet::IpNet> {
    text.parse().ok().or_else(|| text.parse::<std::net::IpAddr>().ok().map(ipnet::IpNet::from))
}

/// A network entry as the panel adds it: a CIDR, or a host name resolved later.
pub struct NewEntry<'a> {
    pub list: NetworkList,
    pub cidr: String,
    pub label: &'a str,
    pub trunk: &'a str,
    pub expires_at: Option<UnixMs>,
    pub host: Option<&'a str>,
}

pub async fn add_entry(conn: &mut Conn, e: &NewEntry<'_>, by: &str, now: UnixMs) -> Result<bool> {
    let done = on!(conn, |c| sqlx::query(
        "INSERT INTO networks (list, cidr, label, created_at, created_by, trunk, expires_at, host) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (list, cidr) DO NOTHING",
    )
    .bind(e.list.as_str())
    .bind(&e.cidr)
    .bind(e.label)
    .bind(now)
    .bind(by)
    .bind(e.trunk)
    .bind(e.expires_at)
    .bind(e.host)
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(done == 1)
}

/// Every entry of the lists an admin edits (not the automatic admin addresses).
pub async fn editable(conn: &mut Conn) -> Result<Vec<NetworkRow>> {
    Ok(on!(conn, |c| sqlx::query_as(&format!(
        "SELECT {ROW} FROM networks WHERE list <> $1 ORDER BY list, trunk, cidr"
    ))
    .bind(NetworkList::Admin.as_str())
    .fetch_all(&mut *c)
    .await)?)
}

/// Puts the editable lists back as they were in `rows` (a change being reverted).
pub async fn restore(conn: &mut Conn, rows: &[NetworkRow]) -> Result<()> {
    on!(conn, |c| sqlx::query("DELETE FROM networks WHERE list <> $1")
        .bind(NetworkList::Admin.as_str())
        .execute(&mut *c)
        .await
        .map(|r| r.rows_affected()))?;
    for r in rows {
        on!(conn, |c| sqlx::query(&format!(
            "INSERT INTO networks ({ROW}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
        ))
        .bind(r.id)
        .bind(r.list.as_str())
        .bind(&r.cidr)
        .bind(&r.label)
        .bind(r.created_at)
        .bind(&r.created_by)
        .bind(&r.trunk)
        .bind(r.expires_at)
        .bind(&r.host)
        .bind(r.resolved_at)
        .execute(&mut *c)
        .await
        .map(|r| r.rows_affected()))?;
    }
    if conn.is_postgres() {
        // Rows put back with their ids: the id sequence moves past them.
        on!(conn, |c| {
            sqlx::query(
            "SELECT setval(pg_get_serial_sequence('networks', 'id'), GREATEST((SELECT MAX(id) FROM networks), 1))"
        )
        .execute(&mut *c)
        .await
        .map(|r| r.rows_affected())
        })?;
    }
    Ok(())
}

/// Host-name entries, to resolve.
pub async fn hosts(conn: &mut Conn) -> Result<Vec<(i64, String)>> {
    Ok(on!(conn, |c| sqlx::query_as("SELECT id, host FROM networks WHERE host IS NOT NULL")
        .fetch_all(&mut *c)
        .await)?)
}

pub async fn set_resolution(conn: &mut Conn, id: i64, addresses: &[String], now: UnixMs) -> Result<()> {
    on!(conn, |c| sqlx::query("DELETE FROM resolved_addresses WHERE network_id = $1")
        .bind(id)
        .execute(&mut *c)
        .await
        .map(|r| r.rows_affected()))?;
    for a in addresses {
        on!(conn, |c| sqlx::query(
            "INSERT INTO resolved_addresses (network_id, address) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        )
        .bind(id)
        .bind(a)
        .execute(&mut *c)
        .await
        .map(|r| r.rows_affected()))?;
    }
    on!(conn, |c| sqlx::query("UPDATE networks SET resolved_at = $1 WHERE id = $2")
        .bind(now)
        .bind(id)
        .execute(&mut *c)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(())
}

pub async fn resolution(conn: &mut Conn, id: i64) -> Result<Vec<String>> {
    let rows: Vec<(String,)> = on!(conn, |c| sqlx::query_as(
        "SELECT address FROM resolved_addresses WHERE network_id = $1 ORDER BY address"
    )
    .bind(id)
    .fetch_all(&mut *c)
    .await)?;
    Ok(rows.into_iter().map(|r| r.0).collect())
}
