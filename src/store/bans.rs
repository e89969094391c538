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
    pub created_by: Option<String>,
    /// The node (PBX) that decided it.
    pub node: String,
}

// `ip = … AND +released_at IS NULL`: the unary plus keeps both engines on the index
// of the address. On the index of `released_at` every ban in force matches, and a
// PostgreSQL table whose statistics are not yet gathered (after a bulk import or a
// restore) was planned as the two indexes combined: 4 ms per address, 3 s for the
// dashboard's count of 7,000 recent offenders.
const COLUMNS: &str =
    "id, ip, reason, rung, created_at, until_at, released_at, released_by, created_by, node";

pub struct NewBan<'a> {
    pub ip: &'a str,
    pub reason: &'a str,
    pub rung: i64,
    pub created_at: UnixMs,
    pub until_at: Option<UnixMs>,
}

pub async fn insert(conn: &mut Conn, b: &NewBan<'_>) -> Result<i64> {
    let node = conn.node().to_owned();
    let id: (i64,) = on!(conn, |c| {
        sqlx::query_as(
        "INSERT INTO bans (ip, reason, rung, created_at, until_at, node) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
    )
    .bind(b.ip)
    .bind(b.reason)
    .bind(b.rung)
    .bind(b.created_at)
    .bind(b.until_at)
    .bind(&node)
    .fetch_one(&mut *c).await
    })?;
    super::changes::wake_others(conn, "ban").await?;
    Ok(id.0)
}

/// The ban in force for `ip` at `now` that lasts longest, if any.
pub async fn active_for(conn: &mut Conn, ip: &str, now: UnixMs) -> Result<Option<BanRow>> {
    Ok(on!(conn, |c| sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM bans WHERE ip = $1 AND +released_at IS NULL \
         AND (until_at IS NULL OR until_at > $2) \
         ORDER BY CASE WHEN until_at IS NULL THEN 1 ELSE 0 END DESC, until_at DESC LIMIT 1"
    ))
    .bind(ip)
    .bind(now)
    .fetch_optional(&mut *c)
    .await)?)
}

/// Timed bans created for `ip` after `since`, released or not.
/// For each of `ips` banned at `now`: until when (`None`: until released).
pub async fn in_force_many(
    conn: &mut Conn,
    ips: &[String],
    now: UnixMs,
) -> Result<std::collections::HashMap<String, Option<UnixMs>>> {
    on!(conn, |c| {
        const FOREVER: i64 = i64::MAX;
        let mut out = std::collections::HashMap::new();
        for chunk in super::fixed_chunks(ips) {
            let mut q = sqlx::QueryBuilder::new("SELECT ip, MAX(CASE WHEN until_at IS NULL THEN ");
            q.push_bind(FOREVER).push(" ELSE until_at END) FROM bans WHERE");
            super::push_in_list(&mut q, "ip", chunk);
            q.push(" AND +released_at IS NULL AND (until_at IS NULL OR until_at > ")
                .push_bind(now)
                .push(") GROUP BY ip");
            let rows: Vec<(String, i64)> = q.build_query_as().fetch_all(&mut *c).await?;
            out.extend(rows.into_iter().map(|(ip, until)| (ip, (until != FOREVER).then_some(until))));
        }
        Ok(out)
    })
}

pub async fn active(conn: &mut Conn, now: UnixMs) -> Result<Vec<BanRow>> {
    Ok(on!(conn, |c| sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM bans WHERE released_at IS NULL AND (until_at IS NULL OR until_at > $1) \
         ORDER BY created_at, id"
    ))
    .bind(now)
    .fetch_all(&mut *c)
    .await)?)
}

/// Ends every active ban of `ip`, released by a person: its failures and bans so far
/// count no more (`forgiven`). Returns how many bans there were.
pub async fn release_ip(conn: &mut Conn, ip: &str, now: UnixMs, by: &str) -> Result<u64> {
    let done = on!(conn, |c| sqlx::query(
        "UPDATE bans SET released_at = $1, released_by = $2 WHERE ip = $3 AND +released_at IS NULL \
         AND (until_at IS NULL OR until_at > $1)",
    )
    .bind(now)
    .bind(by)
    .bind(ip)
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))?;
    if done > 0 {
        super::changes::record(conn, super::changes::kind::RELEASE, ip, now).await?;
        on!(conn, |c| {
            sqlx::query(
            "INSERT INTO forgiven (ip, at) VALUES ($1, $2) \
             ON CONFLICT (ip) DO UPDATE SET at = CASE WHEN excluded.at > forgiven.at THEN excluded.at ELSE forgiven.at END",
        )
        .bind(ip)
        .bind(now)
        .execute(&mut *c).await.map(|r| r.rows_affected())
        })?;
    }
    Ok(done)
}

