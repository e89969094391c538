use sqlx::FromRow;

use super::{Conn, Result};
use crate::domain::UnixMs;

#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct HealthRow {
    pub component: String,
    pub ok: bool,
    pub detail: String,
    pub updated_at: i64,
}

pub async fn set(conn: &mut Conn, component: &str, ok: bool, detail: &str, now: UnixMs) -> Result<()> {
    sqlx::query(
        "INSERT INTO health (component, ok, detail, updated_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (component) DO UPDATE SET ok = excluded.ok, detail = excluded.detail, \
         updated_at = excluded.updated_at",
    )
    .bind(component)
    .bind(ok)
    .bind(detail)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn all(conn: &mut Conn) -> Result<Vec<HealthRow>> {
    Ok(sqlx::query_as("SELECT component, ok, detail, updated_at FROM health ORDER BY component")
        .fetch_all(conn)
        .await?)
}
