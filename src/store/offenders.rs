//! Per-address summaries, kept up to date by the pipeline in the same transaction as
//! the failures themselves.

use sqlx::FromRow;

use super::{Conn, Result};
use crate::domain::UnixMs;

#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct OffenderRow {
    pub ip: String,
    pub first_seen: i64,
    pub last_seen: i64,
    pub failures: i64,
    pub services: String,
    /// The nodes (PBXes) that saw it fail, comma-separated.
    pub nodes: String,
}

/// How a new row adds to an address's summary: earliest first, latest last, failures
/// summed, each service and each node listed once.
const MERGE: &str = " ON CONFLICT (ip) DO UPDATE SET \
    first_seen = CASE WHEN excluded.first_seen < offenders.first_seen THEN excluded.first_seen ELSE offenders.first_seen END, \
    last_seen = CASE WHEN excluded.last_seen > offenders.last_seen THEN excluded.last_seen ELSE offenders.last_seen END, \
    failures = offenders.failures + excluded.failures, \
    services = CASE WHEN offenders.services = excluded.services \
      OR (',' || offenders.services || ',') LIKE ('%,' || excluded.services || ',%') \
      THEN offenders.services ELSE offenders.services || ',' || excluded.services END, \
    nodes = CASE WHEN offenders.nodes = excluded.nodes \
      OR (',' || offenders.nodes || ',') LIKE ('%,' || excluded.nodes || ',%') THEN offenders.nodes \
      WHEN offenders.nodes = '' THEN excluded.nodes ELSE offenders.nodes || ',' || excluded.nodes END";

pub async fn record(
    conn: &mut Conn,
    ip: &str,
    service: &str,
    account: Option<&str>,
    at: UnixMs,
) -> Result<()> {
    let node = conn.node().to_owned();
    on!(conn, |c| {
        sqlx::query(&format!(
            "INSERT INTO offenders (ip, first_seen, last_seen, failures, services, nodes) \
         VALUES ($1, $2, $2, 1, $3, $4) {MERGE}"
        ))
        .bind(ip)
        .bind(at)
        .bind(service)
        .bind(&node)
        .execute(&mut *c)
        .await
        .map(|r| r.rows_affected())
    })?;
    if let Some(account) = account {
        on!(conn, |c| sqlx::query(
            "INSERT INTO offender_accounts (ip, account, failures) VALUES ($1, $2, 1) \
             ON CONFLICT (ip, account) DO UPDATE SET failures = offender_accounts.failures + 1",
        )
        .bind(ip)
        .bind(account)
        .execute(&mut *c)
        .await
        .map(|r| r.rows_affected()))?;
    }
    Ok(())
}