/// Marks older bans of `ip` as replaced by a stronger one (they stay as history).
/// A ladder ban waiting in memory for its transaction's batch insert.
#[derive(Debug, Clone)]
pub struct PendingBan {
    pub ip: String,
    pub reason: String,
    pub rung: i64,
    pub created_at: UnixMs,
    pub until_at: Option<UnixMs>,
    /// It replaces the bans in force for its address: those stored are released
    /// as it is written.
    pub superseding: bool,
    /// Set when a later ban of the same transaction replaced it.
    pub released_at: Option<UnixMs>,
}

/// Stores bans in their order (ids follow it), releasing first the stored bans each
/// superseding one replaces.
pub async fn insert_many(conn: &mut Conn, bans: &[PendingBan]) -> Result<()> {
    if bans.is_empty() {
        return Ok(());
    }
    super::changes::wake_others(conn, "ban").await?;
    let node = conn.node().to_owned();
    on!(conn, |c| {
        for b in bans.iter().filter(|b| b.superseding) {
            sqlx::query(
                "UPDATE bans SET released_at = $1, released_by = 'escalated' WHERE ip = $2 \
                 AND +released_at IS NULL AND (until_at IS NULL OR until_at > $1)",
            )
            .bind(b.created_at)
            .bind(&b.ip)
            .execute(&mut *c)
            .await?;
        }
        // 8 values a row, well under SQLite's limit on bound values per statement.
        for chunk in super::fixed_chunks(bans) {
            let mut q = sqlx::QueryBuilder::new(
                "INSERT INTO bans (ip, reason, rung, created_at, until_at, released_at, released_by, node) ",
            );
            q.push_values(chunk, |mut row, b| {
                row.push_bind(b.ip.clone())
                    .push_bind(b.reason.clone())
                    .push_bind(b.rung)
                    .push_bind(b.created_at)
                    .push_bind(b.until_at)
                    .push_bind(b.released_at)
                    .push_bind(b.released_at.map(|_| "escalated"))
                    .push_bind(node.clone());
            });
            q.build().execute(&mut *c).await?;
        }
        Ok(())
    })
}

pub async fn last_id(conn: &mut Conn) -> Result<i64> {
    let n: (Option<i64>,) =
        on!(conn, |c| sqlx::query_as("SELECT MAX(id) FROM bans").fetch_one(&mut *c).await)?;
    Ok(n.0.unwrap_or(0))
}

/// Bans created after `id` that are still in force at `now`.
pub async fn active_created_after(conn: &mut Conn, id: i64, now: UnixMs) -> Result<Vec<BanRow>> {
    Ok(on!(conn, |c| sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM bans WHERE id > $1 AND released_at IS NULL \
         AND (until_at IS NULL OR until_at > $2) ORDER BY id"
    ))
    .bind(id)
    .bind(now)
    .fetch_all(&mut *c)
    .await)?)
}

pub async fn next_expiry(conn: &mut Conn, now: UnixMs) -> Result<Option<UnixMs>> {
    let n: (Option<i64>,) = on!(conn, |c| {
        sqlx::query_as(
        "SELECT MIN(until_at) FROM bans WHERE released_at IS NULL AND until_at IS NOT NULL AND until_at > $1",
    )
    .bind(now)
    .fetch_one(&mut *c).await
    })?;
    Ok(n.0)
}

pub async fn set_created_by(conn: &mut Conn, id: i64, by: &str) -> Result<()> {
    on!(conn, |c| sqlx::query("UPDATE bans SET created_by = $1 WHERE id = $2")
        .bind(by)
        .bind(id)
        .execute(&mut *c)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(())
}

/// Active bans: (timed, until released).
pub async fn active_counts(conn: &mut Conn, now: UnixMs) -> Result<(i64, i64)> {
    let n: (i64, i64) = on!(conn, |c| sqlx::query_as(
        "SELECT COALESCE(SUM(CASE WHEN until_at IS NOT NULL THEN 1 ELSE 0 END), 0), \
         COALESCE(SUM(CASE WHEN until_at IS NULL THEN 1 ELSE 0 END), 0) \
         FROM bans WHERE released_at IS NULL AND (until_at IS NULL OR until_at > $1)",
    )
    .bind(now)
    .fetch_one(&mut *c)
    .await)?;
    Ok(n)
}

/// Address and end of every ban in force, strongest first per address: what the
/// kernel should hold. Lean on purpose: it runs for 100k bans.
pub async fn active_targets(conn: &mut Conn, now: UnixMs) -> Result<Vec<(String, Option<i64>)>> {
    Ok(on!(conn, |c| sqlx::query_as(
        "SELECT ip, until_at FROM bans WHERE released_at IS NULL AND (until_at IS NULL OR until_at > $1) \
         ORDER BY CASE WHEN until_at IS NULL THEN 0 ELSE 1 END, until_at DESC",
    )
    .bind(now)
    .fetch_all(&mut *c)
    .await)?)
}

/// Bans no longer in force (released or expired), the latest ended first.
pub async fn history(conn: &mut Conn, now: UnixMs, limit: i64) -> Result<Vec<BanRow>> {
    // Ended at COALESCE(released_at, until_at), which the index `bans_ended` holds.
    Ok(on!(conn, |c| sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM bans WHERE COALESCE(released_at, until_at) <= $1 \
         ORDER BY COALESCE(released_at, until_at) DESC, id DESC LIMIT $2"
    ))
    .bind(now)
    .bind(limit)
    .fetch_all(&mut *c)
    .await)?)
}

