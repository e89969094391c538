use sqlx::FromRow;

use super::{Conn, Result};
use crate::domain::UnixMs;

/// A successful login of `account` from `ip`.
pub async fn record_login(conn: &mut Conn, account: &str, ip: &str, at: UnixMs) -> Result<()> {
    let node = conn.node().to_owned();
    on!(conn, |c| {
        sqlx::query(
        "INSERT INTO logins (account, ip, first_at, last_at, node) VALUES ($1, $2, $3, $3, $4) \
         ON CONFLICT (node, account, ip) DO UPDATE SET \
         first_at = CASE WHEN excluded.first_at < logins.first_at THEN excluded.first_at ELSE logins.first_at END, \
         last_at = CASE WHEN excluded.last_at > logins.last_at THEN excluded.last_at ELSE logins.last_at END",
    )
    .bind(account)
    .bind(ip)
    .bind(at)
    .bind(&node)
    .execute(&mut *c).await.map(|r| r.rows_affected())
    })?;
    Ok(())
}

/// Before `at`: whether `account` of this node (PBX) had logged in at all, and from `ip`.
pub async fn login_history(conn: &mut Conn, account: &str, ip: &str, at: UnixMs) -> Result<(bool, bool)> {
    let node = conn.node().to_owned();
    let (any, here): (i64, i64) = on!(conn, |c| sqlx::query_as(
        "SELECT COUNT(*), COALESCE(SUM(CASE WHEN ip = $2 THEN 1 ELSE 0 END), 0) \
         FROM logins WHERE node = $4 AND account = $1 AND first_at < $3",
    )
    .bind(account)
    .bind(ip)
    .bind(at)
    .bind(&node)
    .fetch_one(&mut *c)
    .await)?;
    Ok((any > 0, here > 0))
}

/// Every address that logged into `account` of this node: (address, first login,
/// latest login).
pub async fn logins_of(conn: &mut Conn, account: &str) -> Result<Vec<(String, UnixMs, UnixMs)>> {
    let node = conn.node().to_owned();
    Ok(on!(conn, |c| {
        sqlx::query_as(
        "SELECT ip, first_at, last_at FROM logins WHERE node = $2 AND account = $1 ORDER BY last_at DESC LIMIT 1000",
    )
    .bind(account)
    .bind(&node)
    .fetch_all(&mut *c)
    .await
    })?)
}

#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct IncidentRow {
    pub id: i64,
    pub kind: String,
    pub severity: String,
    pub account: String,
    pub tech: Option<String>,
    pub ip: Option<String>,
    pub at: i64,
    pub reason: String,
    pub calls: Option<i64>,
    pub numbers: String,
    pub actions: String,
    pub locked: bool,
    pub unlocked_at: Option<i64>,
    pub unlocked_by: Option<String>,
    /// The node (PBX) whose extension it was.
    pub node: String,
}

impl IncidentRow {
    /// The extension is still locked by this incident.
    pub fn is_locking(&self) -> bool {
        self.locked && self.unlocked_at.is_none()
    }
}

const COLUMNS: &str = "id, kind, severity, account, tech, ip, at, reason, calls, numbers, actions, locked, unlocked_at, unlocked_by, node";

pub struct NewIncident<'a> {
    pub kind: &'a str,
    pub severity: &'a str,
    pub account: &'a str,
    pub tech: Option<&'a str>,
    pub ip: Option<&'a str>,
    pub at: UnixMs,
    pub reason: &'a str,
    pub calls: Option<i64>,
    pub numbers: &'a str,
    pub locked: bool,
}

pub async fn insert(conn: &mut Conn, n: &NewIncident<'_>) -> Result<i64> {
    let node = conn.node().to_owned();
    let id: (i64,) = on!(conn, |c| {
        sqlx::query_as(
        "INSERT INTO incidents (kind, severity, account, tech, ip, at, reason, calls, numbers, locked, node) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id",
    )
    .bind(n.kind)
    .bind(n.severity)
    .bind(n.account)
    .bind(n.tech)
    .bind(n.ip)
    .bind(n.at)
    .bind(n.reason)
    .bind(n.calls)
    .bind(n.numbers)
    .bind(n.locked)
    .bind(&node)
    .fetch_one(&mut *c)
    .await
    })?;
    Ok(id.0)
}

