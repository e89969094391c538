//! `contacts`: registrations appearing, renewed and ending, as Asterisk reports them.

use super::{Conn, Result};
use crate::domain::{DatedContact, UnixMs};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ContactRow {
    pub account: String,
    pub uri: String,
    pub user_agent: Option<String>,
    /// When this registration began (a contact removed and added again begins anew).
    pub first_at: i64,
    pub last_at: i64,
    pub expires_at: Option<i64>,
}

/// Stores contact changes in order; a change without a date is taken as of `now`.
pub async fn record(conn: &mut Conn, changes: &[DatedContact], now: UnixMs) -> Result<()> {
    for c in changes {
        let at = c.at.unwrap_or(now);
        let change = &c.change;
        if change.present {
            let expires = change.expires_in_s.map(|s| at + i64::from(s) * 1000);
            sqlx::query(
                "INSERT INTO contacts (account, uri, user_agent, first_at, last_at, expires_at, removed_at) \
                 VALUES ($1, $2, $3, $4, $4, $5, NULL) \
                 ON CONFLICT (account, uri) DO UPDATE SET \
                   first_at = CASE WHEN contacts.removed_at IS NOT NULL \
                     OR (contacts.expires_at IS NOT NULL AND contacts.expires_at < excluded.last_at) \
                     THEN excluded.first_at ELSE contacts.first_at END, \
                   last_at = excluded.last_at, expires_at = excluded.expires_at, removed_at = NULL, \
                   user_agent = COALESCE(excluded.user_agent, contacts.user_agent)",
            )
            .bind(&change.account)
            .bind(&change.uri)
            .bind(&change.user_agent)
            .bind(at)
            .bind(expires)
            .execute(&mut *conn)
            .await?;
        } else {
            sqlx::query(
                "UPDATE contacts SET removed_at = $3, last_at = $3 \
                 WHERE account = $1 AND uri = $2 AND removed_at IS NULL",
            )
            .bind(&change.account)
            .bind(&change.uri)
            .bind(at)
            .execute(&mut *conn)
            .await?;
        }
    }
    Ok(())
}

/// Registrations in force at `now`, by extension.
pub async fn current(conn: &mut Conn, now: UnixMs, limit: i64) -> Result<Vec<ContactRow>> {
    Ok(sqlx::query_as(
        "SELECT account, uri, user_agent, first_at, last_at, expires_at FROM contacts \
         WHERE removed_at IS NULL AND (expires_at IS NULL OR expires_at > $1) \
         ORDER BY account, first_at, uri LIMIT $2",
    )
    .bind(now)
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?)
}
