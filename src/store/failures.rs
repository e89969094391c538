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
    /// The node (PBX) whose logs held it.
    pub node: String,
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
    let node = conn.node().to_owned();
    let id: (i64,) = on!(conn, |c| sqlx::query_as(
        "INSERT INTO failures (at, ip, service, account, kind, source, raw, tampered, verdict, node) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id",
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
    .bind(&node)
    .fetch_one(&mut *c)
    .await)?;
    Ok(id.0)
}

/// Failures of each of `ips` after `recent` and after `older` (`older` < `recent`).
pub async fn counts_since_many(
    conn: &mut Conn,
    ips: &[String],
    recent: UnixMs,
    older: UnixMs,
) -> Result<std::collections::HashMap<String, (u32, u32)>> {
    on!(conn, |c| {
        use sqlx::Row;
        let mut out = std::collections::HashMap::new();
        for chunk in super::fixed_chunks(ips) {
            let mut q = sqlx::QueryBuilder::new("SELECT ip, SUM(CASE WHEN at > ");
            q.push_bind(recent).push(" THEN 1 ELSE 0 END), COUNT(*) FROM failures WHERE");
            super::push_in_list(&mut q, "ip", chunk);
            q.push(" AND at > ").push_bind(older).push(" GROUP BY ip");
            for row in q.build().fetch_all(&mut *c).await? {
                let (recent, older): (Option<i64>, i64) = (row.try_get(1)?, row.try_get(2)?);
                out.insert(row.try_get(0)?, (recent.unwrap_or(0) as u32, older as u32));
            }
        }
        Ok(out)
    })
}

pub async fn count_by_ip(conn: &mut Conn) -> Result<Vec<(String, i64)>> {
    Ok(on!(conn, |c| sqlx::query_as(
        "SELECT ip, COUNT(*) FROM failures WHERE ip IS NOT NULL GROUP BY ip ORDER BY ip"
    )
    .fetch_all(&mut *c)
    .await)?)
}

/// Failures stored after `since`, counted up to `cap` (an attack at full speed must not
/// make the dashboard slow).
pub async fn count_since(conn: &mut Conn, since: UnixMs, cap: i64) -> Result<i64> {
    let n: (i64,) = on!(conn, |c| sqlx::query_as(
        "SELECT COUNT(*) FROM (SELECT 1 FROM failures WHERE at > $1 LIMIT $2) AS recent"
    )
    .bind(since)
    .bind(cap)
    .fetch_one(&mut *c)
    .await)?;
    Ok(n.0)
}

/// [`count_since`] for the failures one node stored.
pub async fn count_on_node_since(conn: &mut Conn, node: &str, since: UnixMs, cap: i64) -> Result<i64> {
    Ok(on!(conn, |c| sqlx::query_scalar(
        "SELECT COUNT(*) FROM (SELECT 1 FROM failures WHERE node = $1 AND at > $2 LIMIT $3) AS recent"
    )
    .bind(node)
    .bind(since)
    .bind(cap)
    .fetch_one(&mut *c)
    .await)?)
}

pub async fn recent(conn: &mut Conn, limit: i64) -> Result<Vec<FailureRow>> {
    Ok(on!(conn, |c| sqlx::query_as(
        "SELECT id, at, ip, service, account, kind, source, raw, tampered, verdict, node \
         FROM failures ORDER BY at DESC, id DESC LIMIT $1",
    )
    .bind(limit)
    .fetch_all(&mut *c)
    .await)?)
}

/// An address's failures from `from` to `to`, oldest first: (time, account, kind).
pub async fn from_address(
    conn: &mut Conn,
    ip: &str,
    from: UnixMs,
    to: UnixMs,
) -> Result<Vec<(UnixMs, Option<String>, String)>> {
    Ok(on!(conn, |c| {
        sqlx::query_as(
        "SELECT at, account, kind FROM failures WHERE ip = $1 AND at >= $2 AND at <= $3 ORDER BY at, id LIMIT 1000",
    )
    .bind(ip)
    .bind(from)
    .bind(to)
    .fetch_all(&mut *c).await
    })?)
}

