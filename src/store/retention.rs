//! Old rows removed in small batches, so pruning never holds the database long
//! enough to delay ingest.

use super::{Conn, Result};
use crate::domain::UnixMs;

/// What is old enough to go; `None` keeps that kind forever.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cutoffs {
    /// Failures, and the per-address summaries last seen before it (unless banned).
    pub failures: Option<UnixMs>,
    /// Bans that ended (released or expired) before it.
    pub ended_bans: Option<UnixMs>,
    pub audit: Option<UnixMs>,
}

/// Deletes at most `limit` old rows of one kind (the first kind that still has some);
/// returns how many went. Zero: nothing is left to prune.
pub async fn prune_batch(conn: &mut Conn, cut: &Cutoffs, limit: i64) -> Result<u64> {
    if let Some(before) = cut.failures {
        let statements = [
            "DELETE FROM failures WHERE id IN (SELECT id FROM failures WHERE at < $1 LIMIT $2)",
            "DELETE FROM failure_hours WHERE hour IN (SELECT hour FROM failure_hours WHERE hour < $1 - 3600000 LIMIT $2)",
            // An address still banned keeps its summary: the bans page links to it.
            "DELETE FROM offender_accounts WHERE ip IN (SELECT o.ip FROM offenders o WHERE o.last_seen < $1 \
             AND NOT EXISTS (SELECT 1 FROM bans b WHERE b.ip = o.ip AND +b.released_at IS NULL) LIMIT $2)",
            "DELETE FROM offenders WHERE ip IN (SELECT o.ip FROM offenders o WHERE o.last_seen < $1 \
             AND NOT EXISTS (SELECT 1 FROM bans b WHERE b.ip = o.ip AND +b.released_at IS NULL) LIMIT $2)",
            "DELETE FROM forgiven WHERE ip IN (SELECT ip FROM forgiven WHERE at < $1 LIMIT $2)",
            "DELETE FROM changes WHERE id IN (SELECT id FROM changes WHERE at < $1 LIMIT $2)",
            "DELETE FROM known_good WHERE ip IN (SELECT ip FROM known_good WHERE last_success_at < $1 LIMIT $2)",
            // Registrations that ended long ago.
            "DELETE FROM contacts WHERE (account, uri) IN (SELECT account, uri FROM contacts \
             WHERE (removed_at IS NOT NULL AND removed_at < $1) OR (expires_at IS NOT NULL AND expires_at < $1) LIMIT $2)",
        ];
        for sql in statements {
            let n = delete_batch(conn, sql, before, limit).await?;
            if n > 0 {
                return Ok(n);
            }
        }
    }
    if let Some(before) = cut.ended_bans {
        let sql = "DELETE FROM bans WHERE id IN (SELECT id FROM bans WHERE \
                   (released_at IS NOT NULL AND released_at < $1) OR \
                   (released_at IS NULL AND until_at IS NOT NULL AND until_at < $1) LIMIT $2)";
        let n = delete_batch(conn, sql, before, limit).await?;
        if n > 0 {
            return Ok(n);
        }
    }
    if let Some(before) = cut.audit {
        let sql = "DELETE FROM audit WHERE id IN (SELECT id FROM audit WHERE at < $1 LIMIT $2)";
        return delete_batch(conn, sql, before, limit).await;
    }
    Ok(0)
}

/// Runs one of the statements above (`$1` the cutoff, `$2` the batch size).
async fn delete_batch(conn: &mut Conn, sql: &str, before: UnixMs, limit: i64) -> Result<u64> {
    Ok(on!(conn, |c| sqlx::query(sql)
        .bind(before)
        .bind(limit)
        .execute(&mut *c)
        .await
        .map(|r| r.rows_affected()))?)
}
