//! Which Asterisk endpoints/peers are extensions and which are trunks.

use super::{Conn, Result};

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct TargetRow {
    pub name: String,
    pub tech: String,
    pub role: String,
    pub trunk: String,
}

pub async fn all(conn: &mut Conn) -> Result<Vec<TargetRow>> {
    Ok(on!(conn, |c| sqlx::query_as("SELECT name, tech, role, trunk FROM acl_targets ORDER BY tech, name")
        .fetch_all(&mut *c)
        .await)?)
}

pub async fn set(conn: &mut Conn, name: &str, tech: &str, role: &str, trunk: &str) -> Result<()> {
    on!(conn, |c| sqlx::query(
        "INSERT INTO acl_targets (name, tech, role, trunk) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (name, tech) DO UPDATE SET role = excluded.role, trunk = excluded.trunk",
    )
    .bind(name)
    .bind(tech)
    .bind(role)
    .bind(trunk)
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(())
}
