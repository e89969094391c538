use sqlx::FromRow;

use super::{Conn, Result};
use crate::domain::UnixMs;

#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct AuditRow {
    pub id: i64,
    pub at: i64,
    pub actor: String,
    pub client_ip: Option<String>,
    pub action: String,
    pub detail: String,
}

pub async fn record(
    conn: &mut Conn,
    at: UnixMs,
    actor: &str,
    client_ip: Option<&str>,
    action: &str,
    detail: &str,
) -> Result<()> {
    on!(conn, |c| sqlx::query(
        "INSERT INTO audit (at, actor, client_ip, action, detail) VALUES ($1, $2, $3, $4, $5)"
    )
    .bind(at)
    .bind(actor)
    .bind(client_ip)
    .bind(action)
    .bind(detail)
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(())
}

/// The newest rows that are failed panel logins (`failed_logins`), or the rest.
pub async fn recent_of(conn: &mut Conn, failed_logins: bool, limit: i64) -> Result<Vec<AuditRow>> {
    let op = if failed_logins { "=" } else { "<>" };
    Ok(on!(conn, |c| sqlx::query_as(&format!(
        "SELECT id, at, actor, client_ip, action, detail FROM audit WHERE action {op} $1 \
         ORDER BY at DESC, id DESC LIMIT $2"
    ))
    .bind(LOGIN_FAILED)
    .bind(limit)
    .fetch_all(&mut *c)
    .await)?)
}

/// The action of a refused panel login.
pub const LOGIN_FAILED: &str = "login failed";

pub async fn recent(conn: &mut Conn, limit: i64) -> Result<Vec<AuditRow>> {
    Ok(on!(conn, |c| sqlx::query_as(
        "SELECT id, at, actor, client_ip, action, detail FROM audit ORDER BY at DESC, id DESC LIMIT $1",
    )
    .bind(limit)
    .fetch_all(&mut *c)
    .await)?)
}

/// Whether `actor` logged in before, and from `client_ip`.
pub async fn logged_in_before(conn: &mut Conn, actor: &str, client_ip: &str) -> Result<(bool, bool)> {
    let (any, here): (i64, i64) = on!(conn, |c| sqlx::query_as(
        "SELECT COUNT(*), COALESCE(SUM(CASE WHEN client_ip = $2 THEN 1 ELSE 0 END), 0) \
         FROM audit WHERE actor = $1 AND action = 'login'",
    )
    .bind(actor)
    .bind(client_ip)
    .fetch_one(&mut *c)
    .await)?;
    Ok((any > 0, here > 0))
}

/// The addresses the existing accounts logged in (or set up the panel) from.
pub async fn login_addresses_of_accounts(conn: &mut Conn) -> Result<std::collections::HashSet<String>> {
    let rows: Vec<String> = on!(conn, |c| sqlx::query_scalar(
        "SELECT DISTINCT client_ip FROM audit WHERE action IN ('login', 'setup') \
         AND client_ip IS NOT NULL AND actor IN (SELECT username FROM admins)",
    )
    .fetch_all(&mut *c)
    .await)?;
    Ok(rows.into_iter().collect())
}

/// The newest rows `actor` wrote (or, for refused logins, tried as its name).
pub async fn recent_by(conn: &mut Conn, actor: &str, limit: i64) -> Result<Vec<AuditRow>> {
    Ok(on!(conn, |c| sqlx::query_as(
        "SELECT id, at, actor, client_ip, action, detail FROM audit WHERE actor = $1 \
         ORDER BY at DESC, id DESC LIMIT $2",
    )
    .bind(actor)
    .bind(limit)
    .fetch_all(&mut *c)
    .await)?)
}
