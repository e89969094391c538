use sqlx::FromRow;

use super::{Conn, Result};
use crate::domain::UnixMs;

/// Raw lines are evidence, but bounded: an attacker must not fill the disk.
pub const RAW_LIMIT: usize = 2048;
pub const ACCOUNT_LIMIT: usize = 256;

#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct FailureRow {
    pub id: i64,
    pub at: i64,
    pub ip: Option<String>,
    pub service: String,
    pub account: Option<String>,
    pub kind: String,
    pub source: String,
    pub raw: String,
    pub tampered: bool,
    pub verdict: String,
}

#[derive(Debug, Clone)]
pub struct NewFailure<'a> {
    pub at: UnixMs,
    pub ip: Option<String>,
    pub service: &'a str,
    pub account: Option<&'a str>,
    pub kind: &'a str,
    pub source: &'a str,
    pub raw: &'a str,
    pub tampered: bool,
    pub verdict: &'a str,
}

fn truncate(s: &str, limit: usize) -> &str {
    if s.len() <= limit {
        return s;
    }
    let mut end = limit;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

pub async fn insert(conn: &mut Conn, f: &NewFailure<'_>) -> Result<i64> {
    let id: (i64,) = sqlx::query_as(
        "INSERT INTO failures (at, ip, service, account, kind, source, raw, tampered, verdict) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
    )
    .bind(f.at)
    .bind(&f.ip)
    .bind(f.service)
    .bind(f.account.map(|a| truncate(a, ACCOUNT_LIMIT)))
    .bind(f.kind)
    .bind(f.source)
    .bind(truncate(f.raw, RAW_LIMIT))
    .bind(f.tampered)
    .bind(f.verdict)
    .fetch_one(conn)
    .await?;
    Ok(id.0)
}

/// Attributed failures of `ip` at or after `since`.
pub async fn count_since(conn: &mut Conn, ip: &str, since: UnixMs) -> Result<u32> {
    let n: (i64,) = sqlx::query_as("SELECT COUNT(*) FROM failures WHERE ip = $1 AND at > $2")
        .bind(ip)
        .bind(since)
        .fetch_one(conn)
        .await?;
    Ok(n.0 as u32)
}

pub async fn count_by_ip(conn: &mut Conn) -> Result<Vec<(String, i64)>> {
    Ok(sqlx::query_as("SELECT ip, COUNT(*) FROM failures WHERE ip IS NOT NULL GROUP BY ip ORDER BY ip")
        .fetch_all(conn)
        .await?)
}

pub async fn count_tampered(conn: &mut Conn) -> Result<i64> {
    let n: (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM failures WHERE tampered = 1").fetch_one(conn).await?;
    Ok(n.0)
}

pub async fn recent(conn: &mut Conn, limit: i64) -> Result<Vec<FailureRow>> {
    Ok(sqlx::query_as(
        "SELECT id, at, ip, service, account, kind, source, raw, tampered, verdict \
         FROM failures ORDER BY at DESC, id DESC LIMIT $1",
    )
    .bind(limit)
    .fetch_all(conn)
    .await?)
}

/// Attributed failures at or after `since`, all addresses.
pub async fn count_all_since(conn: &mut Conn, since: UnixMs) -> Result<i64> {
    let n: (i64,) = sqlx::query_as("SELECT COUNT(*) FROM failures WHERE ip IS NOT NULL AND at > $1")
        .bind(since)
        .fetch_one(conn)
        .await?;
    Ok(n.0)
}
