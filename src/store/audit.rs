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
    sqlx::query("INSERT INTO audit (at, actor, client_ip, action, detail) VALUES ($1, $2, $3, $4, $5)")
        .bind(at)
        .bind(actor)
        .bind(client_ip)
        .bind(action)
        .bind(detail)
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn recent(conn: &mut Conn, limit: i64) -> Result<Vec<AuditRow>> {
    Ok(sqlx::query_as(
        "SELECT id, at, actor, client_ip, action, detail FROM audit ORDER BY at DESC, id DESC LIMIT $1",
    )
    .bind(limit)
    .fetch_all(conn)
    .await?)
}
