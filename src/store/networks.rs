use sqlx::FromRow;

use super::{Conn, Result};
use crate::domain::UnixMs;

pub const TRUSTED: &str = "trusted";
/// Addresses an admin logged in to the panel from: never banned, so the panel cannot lock its admin out.
pub const ADMIN: &str = "admin";

#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct NetworkRow {
    pub id: i64,
    pub list: String,
    pub cidr: String,
    pub label: String,
    pub created_at: i64,
    pub created_by: String,
}

pub async fn in_list(conn: &mut Conn, list: &str) -> Result<Vec<NetworkRow>> {
    Ok(sqlx::query_as(
        "SELECT id, list, cidr, label, created_at, created_by FROM networks WHERE list = $1 ORDER BY cidr",
    )
    .bind(list)
    .fetch_all(conn)
    .await?)
}

/// Adds `cidr` to `list`; an entry already there keeps its label. Returns whether it was new.
pub async fn add(
    conn: &mut Conn,
    list: &str,
    cidr: &str,
    label: &str,
    by: &str,
    now: UnixMs,
) -> Result<bool> {
    let done = sqlx::query(
        "INSERT INTO networks (list, cidr, label, created_at, created_by) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (list, cidr) DO NOTHING",
    )
    .bind(list)
    .bind(cidr)
    .bind(label)
    .bind(now)
    .bind(by)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn remove(conn: &mut Conn, id: i64) -> Result<Option<NetworkRow>> {
    Ok(sqlx::query_as(
        "DELETE FROM networks WHERE id = $1 RETURNING id, list, cidr, label, created_at, created_by",
    )
    .bind(id)
    .fetch_optional(conn)
    .await?)
}

/// The trusted networks added from the panel and the admins' login addresses, parsed (a row that no longer parses is skipped).
pub async fn trusted_nets(conn: &mut Conn) -> Result<Vec<ipnet::IpNet>> {
    let rows: Vec<(String,)> =
        sqlx::query_as("SELECT cidr FROM networks WHERE list = $1").bind(TRUSTED).fetch_all(conn).await?;
    Ok(rows.into_iter().filter_map(|(c,)| c.parse().ok()).collect())
}

pub const EXTENSIONS: &str = "extensions";
pub const TRUNK: &str = "trunk";
pub const DENY: &str = "deny";

/// The networks of `list` in force at `now` (entries past their expiry are left out).
pub async fn nets(conn: &mut Conn, list: &str, now: UnixMs) -> Result<Vec<ipnet::IpNet>> {
    let rows: Vec<(String,)> = sqlx::query_as(
        "SELECT cidr FROM networks WHERE list = $1 AND (expires_at IS NULL OR expires_at > $2)",
    )
    .bind(list)
    .bind(now)
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().filter_map(|(c,)| c.parse().ok()).collect())
}

/// Trunk name → its provider's networks in force at `now`.
pub async fn trunk_nets(conn: &mut Conn, now: UnixMs) -> Result<Vec<(String, ipnet::IpNet)>> {
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT trunk, cidr FROM networks WHERE list = $1 AND (expires_at IS NULL OR expires_at > $2) ORDER BY trunk, cidr",
    )
    .bind(TRUNK)
    .bind(now)
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().filter_map(|(t, c)| c.parse().ok().map(|n| (t, n))).collect())
}

/// Adds `cidr` to a trunk provider's list.
pub async fn add_trunk(
    conn: &mut Conn,
    trunk: &str,
    cidr: &str,
    label: &str,
    by: &str,
    now: UnixMs,
) -> Result<bool> {
    let done = sqlx::query(
        "INSERT INTO networks (list, cidr, label, created_at, created_by, trunk) VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (list, cidr) DO NOTHING",
    )
    .bind(TRUNK)
    .bind(cidr)
    .bind(label)
    .bind(now)
    .bind(by)
    .bind(trunk)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}
