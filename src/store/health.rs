use sqlx::FromRow;

use super::{Conn, Result};
use crate::domain::UnixMs;

#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct HealthRow {
    pub node: String,
    pub component: String,
    pub ok: bool,
    pub detail: String,
    pub updated_at: i64,
}

/// This node's state of `component`.
pub async fn set(conn: &mut Conn, component: &str, ok: bool, detail: &str, now: UnixMs) -> Result<()> {
    let node = conn.node().to_owned();
    on!(conn, |c| sqlx::query(
        "INSERT INTO health (node, component, ok, detail, updated_at) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (node, component) DO UPDATE SET ok = excluded.ok, detail = excluded.detail, \
         updated_at = excluded.updated_at",
    )
    .bind(&node)
    .bind(component)
    .bind(ok)
    .bind(detail)
    .bind(now)
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(())
}

/// This node's components.
pub async fn all(conn: &mut Conn) -> Result<Vec<HealthRow>> {
    let node = conn.node().to_owned();
    Ok(on!(conn, |c| sqlx::query_as(
        "SELECT node, component, ok, detail, updated_at FROM health WHERE node = $1 ORDER BY component"
    )
    .bind(&node)
    .fetch_all(&mut *c)
    .await)?)
}

/// Every node's components, by node.
pub async fn every_node(conn: &mut Conn) -> Result<Vec<HealthRow>> {
    Ok(on!(conn, |c| sqlx::query_as(
        "SELECT node, component, ok, detail, updated_at FROM health ORDER BY node, component"
    )
    .fetch_all(&mut *c)
    .await)?)
}
