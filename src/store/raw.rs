//! Statements given whole, on either engine: for tests and checks that look at the
//! tables directly (no caller's input is ever spliced into them).

use super::{Conn, Result};

/// The first column of the one row `sql` returns, as a number.
pub async fn number(conn: &mut Conn, sql: &str) -> Result<i64> {
    Ok(on!(conn, |c| sqlx::query_scalar(sql).fetch_one(&mut *c).await)?)
}

/// The first column of every row `sql` returns, as text.
pub async fn texts(conn: &mut Conn, sql: &str) -> Result<Vec<String>> {
    Ok(on!(conn, |c| sqlx::query_scalar(sql).fetch_all(&mut *c).await)?)
}

/// Runs `sql`; how many rows it changed.
pub async fn execute(conn: &mut Conn, sql: &str) -> Result<u64> {
    Ok(on!(conn, |c| sqlx::query(sql).execute(&mut *c).await.map(|r| r.rows_affected()))?)
}
