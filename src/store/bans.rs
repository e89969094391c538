use sqlx::FromRow;

use super::{Conn, Result};
use crate::domain::UnixMs;

#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct BanRow {
    pub id: i64,
    pub ip: String,
    pub reason: String,
    pub rung: i64,
    pub created_at: i64,
    pub until_at: Option<i64>,
    pub released_at: Option<i64>,
    pub released_by: Option<String>,
}

const COLUMNS: &str = "id, ip, reason, rung, created_at, until_at, released_at, released_by";

pub struct NewBan<'a> {
    pub ip: &'a str,
    pub reason: &'a str,
    pub rung: i64,
    pub created_at: UnixMs,
    pub until_at: Option<UnixMs>,
}

pub async fn insert(conn: &mut Conn, b: &NewBan<'_>) -> Result<i64> {
    let id: (i64,) = sqlx::query_as(
        "INSERT INTO bans (ip, reason, rung, created_at, until_at) VALUES ($1, $2, $3, $4, $5) RETURNING id",
    )
    .bind(b.ip)
    .bind(b.reason)
    .bind(b.rung)
    .bind(b.created_at)
    .bind(b.until_at)
    .fetch_one(conn)
    .await?;
    Ok(id.0)
}

/// The ban in force for `ip` at `now` that lasts longest, if any.
pub async fn active_for(conn: &mut Conn, ip: &str, now: UnixMs) -> Result<Option<BanRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM bans WHERE ip = $1 AND released_at IS NULL \
         AND (until_at IS NULL OR until_at > $2) \
         ORDER BY CASE WHEN until_at IS NULL THEN 1 ELSE 0 END DESC, until_at DESC LIMIT 1"
    ))
    .bind(ip)
    .bind(now)
    .fetch_optional(conn)
    .await?)
}

/// Timed bans created for `ip` after `since`, released or not.
pub async fn timed_since(conn: &mut Conn, ip: &str, since: UnixMs) -> Result<u32> {
    let n: (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM bans WHERE ip = $1 AND created_at > $2 AND until_at IS NOT NULL AND rung > 0",
    )
    .bind(ip)
    .bind(since)
    .fetch_one(conn)
    .await?;
    Ok(n.0 as u32)
}

pub async fn active(conn: &mut Conn, now: UnixMs) -> Result<Vec<BanRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM bans WHERE released_at IS NULL AND (until_at IS NULL OR until_at > $1) \
         ORDER BY created_at, id"
    ))
    .bind(now)
    .fetch_all(conn)
    .await?)
}

/// Ends every active ban of `ip`; returns how many there were.
pub async fn release_ip(conn: &mut Conn, ip: &str, now: UnixMs, by: &str) -> Result<u64> {
    let done = sqlx::query(
        "UPDATE bans SET released_at = $1, released_by = $2 WHERE ip = $3 AND released_at IS NULL \
         AND (until_at IS NULL OR until_at > $1)",
    )
    .bind(now)
    .bind(by)
    .bind(ip)
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

/// Marks older bans of `ip` as replaced by a stronger one (they stay as history).
pub async fn supersede(conn: &mut Conn, ip: &str, keep_id: i64, now: UnixMs) -> Result<()> {
    sqlx::query(
        "UPDATE bans SET released_at = $1, released_by = 'escalated' WHERE ip = $2 AND id <> $3 \
         AND released_at IS NULL AND (until_at IS NULL OR until_at > $1)",
    )
    .bind(now)
    .bind(ip)
    .bind(keep_id)
    .execute(conn)
    .await?;
    Ok(())
}