/// Attributed failures at or after `since`, all addresses.
pub async fn count_all_since(conn: &mut Conn, since: UnixMs) -> Result<i64> {
    let n: (i64,) =
        on!(conn, |c| sqlx::query_as("SELECT COUNT(*) FROM failures WHERE ip IS NOT NULL AND at > $1")
            .bind(since)
            .fetch_one(&mut *c)
            .await)?;
    Ok(n.0)
}

/// Filters of the failed-auth log; every field optional.
#[derive(Debug, Clone, Default)]
pub struct Search {
    pub since: Option<UnixMs>,
    pub until: Option<UnixMs>,
    pub ip: Option<String>,
    pub account: Option<String>,
    pub service: Option<String>,
    pub node: Option<String>,
    /// Only these addresses (a country's): `Some(empty)` finds nothing.
    pub ips: Option<Vec<String>>,
    /// Rows before this id only (paging backwards in time).
    pub before_id: Option<i64>,
    pub limit: i64,
}

pub async fn search(conn: &mut Conn, s: &Search) -> Result<Vec<FailureRow>> {
    let Some(ips) = &s.ips else { return search_among(conn, s, None).await };
    // The newest of each chunk of addresses, then the newest of those.
    let mut rows = Vec::new();
    for chunk in super::fixed_chunks(ips) {
        rows.extend(search_among(conn, s, Some(chunk)).await?);
    }
    rows.sort_unstable_by_key(|r| std::cmp::Reverse(r.id));
    rows.truncate(usize::try_from(s.limit).unwrap_or(0));
    Ok(rows)
}

async fn search_among(conn: &mut Conn, s: &Search, ips: Option<&[String]>) -> Result<Vec<FailureRow>> {
    on!(conn, |c| {
        let mut q = sqlx::QueryBuilder::new(
            "SELECT id, at, ip, service, account, kind, source, raw, tampered, verdict, node FROM failures WHERE 1 = 1",
        );
        if let Some(v) = s.since {
            q.push(" AND at >= ").push_bind(v);
        }
        if let Some(v) = s.until {
            q.push(" AND at < ").push_bind(v);
        }
        if let Some(v) = &s.ip {
            q.push(" AND ip = ").push_bind(v.clone());
        }
        if let Some(ips) = ips {
            q.push(" AND");
            super::push_in_list(&mut q, "ip", ips);
        }
        if let Some(v) = &s.account {
            q.push(" AND account = ").push_bind(v.clone());
        }
        if let Some(v) = &s.service {
            q.push(" AND service = ").push_bind(v.clone());
        }
        if let Some(v) = &s.node {
            q.push(" AND node = ").push_bind(v.clone());
        }
        if let Some(v) = s.before_id {
            q.push(" AND id < ").push_bind(v);
        }
        q.push(" ORDER BY id DESC LIMIT ").push_bind(s.limit);
        Ok(q.build_query_as().fetch_all(&mut *c).await?)
    })
}

/// A failure waiting in memory for its transaction's batch insert.
#[derive(Debug, Clone)]
pub struct Pending {
    pub at: UnixMs,
    pub ip: Option<String>,
    pub service: &'static str,
    pub account: Option<String>,
    pub kind: &'static str,
    pub raw: String,
    pub tampered: bool,
    pub verdict: String,
}

/// Inserts many failures of one source with few statements.
pub async fn insert_many(conn: &mut Conn, source: &str, rows: &[Pending]) -> Result<()> {
    let node = conn.node().to_owned();
    on!(conn, |c| {
        // 10 values a row, well under SQLite's limit on bound values per statement.
        for chunk in super::fixed_chunks(rows) {
            let mut q = sqlx::QueryBuilder::new(
                "INSERT INTO failures (at, ip, service, account, kind, source, raw, tampered, verdict, node) ",
            );
            q.push_values(chunk, |mut b, f| {
                b.push_bind(f.at)
                    .push_bind(f.ip.clone())
                    .push_bind(f.service)
                    .push_bind(f.account.as_deref().map(|a| truncate(a, ACCOUNT_LIMIT).to_string()))
                    .push_bind(f.kind)
                    .push_bind(source.to_string())
                    .push_bind(truncate(&f.raw, RAW_LIMIT).to_string())
                    .push_bind(f.tampered)
                    .push_bind(f.verdict.clone())
                    .push_bind(node.clone());
            });
            q.build().execute(&mut *c).await?;
        }
        Ok(())
    })
}
