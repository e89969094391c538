//! Changes every node's firewall follows, numbered in the order they were stored.
//! On PostgreSQL each also wakes the other nodes (`NOTIFY`, sent at commit; its
//! payload is only a hint, the rows are the truth).

use super::{Conn, Result};
use crate::domain::UnixMs;

/// The channel nodes listen on.
pub const CHANNEL: &str = "sipwarden_changes";

/// What changed.
pub mod kind {
    /// A ban released by a person: its address leaves every kernel.
    pub const RELEASE: &str = "release";
    /// Networks, closed services or protection: every kernel is rebuilt from the store.
    pub const ACCESS: &str = "access";
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ChangeRow {
    pub id: i64,
    pub kind: String,
    pub subject: String,
}

pub async fn record(conn: &mut Conn, kind: &str, subject: &str, now: UnixMs) -> Result<()> {
    let node = conn.node().to_owned();
    on!(conn, |c| sqlx::query("INSERT INTO changes (at, node, kind, subject) VALUES ($1, $2, $3, $4)")
        .bind(now)
        .bind(&node)
        .bind(kind)
        .bind(subject)
        .execute(&mut *c)
        .await
        .map(|r| r.rows_affected()))?;
    wake_others(conn, kind).await
}

/// On a shared store, tells the other nodes to look (at commit). Nothing on SQLite:
/// one node, which pokes its own firewall.
pub async fn wake_others(conn: &mut Conn, hint: &str) -> Result<()> {
    if let super::Native::Postgres(c) = conn.native() {
        sqlx::query("SELECT pg_notify($1, $2)").bind(CHANNEL).bind(hint).execute(&mut *c).await?;
    }
    Ok(())
}

/// Changes stored after `id`, oldest first (at most `limit`).
pub async fn after(conn: &mut Conn, id: i64, limit: i64) -> Result<Vec<ChangeRow>> {
    Ok(on!(conn, |c| sqlx::query_as(
        "SELECT id, kind, subject FROM changes WHERE id > $1 ORDER BY id LIMIT $2"
    )
    .bind(id)
    .bind(limit)
    .fetch_all(&mut *c)
    .await)?)
}

pub async fn last_id(conn: &mut Conn) -> Result<i64> {
    let n: Option<i64> =
        on!(conn, |c| sqlx::query_scalar("SELECT MAX(id) FROM changes").fetch_one(&mut *c).await)?;
    Ok(n.unwrap_or(0))
}
