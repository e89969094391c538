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
    /// The PBX it registered with.
    pub node: String,
}

/// Where a batch leaves one contact: phones renew every minute, so a long log holds
/// thousands of changes for a few contacts, and only where each ends up is written.
struct Outcome<'a> {
    change: &'a crate::domain::ContactChange,
    at: UnixMs,
    /// The first registration of the batch (since its last removal in it).
    since: UnixMs,
    /// Registered again after a removal within the batch: it began anew then.
    restarted: bool,
    user_agent: Option<&'a str>,
}

/// Stores contact changes in order; a change without a date is taken as of `now`.
pub async fn record(conn: &mut Conn, changes: &[DatedContact], now: UnixMs) -> Result<()> {
    let node = conn.node().to_owned();
    let mut outcomes: Vec<Outcome<'_>> = Vec::new();
    let mut index: std::collections::HashMap<(&str, &str), usize> = std::collections::HashMap::new();
    for c in changes {
        let (at, change) = (c.at.unwrap_or(now), &c.change);
        let key = (change.account.as_str(), change.uri.as_str());
        match index.get(&key) {
            Some(&i) => {
                let o = &mut outcomes[i];
                if change.present && !o.change.present {
                    (o.since, o.restarted) = (at, true);
                }
                o.user_agent = change.user_agent.as_deref().or(o.user_agent);
                (o.change, o.at) = (change, at);
            }
            None => {
                index.insert(key, outcomes.len());
                let user_agent = change.user_agent.as_deref();
                outcomes.push(Outcome { change, at, since: at, restarted: false, user_agent });
            }
        }
    }
    for o in outcomes {
        let change = o.change;
        if change.present {
            let expires = change.expires_in_s.map(|s| o.at + i64::from(s) * 1000);
            on!(conn, |c| {
                sqlx::query(
                "INSERT INTO contacts (account, uri, user_agent, first_at, last_at, expires_at, removed_at, node) \
                 VALUES ($1, $2, $3, $4, $5, $6, NULL, $8) \
                 ON CONFLICT (node, account, uri) DO UPDATE SET \
                   first_at = CASE WHEN $7 OR contacts.removed_at IS NOT NULL \
                     OR (contacts.expires_at IS NOT NULL AND contacts.expires_at < excluded.last_at) \
                     THEN excluded.first_at ELSE contacts.first_at END, \
                   last_at = excluded.last_at, expires_at = excluded.expires_at, removed_at = NULL, \
                   user_agent = COALESCE(excluded.user_agent, contacts.user_agent)",
            )
            .bind(&change.account)
            .bind(&change.uri)
            .bind(o.user_agent)
            .bind(o.since)
            .bind(o.at)
            .bind(expires)
            .bind(o.restarted)
            .bind(&node)
            .execute(&mut *c)
            .await
            .map(|r| r.rows_affected())
            })?;
        } else {
            on!(conn, |c| sqlx::query(
                "UPDATE contacts SET removed_at = $3, last_at = $3 \
                 WHERE node = $4 AND account = $1 AND uri = $2 AND removed_at IS NULL",
            )
            .bind(&change.account)
            .bind(&change.uri)
            .bind(o.at)
            .bind(&node)
            .execute(&mut *c)
            .await
            .map(|r| r.rows_affected()))?;
        }
    }
    Ok(())
}

/// Registrations in force at `now` on one node (PBX) or every one (`None`), by extension.
pub async fn current(
    conn: &mut Conn,
    node: Option<&str>,
    now: UnixMs,
    limit: i64,
) -> Result<Vec<ContactRow>> {
    Ok(on!(conn, |c| sqlx::query_as(
        "SELECT account, uri, user_agent, first_at, last_at, expires_at, node FROM contacts \
         WHERE removed_at IS NULL AND (expires_at IS NULL OR expires_at > $1) AND ($3 IS NULL OR node = $3) \
         ORDER BY account, first_at, uri LIMIT $2",
    )
    .bind(now)
    .bind(limit)
    .bind(node)
    .fetch_all(&mut *c)
    .await)?)
}
