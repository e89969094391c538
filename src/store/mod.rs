//! The only code with SQL. One file per table; every function takes a connection
//! (or an open transaction) so callers decide what is atomic.

pub mod admins;
pub mod audit;
pub mod bans;
pub mod contacts;
pub mod failures;
pub mod health;
pub mod history;
pub mod incidents;
pub mod known_good;
pub mod networks;
pub mod offenders;
pub(crate) mod retention;
pub mod settings;
pub mod sources;
pub(crate) mod targets;

use std::path::Path;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

pub use sqlx::SqliteConnection as Conn;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Sql(#[from] sqlx::Error),
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("stored value is not valid: {0}")]
    Corrupt(String),
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// Appends ` column IN ($1, $2, ...)` binding `values` (callers pass a
/// [`fixed_chunks`] chunk).
fn push_in_list<'a>(q: &mut sqlx::QueryBuilder<'a, sqlx::Sqlite>, column: &str, values: &[String]) {
    q.push(format!(" {column} IN ("));
    let mut list = q.separated(", ");
    for v in values {
        list.push_bind(v.clone());
    }
    q.push(")");
}

/// Splits rows for multi-row statements into a few fixed sizes, so that each
/// statement text is parsed once per connection and then reused from the statement
/// cache: parsing a statement of hundreds of values costs more than running it.
/// The largest size keeps bound values well under SQLite's limit per statement.
fn fixed_chunks<T>(rows: &[T]) -> impl Iterator<Item = &[T]> {
    let mut rest = rows;
    std::iter::from_fn(move || {
        let size = [64, 16, 4, 1].into_iter().find(|&s| s <= rest.len())?;
        let (chunk, tail) = rest.split_at(size);
        rest = tail;
        Some(chunk)
    })
}

/// `text` as a literal inside a `LIKE … ESCAPE '\'` pattern.
fn like_literal(text: &str) -> String {
    text.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_")
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

#[derive(Debug, Clone)]
pub struct Store {
    pool: SqlitePool,
    /// Which database this is, as an admin would name it: the file's full path.
    location: std::sync::Arc<str>,
}

impl Store {
    /// Opens (creating if needed) the SQLite file, in WAL mode, and applies migrations.
    pub async fn open(path: &Path) -> Result<Store> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true);
        let pool = Self::connect(options, 8).await?;
        // The file exists now: its one full path, however it was named.
        let location = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned());
        Ok(Store { pool, location: location.display().to_string().into() })
    }

    async fn connect(options: SqliteConnectOptions, max: u32) -> Result<SqlitePool> {
        use sqlx::Connection;
        // One connection first: it creates the file, switches it to WAL and migrates it
        // before any other connection exists (two connections switching a new file to
        // WAL at once can answer "database is locked").
        let mut first = sqlx::SqliteConnection::connect_with(&options).await?;
        MIGRATOR.run(&mut first).await?;
        first.close().await?;
        Ok(SqlitePoolOptions::new()
            .max_connections(max)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options)
            .await?)
    }

    /// Which database this is (the file's full path).
    pub fn location(&self) -> &str {
        &self.location
    }

    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// A write transaction. It takes the write lock up front (`BEGIN IMMEDIATE`): a
    /// transaction that first reads and later writes could otherwise fail with "database
    /// is locked" when another connection wrote in between, which no busy timeout cures.
    pub async fn begin(&self) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>> {
        Ok(self.pool.begin_with("BEGIN IMMEDIATE").await?)
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn fixed_chunks_cover_every_row_once_in_order_in_a_few_sizes() {
        for n in [0usize, 1, 3, 4, 5, 255, 256, 257, 600, 1000] {
            let rows: Vec<usize> = (0..n).collect();
            let chunks: Vec<&[usize]> = super::fixed_chunks(&rows).collect();
            assert_eq!(chunks.concat(), rows, "{n} rows");
            assert!(chunks.iter().all(|c| [64, 16, 4, 1].contains(&c.len())), "{n} rows");
            // A few statements for the tail, however long the list.
            assert!(chunks.len() <= n / 64 + 9, "{n} rows in {} statements", chunks.len());
        }
    }
}
