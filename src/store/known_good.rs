use super::{Conn, Result};
use crate::domain::UnixMs;

/// One success; `lenient`: it earned the address a lenient first rung.
pub async fn record_success(
    conn: &mut Conn,
    ip: &str,
    account: Option<&str>,
    at: UnixMs,
    lenient: bool,
) -> Result<()> {
    let success = Success { account: account.map(str::to_owned), at, lenient_at: lenient.then_some(at) };
    record_successes(conn, &std::iter::once((ip.to_owned(), success)).collect()).await
}

/// The latest success of an address in a transaction.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Success {
    pub account: Option<String>,
    pub at: UnixMs,
    /// The latest success that earned leniency.
    pub lenient_at: Option<UnixMs>,
}

/// Many addresses' latest successes in few statements.
pub async fn record_successes(
    conn: &mut Conn,
    successes: &std::collections::HashMap<String, Success>,
) -> Result<()> {
    on!(conn, |c| {
        let rows: Vec<_> = successes.iter().collect();
        for chunk in super::fixed_chunks(&rows) {
            let mut q =
                sqlx::QueryBuilder::new("INSERT INTO known_good (ip, account, last_success_at, lenient_at) ");
            q.push_values(chunk, |mut b, (ip, s)| {
                b.push_bind(ip.to_string())
                    .push_bind(s.account.clone())
                    .push_bind(s.at)
                    .push_bind(s.lenient_at);
            });
            q.push(
                " ON CONFLICT (ip) DO UPDATE SET account = excluded.account, \
             last_success_at = CASE WHEN excluded.last_success_at > known_good.last_success_at \
             THEN excluded.last_success_at ELSE known_good.last_success_at END, \
             lenient_at = CASE WHEN COALESCE(excluded.lenient_at, 0) > COALESCE(known_good.lenient_at, 0) \
             THEN excluded.lenient_at ELSE known_good.lenient_at END",
            );
            q.build().execute(&mut *c).await?;
        }
        Ok(())
    })
}

/// When `ip` last authenticated successfully, and as whom.
pub async fn last_success(conn: &mut Conn, ip: &str) -> Result<Option<(Option<String>, i64)>> {
    Ok(on!(conn, |c| sqlx::query_as("SELECT account, last_success_at FROM known_good WHERE ip = $1")
        .bind(ip)
        .fetch_optional(&mut *c)
        .await)?)
}

/// Account names that authenticated successfully: real endpoints, as the logs know them.
pub async fn accounts(conn: &mut Conn) -> Result<Vec<String>> {
    let rows: Vec<(String,)> = on!(conn, |c| sqlx::query_as(
        "SELECT DISTINCT account FROM known_good WHERE account IS NOT NULL ORDER BY account"
    )
    .fetch_all(&mut *c)
    .await)?;
    Ok(rows.into_iter().map(|r| r.0).collect())
}