/// Appends one line to what was done about an incident.
pub async fn add_action(conn: &mut Conn, id: i64, line: &str) -> Result<()> {
    on!(conn, |c| {
        sqlx::query(
        "UPDATE incidents SET actions = CASE WHEN actions = '' THEN $2 ELSE actions || $3 || $2 END WHERE id = $1",
    )
    .bind(id)
    .bind(line)
    .bind("\n")
    .execute(&mut *c).await.map(|r| r.rows_affected())
    })?;
    Ok(())
}

/// Whether an incident of `kind` for `account` (from `ip`, when given) was raised since `since`.
pub async fn raised_since(
    conn: &mut Conn,
    kind: &str,
    account: &str,
    ip: Option<&str>,
    since: UnixMs,
) -> Result<bool> {
    let n: (i64,) = on!(conn, |c| sqlx::query_as(
        "SELECT COUNT(*) FROM incidents WHERE account = $1 AND kind = $2 AND at >= $3 \
         AND ($4 IS NULL OR ip = $4)",
    )
    .bind(account)
    .bind(kind)
    .bind(since)
    .bind(ip)
    .fetch_one(&mut *c)
    .await)?;
    Ok(n.0 > 0)
}

/// The newest incidents first.
pub async fn recent(conn: &mut Conn, limit: i64) -> Result<Vec<IncidentRow>> {
    recent_of(conn, None, limit).await
}

/// The newest incidents of one node (PBX), or of all (`None`).
pub async fn recent_of(conn: &mut Conn, node: Option<&str>, limit: i64) -> Result<Vec<IncidentRow>> {
    Ok(on!(conn, |c| sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM incidents WHERE ($1 IS NULL OR node = $1) ORDER BY at DESC, id DESC LIMIT $2"
    ))
    .bind(node)
    .bind(limit)
    .fetch_all(&mut *c)
    .await)?)
}

pub async fn by_id(conn: &mut Conn, id: i64) -> Result<Option<IncidentRow>> {
    Ok(on!(conn, |c| sqlx::query_as(&format!("SELECT {COLUMNS} FROM incidents WHERE id = $1"))
        .bind(id)
        .fetch_optional(&mut *c)
        .await)?)
}

/// Incidents whose extension is still locked, newest first.
pub async fn locking(conn: &mut Conn) -> Result<Vec<IncidentRow>> {
    Ok(on!(conn, |c| {
        sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM incidents WHERE locked = TRUE AND unlocked_at IS NULL ORDER BY at DESC, id DESC"
    ))
    .fetch_all(&mut *c)
    .await
    })?)
}

/// Ends the locks on `account`; how many incidents held one.
pub async fn unlock(conn: &mut Conn, account: &str, now: UnixMs, by: &str) -> Result<u64> {
    Ok(on!(conn, |c| sqlx::query(
        "UPDATE incidents SET unlocked_at = $2, unlocked_by = $3 \
         WHERE account = $1 AND locked = TRUE AND unlocked_at IS NULL",
    )
    .bind(account)
    .bind(now)
    .bind(by)
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))?)
}

/// One account's logins from one address.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct LoginRow {
    pub account: String,
    pub ip: String,
    pub first_at: i64,
    pub last_at: i64,
    /// The account's first login from any address.
    pub account_first_at: i64,
    /// The PBX the account is on.
    pub node: String,
}

/// Logins seen since `since` on one node (PBX) or every one (`None`), the latest first.
pub async fn logins_recent(
    conn: &mut Conn,
    node: Option<&str>,
    since: UnixMs,
    limit: i64,
) -> Result<Vec<LoginRow>> {
    Ok(on!(conn, |c| {
        sqlx::query_as(
        "SELECT l.account, l.ip, l.first_at, l.last_at, \
         (SELECT MIN(o.first_at) FROM logins o WHERE o.node = l.node AND o.account = l.account) AS account_first_at, \
         l.node FROM logins l WHERE l.last_at >= $1 AND ($3 IS NULL OR l.node = $3) \
         ORDER BY l.last_at DESC LIMIT $2",
    )
    .bind(since)
    .bind(limit)
    .bind(node)
    .fetch_all(&mut *c)
    .await
    })?)
}