pub async fn for_ip(conn: &mut Conn, ip: &str) -> Result<Vec<BanRow>> {
    Ok(on!(conn, |c| sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM bans WHERE ip = $1 ORDER BY created_at DESC, id DESC"
    ))
    .bind(ip)
    .fetch_all(&mut *c)
    .await)?)
}

pub async fn by_id(conn: &mut Conn, id: i64) -> Result<Option<BanRow>> {
    Ok(on!(conn, |c| sqlx::query_as(&format!("SELECT {COLUMNS} FROM bans WHERE id = $1"))
        .bind(id)
        .fetch_optional(&mut *c)
        .await)?)
}

/// The newest `limit` bans in force (the bans page; 100k rows are not one page).
pub async fn active_newest(conn: &mut Conn, now: UnixMs, limit: i64) -> Result<Vec<BanRow>> {
    // `+released_at` keeps SQLite from choosing the index on it (every ban in force,
    // then a sort) over walking `bans_created` from the newest and stopping early.
    Ok(on!(conn, |c| sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM bans WHERE +released_at IS NULL AND (until_at IS NULL OR until_at > $1) \
         ORDER BY created_at DESC, id DESC LIMIT $2"
    ))
    .bind(now)
    .bind(limit)
    .fetch_all(&mut *c)
    .await)?)
}

/// Bans in force whose address contains `text`, or whose address tried an account
/// named `text` (an extension), or decided by the PBX named `text`: how an admin finds
/// a banned phone. Newest first.
pub async fn active_matching(conn: &mut Conn, now: UnixMs, text: &str, limit: i64) -> Result<Vec<BanRow>> {
    let pattern = format!("%{}%", super::like_literal(text));
    Ok(on!(conn, |c| {
        sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM bans WHERE released_at IS NULL AND (until_at IS NULL OR until_at > $1) \
         AND (ip LIKE $2 ESCAPE '\\' OR node = $3 OR ip IN (SELECT ip FROM offender_accounts WHERE account = $3)) \
         ORDER BY created_at DESC, id DESC LIMIT $4"
    ))
    .bind(now)
    .bind(pattern)
    .bind(text)
    .bind(limit)
    .fetch_all(&mut *c)
    .await
    })?)
}

/// IPv6 bans (addresses and prefixes) created after `since` or still in force at `now`:
/// what the prefix rule looks at.
pub async fn recent_v6(conn: &mut Conn, since: UnixMs, now: UnixMs) -> Result<Vec<(String, UnixMs, bool)>> {
    let rows: Vec<(String, i64, i64)> = on!(conn, |c| {
        sqlx::query_as(
        "SELECT ip, created_at, CAST(CASE WHEN released_at IS NULL AND (until_at IS NULL OR until_at > $2) THEN 1 ELSE 0 END AS BIGINT) \
         FROM bans WHERE ip LIKE '%:%' AND (created_at > $1 OR (released_at IS NULL AND (until_at IS NULL OR until_at > $2)))",
    )
    .bind(since)
    .bind(now)
    .fetch_all(&mut *c).await
    })?;
    Ok(rows.into_iter().map(|(ip, at, active)| (ip, at, active == 1)).collect())
}

/// How many bans `node` decided after `since` (at most `cap`).
pub async fn count_on_node_since(conn: &mut Conn, node: &str, since: UnixMs, cap: i64) -> Result<i64> {
    Ok(on!(conn, |c| sqlx::query_scalar(
        "SELECT COUNT(*) FROM (SELECT 1 FROM bans WHERE created_at > $1 AND node = $2 LIMIT $3) AS recent"
    )
    .bind(since)
    .bind(node)
    .bind(cap)
    .fetch_one(&mut *c)
    .await)?)
}

/// Bans created after `since` (the newest `limit`), and how many there were in all.
pub async fn created_since(conn: &mut Conn, since: UnixMs, limit: i64) -> Result<(Vec<BanRow>, i64)> {
    let rows = on!(conn, |c| sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM bans WHERE created_at > $1 ORDER BY created_at DESC, id DESC LIMIT $2"
    ))
    .bind(since)
    .bind(limit)
    .fetch_all(&mut *c)
    .await)?;
    let total: (i64,) = on!(conn, |c| sqlx::query_as("SELECT COUNT(*) FROM bans WHERE created_at > $1")
        .bind(since)
        .fetch_one(&mut *c)
        .await)?;
    Ok((rows, total.0))
}