/// How a search narrows the list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filter {
    All,
    /// Addresses whose text starts with this (the caller narrows CIDRs exactly).
    Prefix(String),
    Account(String),
    /// Addresses a node (PBX) saw fail.
    Node(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sort {
    LastSeen,
    Failures,
    FirstSeen,
}

pub async fn page(
    conn: &mut Conn,
    filter: &Filter,
    sort: Sort,
    limit: i64,
    offset: i64,
) -> Result<Vec<OffenderRow>> {
    let order = match sort {
        Sort::LastSeen => "o.last_seen DESC, o.ip",
        Sort::Failures => "o.failures DESC, o.ip",
        Sort::FirstSeen => "o.first_seen DESC, o.ip",
    };
    let cols = "o.ip, o.first_seen, o.last_seen, o.failures, o.services, o.nodes";
    let rows = match filter {
        Filter::All => on!(conn, |c| sqlx::query_as(&format!(
            "SELECT {cols} FROM offenders o ORDER BY {order} LIMIT $1 OFFSET $2"
        ))
        .bind(limit)
        .bind(offset)
        .fetch_all(&mut *c)
        .await)?,
        Filter::Prefix(prefix) => on!(conn, |c| {
            sqlx::query_as(&format!(
                "SELECT {cols} FROM offenders o WHERE o.ip LIKE $1 ESCAPE '\\' ORDER BY {order} LIMIT $2 OFFSET $3"
            ))
            .bind(format!("{}%", super::like_literal(prefix)))
            .bind(limit)
            .bind(offset)
            .fetch_all(&mut *c).await
        })?,
        Filter::Account(account) => on!(conn, |c| sqlx::query_as(&format!(
            "SELECT {cols} FROM offenders o JOIN offender_accounts a ON a.ip = o.ip WHERE a.account = $1 \
                 ORDER BY {order} LIMIT $2 OFFSET $3"
        ))
        .bind(account)
        .bind(limit)
        .bind(offset)
        .fetch_all(&mut *c)
        .await)?,
        Filter::Node(node) => on!(conn, |c| sqlx::query_as(&format!(
            "SELECT {cols} FROM offenders o WHERE (',' || o.nodes || ',') LIKE $1 ESCAPE '\\' \
             ORDER BY {order} LIMIT $2 OFFSET $3"
        ))
        .bind(format!("%,{},%", super::like_literal(node)))
        .bind(limit)
        .bind(offset)
        .fetch_all(&mut *c)
        .await)?,
    };
    Ok(rows)
}

pub async fn get(conn: &mut Conn, ip: &str) -> Result<Option<OffenderRow>> {
    Ok(on!(conn, |c| sqlx::query_as(
        "SELECT ip, first_seen, last_seen, failures, services, nodes FROM offenders WHERE ip = $1"
    )
    .bind(ip)
    .fetch_optional(&mut *c)
    .await)?)
}

pub async fn count(conn: &mut Conn) -> Result<i64> {
    Ok(on!(conn, |c| sqlx::query_scalar("SELECT COUNT(*) FROM offenders").fetch_one(&mut *c).await)?)
}

/// Accounts tried by `ip`, most tried first.
pub async fn accounts(conn: &mut Conn, ip: &str, limit: i64) -> Result<Vec<(String, i64)>> {
    Ok(on!(conn, |c| {
        sqlx::query_as(
        "SELECT account, failures FROM offender_accounts WHERE ip = $1 ORDER BY failures DESC, account LIMIT $2",
    )
    .bind(ip)
    .bind(limit)
    .fetch_all(&mut *c).await
    })?)
}

/// For each of `ips`, the `limit` accounts it tried most.
pub async fn accounts_many(
    conn: &mut Conn,
    ips: &[String],
    limit: i64,
) -> Result<std::collections::HashMap<String, Vec<String>>> {
    on!(conn, |c| {
        let mut out: std::collections::HashMap<String, Vec<String>> = std::collections::HashMap::new();
        // An address with two bans is asked for once.
        let mut ips = ips.to_vec();
        ips.sort_unstable();
        ips.dedup();
        for chunk in super::fixed_chunks(&ips) {
            let mut q = sqlx::QueryBuilder::new(
                "SELECT ip, account FROM (SELECT ip, account, ROW_NUMBER() OVER \
             (PARTITION BY ip ORDER BY failures DESC, account) AS n FROM offender_accounts WHERE",
            );
            super::push_in_list(&mut q, "ip", chunk);
            q.push(") ranked WHERE n <= ").push_bind(limit).push(" ORDER BY ip, n");
            let rows: Vec<(String, String)> = q.build_query_as().fetch_all(&mut *c).await?;
            for (ip, account) in rows {
                out.entry(ip).or_default().push(account);
            }
        }
        Ok(out)
    })
}

/// The accounts tried most, over every address.
pub async fn top_accounts(conn: &mut Conn, limit: i64) -> Result<Vec<(String, i64)>> {
    Ok(on!(conn, |c| sqlx::query_as(
        "SELECT account, failures FROM account_totals ORDER BY failures DESC, account LIMIT $1",
    )
    .bind(limit)
    .fetch_all(&mut *c)
    .await)?)
}

/// Addresses that failed after `since` (at most `cap`).
pub async fn seen_since(conn: &mut Conn, since: UnixMs, cap: i64) -> Result<Vec<String>> {
    Ok(on!(conn, |c| sqlx::query_scalar("SELECT ip FROM offenders WHERE last_seen > $1 LIMIT $2")
        .bind(since)
        .bind(cap)
        .fetch_all(&mut *c)
        .await)?)
}

/// Addresses that failed after `since`, and how many of those are banned at `now`.
pub async fn active_since(conn: &mut Conn, since: UnixMs, now: UnixMs) -> Result<(i64, i64)> {
    Ok(on!(conn, |c| sqlx::query_as(
        "SELECT COUNT(*), COALESCE(SUM(CASE WHEN EXISTS (SELECT 1 FROM bans b WHERE b.ip = o.ip \
         AND +b.released_at IS NULL AND (b.until_at IS NULL OR b.until_at > $2)) THEN 1 ELSE 0 END), 0) \
         FROM offenders o WHERE o.last_seen > $1",
    )
    .bind(since)
    .bind(now)
    .fetch_one(&mut *c)
    .await)?)
}

/// Failures per hour from `since` (hour starts, UTC): (hour start, failures).
pub async fn hours_since(conn: &mut Conn, since: UnixMs) -> Result<Vec<(i64, i64)>> {
    Ok(on!(conn, |c| sqlx::query_as(
        "SELECT hour, failures FROM failure_hours WHERE hour >= $1 ORDER BY hour"
    )
    .bind(since)
    .fetch_all(&mut *c)
    .await)?)
}

/// Running totals a batch adds up in memory, written once per transaction.
#[derive(Debug, Default)]
pub struct Totals {
    pub hours: std::collections::HashMap<UnixMs, i64>,
    pub accounts: std::collections::HashMap<String, i64>,
}

impl Totals {
    pub fn count(&mut self, account: Option<&str>, at: UnixMs) {
        *self.hours.entry(at - at.rem_euclid(crate::domain::HOUR_MS)).or_default() += 1;
        if let Some(a) = account {
            *self.accounts.entry(a.to_string()).or_default() += 1;
        }
    }
}

pub async fn add_totals(conn: &mut Conn, totals: &Totals) -> Result<()> {
    on!(conn, |c| {
        let hours: Vec<_> = totals.hours.iter().collect();
        for chunk in super::fixed_chunks(&hours) {
            let mut q = sqlx::QueryBuilder::new("INSERT INTO failure_hours (hour, failures) ");
            q.push_values(chunk, |mut b, (hour, n)| {
                b.push_bind(**hour).push_bind(**n);
            });
            q.push(" ON CONFLICT (hour) DO UPDATE SET failures = failure_hours.failures + excluded.failures");
            q.build().execute(&mut *c).await?;
        }
        let accounts: Vec<_> = totals.accounts.iter().collect();
        for chunk in super::fixed_chunks(&accounts) {
            let mut q = sqlx::QueryBuilder::new("INSERT INTO account_totals (account, failures) ");
            q.push_values(chunk, |mut b, (account, n)| {
                b.push_bind(account.to_string()).push_bind(**n);
            });
            q.push(
                " ON CONFLICT (account) DO UPDATE SET failures = account_totals.failures + excluded.failures",
            );
            q.build().execute(&mut *c).await?;
        }
        Ok(())
    })
}

/// What one transaction adds to the per-address summaries, gathered in memory.
#[derive(Debug, Default)]
pub struct Deltas {
    /// (address, service) → (first, last, failures)
    pub by_service: std::collections::HashMap<(String, &'static str), (UnixMs, UnixMs, i64)>,
    /// (address, account) → failures
    pub by_account: std::collections::HashMap<(String, String), i64>,
}

impl Deltas {
    pub fn count(&mut self, ip: &str, service: &'static str, account: Option<&str>, at: UnixMs) {
        let e = self.by_service.entry((ip.to_string(), service)).or_insert((at, at, 0));
        e.0 = e.0.min(at);
        e.1 = e.1.max(at);
        e.2 += 1;
        if let Some(a) = account {
            *self.by_account.entry((ip.to_string(), a.to_string())).or_default() += 1;
        }
    }
}

pub async fn add_deltas(conn: &mut Conn, d: &Deltas) -> Result<()> {
    let node = conn.node().to_owned();
    on!(conn, |c| {
        // Few statements for many addresses; one statement never names an address twice
        // (one service at a time), as an upsert may not touch a row twice.
        let mut services: Vec<&'static str> = d.by_service.keys().map(|(_, s)| *s).collect();
        services.sort_unstable();
        services.dedup();
        for service in services {
            let mut rows: Vec<_> = d.by_service.iter().filter(|((_, s), _)| *s == service).collect();
            // In key order: neighbouring rows share B-tree pages, so a storm of new
            // addresses touches each page once.
            rows.sort_unstable_by(|a, b| a.0.cmp(b.0));
            for chunk in super::fixed_chunks(&rows) {
                let mut q = sqlx::QueryBuilder::new(
                    "INSERT INTO offenders (ip, first_seen, last_seen, failures, services, nodes) ",
                );
                q.push_values(chunk, |mut b, ((ip, service), (first, last, n))| {
                    b.push_bind(ip.clone())
                        .push_bind(*first)
                        .push_bind(*last)
                        .push_bind(*n)
                        .push_bind(*service)
                        .push_bind(node.clone());
                });
                q.push(MERGE);
                q.build().execute(&mut *c).await?;
            }
        }
        let mut accounts: Vec<_> = d.by_account.iter().collect();
        accounts.sort_unstable_by(|a, b| a.0.cmp(b.0));
        for chunk in super::fixed_chunks(&accounts) {
            let mut q = sqlx::QueryBuilder::new("INSERT INTO offender_accounts (ip, account, failures) ");
            q.push_values(chunk, |mut b, ((ip, account), n)| {
                b.push_bind(ip.clone()).push_bind(account.clone()).push_bind(**n);
            });
            q.push(
            " ON CONFLICT (ip, account) DO UPDATE SET failures = offender_accounts.failures + excluded.failures",
        );
            q.build().execute(&mut *c).await?;
        }
        Ok(())
    })
}
