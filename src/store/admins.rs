use sqlx::FromRow;

use super::{Conn, Result};
use crate::domain::{Role, UnixMs};

#[derive(Clone, PartialEq, Eq, FromRow)]
pub struct AdminRow {
    pub id: i64,
    pub username: String,
    pub password_hash: String,
    /// A session started before this time is no longer valid.
    pub password_changed_at: i64,
    #[sqlx(try_from = "String")]
    pub role: Role,
}

/// An account as the accounts page lists it.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct AccountRow {
    pub id: i64,
    pub username: String,
    #[sqlx(try_from = "String")]
    pub role: Role,
    pub created_at: i64,
    pub password_changed_at: i64,
    pub last_login: Option<i64>,
}

const COLUMNS: &str = "id, username, password_hash, password_changed_at, role";

// The hash stays out of logs.
impl std::fmt::Debug for AdminRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminRow")
            .field("id", &self.id)
            .field("username", &self.username)
            .field("role", &self.role)
            .finish()
    }
}

pub async fn count(conn: &mut Conn) -> Result<i64> {
    Ok(on!(conn, |c| sqlx::query_scalar("SELECT COUNT(*) FROM admins").fetch_one(&mut *c).await)?)
}

/// A new account; `None` when the name is taken.
pub async fn create(
    conn: &mut Conn,
    username: &str,
    password_hash: &str,
    role: Role,
    now: UnixMs,
) -> Result<Option<i64>> {
    Ok(on!(conn, |c| sqlx::query_scalar(
        "INSERT INTO admins (username, password_hash, created_at, password_changed_at, role) \
         SELECT $1, $2, $3, $3, $4 WHERE NOT EXISTS (SELECT 1 FROM admins WHERE username = $1) \
         RETURNING id",
    )
    .bind(username)
    .bind(password_hash)
    .bind(now)
    .bind(role.as_str())
    .fetch_optional(&mut *c)
    .await)?)
}

/// Every account, by name, with its last login from the audit log.
pub async fn list(conn: &mut Conn) -> Result<Vec<AccountRow>> {
    Ok(on!(conn, |c| sqlx::query_as(
        "SELECT a.id, a.username, a.role, a.created_at, a.password_changed_at, \
         (SELECT MAX(at) FROM audit WHERE actor = a.username AND action = 'login') AS last_login \
         FROM admins a ORDER BY a.username",
    )
    .fetch_all(&mut *c)
    .await)?)
}

/// Removes an account unless it is the last one with the admin role (one statement,
/// so two admins removing each other at once cannot leave none). Whether removed.
pub async fn remove(conn: &mut Conn, id: i64) -> Result<bool> {
    serialize_role_changes(conn).await?;
    let done = on!(conn, |c| sqlx::query(
        "DELETE FROM admins WHERE id = $1 AND \
         (role <> $2 OR (SELECT COUNT(*) FROM admins WHERE role = $2 AND id <> $1) > 0)",
    )
    .bind(id)
    .bind(Role::Admin.as_str())
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(done > 0)
}

/// Gives an account a role, unless that leaves no account with the admin role.
/// Whether changed.
pub async fn set_role(conn: &mut Conn, id: i64, role: Role) -> Result<bool> {
    serialize_role_changes(conn).await?;
    let done = on!(conn, |c| sqlx::query(
        "UPDATE admins SET role = $2 WHERE id = $1 AND \
         ($2 = $3 OR (SELECT COUNT(*) FROM admins WHERE role = $3 AND id <> $1) > 0)",
    )
    .bind(id)
    .bind(role.as_str())
    .bind(Role::Admin.as_str())
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(done > 0)
}

/// Writes one marker row, so that two transactions changing accounts run one after the
/// other (called inside a transaction): on PostgreSQL each would otherwise count the
/// admins before the other's change, and both could remove "the other" admin or both
/// create the first one. (SQLite runs writers one at a time anyway.)
async fn serialize_role_changes(conn: &mut Conn) -> Result<()> {
    super::settings::set(conn, "accounts_changing", "1").await
}

/// Creates the first admin, in one statement that also checks there is none yet: two
/// setup requests at once create one admin, not two. `None` when one exists already.
pub async fn create_first(
    conn: &mut Conn,
    username: &str,
    password_hash: &str,
    now: UnixMs,
) -> Result<Option<i64>> {
    serialize_role_changes(conn).await?;
    Ok(on!(conn, |c| sqlx::query_scalar(
        "INSERT INTO admins (username, password_hash, created_at, password_changed_at) \
         SELECT $1, $2, $3, $3 WHERE NOT EXISTS (SELECT 1 FROM admins) RETURNING id",
    )
    .bind(username)
    .bind(password_hash)
    .bind(now)
    .fetch_optional(&mut *c)
    .await)?)
}

pub async fn by_username(conn: &mut Conn, username: &str) -> Result<Option<AdminRow>> {
    Ok(on!(conn, |c| sqlx::query_as(&format!("SELECT {COLUMNS} FROM admins WHERE username = $1"))
        .bind(username)
        .fetch_optional(&mut *c)
        .await)?)
}

pub async fn by_id(conn: &mut Conn, id: i64) -> Result<Option<AdminRow>> {
    Ok(on!(conn, |c| sqlx::query_as(&format!("SELECT {COLUMNS} FROM admins WHERE id = $1"))
        .bind(id)
        .fetch_optional(&mut *c)
        .await)?)
}

/// A new password; every session started before it ends. The change time always moves
/// forward, even for two changes within one millisecond. Returns it.
pub async fn set_password(conn: &mut Conn, id: i64, password_hash: &str, now: UnixMs) -> Result<i64> {
    Ok(on!(conn, |c| sqlx::query_scalar(
        "UPDATE admins SET password_hash = $1, password_changed_at = \
         CASE WHEN $2 > password_changed_at THEN $2 ELSE password_changed_at + 1 END \
         WHERE id = $3 RETURNING password_changed_at",
    )
    .bind(password_hash)
    .bind(now)
    .bind(id)
    .fetch_one(&mut *c)
    .await)?)
}
