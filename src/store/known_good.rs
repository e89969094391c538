use super::{Conn, Result};
use crate::domain::UnixMs;

pub async fn record_success(conn: &mut Conn, ip: &str, account: Option<&str>, at: UnixMs) -> Result<()> {
    sqlx::query(
        "INSERT INTO known_good (ip, account, last_success_at) VALUES ($1, $2, $3) \
         ON CONFLICT (ip) DO UPDATE SET account = excluded.account, \
         last_success_at = CASE WHEN excluded.last_success_at > known_good.last_success_at \
         THEN excluded.last_success_at ELSE known_good.last_success_at END",
    )
    .bind(ip)
    .bind(account)
    .bind(at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Many addresses' latest successes (address → last account, time) in few statements.
pub async fn record_successes(
    conn: &mut Conn,
    successes: &std::collections::HashMap<String, (Option<String>, UnixMs)>,
) -> Result<()> {
    let rows: Vec<_> = successes.iter().collect();
    for chunk in rows.chunks(300) {
        let mut q = sqlx::QueryBuilder::new("INSERT INTO known_good (ip, account, last_success_at) ");
        q.push_values(chunk, |mut b, (ip, (account, at))| {
            b.push_bind(ip.to_string()).push_bind(account.clone()).push_bind(*at);
        });
        q.push(
            " ON CONFLICT (ip) DO UPDATE SET account = excluded.account, \
             last_success_at = CASE WHEN excluded.last_success_at > known_good.last_success_at \
             THEN excluded.last_success_at ELSE known_good.last_success_at END",
        );
        q.build().persistent(false).execute(&mut *conn).await?;
    }
    Ok(())
}

pub async fn succeeded_since(conn: &mut Conn, ip: &str, since: UnixMs) -> Result<bool> {
    let row: Option<(i64,)> =
        sqlx::query_as("SELECT last_success_at FROM known_good WHERE ip = $1 AND last_success_at > $2")
            .bind(ip)
            .bind(since)
            .fetch_optional(conn)
            .await?;
    Ok(row.is_some())
}

/// When `ip` last authenticated successfully, and as whom.
pub async fn last_success(conn: &mut Conn, ip: &str) -> Result<Option<(Option<String>, i64)>> {
    Ok(sqlx::query_as("SELECT account, last_success_at FROM known_good WHERE ip = $1")
        .bind(ip)
        .fetch_optional(conn)
        .await?)
}

/// Account names that authenticated successfully: real endpoints, as the logs know them.
pub async fn accounts(conn: &mut Conn) -> Result<Vec<String>> {
    let rows: Vec<(String,)> =
        sqlx::query_as("SELECT DISTINCT account FROM known_good WHERE account IS NOT NULL ORDER BY account")
            .fetch_all(conn)
            .await?;
    Ok(rows.into_iter().map(|r| r.0).collect())
}
