//! The PBXes (nodes) writing to this store, and when each was last heard from.

use super::{Conn, Result};
use crate::domain::UnixMs;

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct NodeRow {
    pub name: String,
    pub first_seen: i64,
    pub last_contact: i64,
    pub version: String,
}

/// This node starts: it is listed, and it adopts the log cursors, health and logins
/// written before nodes had names (an upgraded single PBX keeps reading where it
/// stopped, and knows its phones' addresses).
pub async fn register(conn: &mut Conn, version: &str, now: UnixMs) -> Result<()> {
    let node = conn.node().to_owned();
    on!(conn, |c| {
        sqlx::query(
            "INSERT INTO nodes (name, first_seen, last_contact, version) VALUES ($1, $2, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET last_contact = excluded.last_contact, version = excluded.version",
        )
        .bind(&node)
        .bind(now)
        .bind(version)
        .execute(&mut *c)
        .await?;
        for table in ["log_sources", "health"] {
            let key = if table == "health" { "component" } else { "path" };
            sqlx::query(&format!(
                "UPDATE {table} SET node = $1 WHERE node = '' \
                 AND {key} NOT IN (SELECT {key} FROM {table} WHERE node = $1)"
            ))
            .bind(&node)
            .execute(&mut *c)
            .await?;
        }
        for (table, key) in [("logins", "ip"), ("contacts", "uri")] {
            sqlx::query(&format!(
                "UPDATE {table} SET node = $1 WHERE node = '' AND NOT EXISTS (SELECT 1 FROM {table} o \
                 WHERE o.node = $1 AND o.account = {table}.account AND o.{key} = {table}.{key})"
            ))
            .bind(&node)
            .execute(&mut *c)
            .await?;
        }
        Ok(())
    })
}

/// This node is alive at `now`.
pub async fn heartbeat(conn: &mut Conn, now: UnixMs) -> Result<()> {
    let node = conn.node().to_owned();
    on!(conn, |c| sqlx::query("UPDATE nodes SET last_contact = $2 WHERE name = $1 AND last_contact < $2")
        .bind(&node)
        .bind(now)
        .execute(&mut *c)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(())
}

/// Every node, by name.
pub async fn all(conn: &mut Conn) -> Result<Vec<NodeRow>> {
    Ok(on!(conn, |c| sqlx::query_as(
        "SELECT name, first_seen, last_contact, version FROM nodes ORDER BY name"
    )
    .fetch_all(&mut *c)
    .await)?)
}
