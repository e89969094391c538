use sqlx::FromRow;

use super::{Conn, Result};
use crate::domain::UnixMs;

#[derive(Clone, PartialEq, Eq, FromRow)]
pub struct AdminRow {
    pub id: i64,
    pub username: String,
    pub password_hash: String,
    /// A session started before this time is no longer valid.
    pub password_changed_at: i64,
}

// The hash stays out of logs.
impl std::fmt::Debug for AdminRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminRow").field("id", &self.id).field("username", &self.username).finish()
    }
}

pub async fn count(conn: &mut Conn) -> Result<i64> {
    Ok(sqlx::query_scalar("SELECT COUNT(*) FROM admins").fetch_one(conn).await?)
}

pub async fn create(conn: &mut Conn, username: &str, password_hash: &str, now: UnixMs) -> Result<i64> {
    Ok(sqlx::query_scalar(
        "INSERT INTO admins (username, password_hash, created_at, password_changed_at) \
         VALUES ($1, $2, $3, $3) RETURNING id",
    )
    .bind(username)
    .bind(password_hash)
    .bind(now)
    .fetch_one(conn)
    .await?)
}

/// Creates the first admin, in one statement that also checks there is none yet: two
/// setup requests at once create one admin, not two. `None` when one exists already.
pub async fn create_first(
    conn: &mut Conn,
    username: &str,
    password_hash: &str,
    now: UnixMs,
) -> Result<Option<i64>> {
    Ok(sqlx::query_scalar(
        "INSERT INTO admins (username, password_hash, created_at, password_changed_at) \
         SELECT $1, $2, $3, $3 WHERE NOT EXISTS (SELECT 1 FROM admins) RETURNING id",
    )
    .bind(username)
    .bind(password_hash)
    .bind(now)
    .fetch_optional(conn)
    .await?)
}

pub async fn by_username(conn: &mut Conn, username: &str) -> Result<Option<AdminRow>> {
    Ok(sqlx::query_as(
        "SELECT id, username, password_hash, password_changed_at FROM admins WHERE username = $1",
    )
    .bind(username)
    .fetch_optional(conn)
    .await?)
}

pub async fn by_id(conn: &mut Conn, id: i64) -> Result<Option<AdminRow>> {
    Ok(sqlx::query_as("SELECT id, username, password_hash, password_changed_at FROM admins WHERE id = $1")
        .bind(id)
        .fetch_optional(conn)
        .await?)
}

pub async fn set_password(conn: &mut Conn, id: i64, password_hash: &str, now: UnixMs) -> Result<()> {
    sqlx::query("UPDATE admins SET password_hash = $1, password_changed_at = $2 WHERE id = $3")
        .bind(password_hash)
        .bind(now)
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}
