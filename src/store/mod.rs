//! The only code with SQL. One file per table; every function takes a connection
//! (or an open transaction) so callers decide what is atomic. The same SQL text runs
//! on SQLite (the embedded default) and PostgreSQL (a store shared by several
//! PBXes), each through its own driver ([`on!`]).

/// Runs `$body` with `$c` bound to the engine's own connection: the same statement
/// text and binds, compiled once per engine, so SQLite keeps its native speed.
macro_rules! on {
    ($conn:expr, |$c:ident| $body:expr) => {
        match $crate::store::Conn::native($conn) {
            $crate::store::Native::Sqlite($c) => $body,
            $crate::store::Native::Postgres($c) => $body,
        }
    };
}

pub mod admins;
pub mod audit;
pub mod bans;
pub mod changes;
pub mod contacts;
pub mod failures;
pub mod health;
pub mod history;
pub mod incidents;
pub mod known_good;
pub mod networks;
pub mod nodes;
pub mod offenders;
pub mod raw;
pub(crate) mod retention;
pub mod settings;
pub mod sources;
pub(crate) mod targets;

mod backend;

use std::path::Path;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use backend::Engine;
pub use backend::{Conn, Native, Pooled, Tx};

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
fn push_in_list<'a, DB>(q: &mut sqlx::QueryBuilder<'a, DB>, column: &str, values: &[String])
where
    DB: sqlx::Database,
    String: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
{
    q.push(format!(" {column} IN ("));
    let mut list = q.separated(", ");
    for v in values {
        list.push_bind(v.clone());
    }
    list.push_unseparated(")");
}

/// Splits rows for multi-row statements into a few fixed sizes, so that each
/// statement text is parsed once per connection and then reused from the statement
/// cache: parsing a statement of hundreds of values costs more than running it.
/// The largest size keeps bound values well under SQLite's limit per statement.
fn fixed_chunks<T>(rows: &[T]) -> impl Iterator<Item = &[T]> {
    let mut rest = rows;
    std::iter::from_fn(move || {
        let size = [256, 64, 16, 4, 1].into_iter().find(|&s| s <= rest.len())?;
        let (chunk, tail) = rest.split_at(size);
        rest = tail;
        Some(chunk)
    })
}

/// `text` as a literal inside a `LIKE … ESCAPE '\'` pattern.
fn like_literal(text: &str) -> String {
    text.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_")
}

/// Each engine's schema history: the same tables, each in its own dialect.
static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

#[derive(Debug, Clone)]
enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

#[derive(Debug, Clone)]
pub struct Store {
    pool: Pool,
    /// Which database this is, as an admin would name it: the file's full path, or
    /// the PostgreSQL URL without its password.
    location: std::sync::Arc<str>,
    /// The node (PBX) this handle writes for: its failures, bans, log cursors, health.
    node: std::sync::Arc<str>,
    /// Since when (unix ms) and why no connection could be had, while that lasts.
    unreachable: std::sync::Arc<std::sync::Mutex<Option<(i64, String)>>>,
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
        let pool = Self::connect_sqlite(options, 8).await?;
        // The file exists now: its one full path, however it was named.
        let location = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned());
        Ok(Store {
            pool: Pool::Sqlite(pool),
            location: location.display().to_string().into(),
            node: default_node().into(),
            unreachable: Default::default(),
        })
    }

    /// Connects to a shared PostgreSQL database (`postgres://user:password@host/db`)
    /// and applies migrations.
    pub async fn connect_postgres(url: &str) -> Result<Store> {
        let options: PgConnectOptions = url.parse()?;
        let options = options.application_name("sipwarden");
        let pool = PgPoolOptions::new()
            .max_connections(12)
            .min_connections(2)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options)
            .await?;
        POSTGRES_MIGRATIONS.run(&pool).await?;
        Ok(Store {
            pool: Pool::Postgres(pool),
            location: shown_url(url).into(),
            node: default_node().into(),
            unreachable: Default::default(),
        })
    }

    async fn connect_sqlite(options: SqliteConnectOptions, max: u32) -> Result<SqlitePool> {
        use sqlx::Connection;
        // One connection first: it creates the file, switches it to WAL and migrates it
        // before any other connection exists (two connections switching a new file to
        // WAL at once can answer "database is locked").
        let mut first = sqlx::SqliteConnection::connect_with(&options).await?;
        SQLITE_MIGRATIONS.run(&mut first).await?;
        first.close().await?;
        Ok(SqlitePoolOptions::new()
            .max_connections(max)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options)
            .await?)
    }

    /// Which database this is (the file's full path, or the URL without password).
    pub fn location(&self) -> &str {
        &self.location
    }

    /// The same store, writing for node `name`.
    pub fn with_node(mut self, name: &str) -> Store {
        self.node = name.into();
        self
    }

    /// The node this handle writes for.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// Whether this is a shared PostgreSQL store.
    pub fn is_shared(&self) -> bool {
        matches!(self.pool, Pool::Postgres(_))
    }

    /// The SQLite pool, for what needs the engine itself (panel sessions).
    pub fn sqlite_pool(&self) -> Option<&SqlitePool> {
        match &self.pool {
            Pool::Sqlite(p) => Some(p),
            Pool::Postgres(_) => None,
        }
    }

    /// The PostgreSQL pool, for what needs the engine itself (sessions, notifications).
    pub fn postgres_pool(&self) -> Option<&PgPool> {
        match &self.pool {
            Pool::Postgres(p) => Some(p),
            Pool::Sqlite(_) => None,
        }
    }

    /// A connection from the pool.
    pub async fn acquire(&self) -> Result<Pooled> {
        let engine = match &self.pool {
            Pool::Sqlite(p) => p.acquire().await.map(Engine::Sqlite),
            Pool::Postgres(p) => self.probing(p.acquire()).await.map(Engine::Postgres),
        };
        Ok(Pooled::new(Conn::new(self.reached(engine)?, self.node.clone())))
    }

    /// Since when (unix ms) and why the database cannot be reached, while it cannot.
    pub fn unreachable(&self) -> Option<(i64, String)> {
        self.unreachable.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// While the server is known to be away, waiting [`PROBE_WHILE_AWAY`] for a
    /// connection, not the pool's full timeout: a refused connection is retried until
    /// then, and every worker (the log reader keeping batches locally, the firewall
    /// enforcing local bans) would stall that long on each try.
    async fn probing<T>(
        &self,
        connect: impl std::future::Future<Output = std::result::Result<T, sqlx::Error>>,
    ) -> std::result::Result<T, sqlx::Error> {
        if self.unreachable().is_none() {
            return connect.await;
        }
        tokio::time::timeout(PROBE_WHILE_AWAY, connect).await.unwrap_or(Err(sqlx::Error::PoolTimedOut))
    }

    /// Notes whether a connection could be had.
    fn reached<T>(&self, got: std::result::Result<T, sqlx::Error>) -> std::result::Result<T, sqlx::Error> {
        let mut state = self.unreachable.lock().unwrap_or_else(|p| p.into_inner());
        match &got {
            Ok(_) => *state = None,
            Err(e) if connection_lost(e) => {
                if state.is_none() {
                    let now = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| d.as_millis() as i64);
                    *state = Some((now, e.to_string()));
                }
            }
            Err(_) => {}
        }
        got
    }

    /// A write transaction. On SQLite it takes the write lock up front (`BEGIN
    /// IMMEDIATE`): a transaction that first reads and later writes could otherwise fail
    /// with "database is locked" when another connection wrote in between, which no
    /// busy timeout cures.
    pub async fn begin(&self) -> Result<Tx> {
        let engine = match &self.pool {
            Pool::Sqlite(p) => p.begin_with("BEGIN IMMEDIATE").await.map(Engine::SqliteTx),
            Pool::Postgres(p) => self.probing(p.begin()).await.map(Engine::PostgresTx),
        };
        Ok(Tx::new(Conn::new(self.reached(engine)?, self.node.clone())))
    }

    pub async fn close(&self) {
        match &self.pool {
            Pool::Sqlite(p) => p.close().await,
            Pool::Postgres(p) => p.close().await,
        }
    }
}

/// Whether `error` says the database server could not be reached (not that it
/// refused a statement or a login).
pub fn connection_lost(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::Tls(_))
}

/// How long a connection is waited for while the server is known to be away.
const PROBE_WHILE_AWAY: Duration = Duration::from_millis(300);

/// This machine's host name: a node's name unless the configuration gives one.
pub fn default_node() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// `url` as it may be shown and logged: the password replaced by `***`.
pub fn shown_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        Ok(u) => u.to_string(),
        Err(_) => "postgres (unparsable URL)".into(),
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
            assert!(chunks.iter().all(|c| [256, 64, 16, 4, 1].contains(&c.len())), "{n} rows");
            // A few statements for the tail, however long the list.
            assert!(chunks.len() <= n / 64 + 9, "{n} rows in {} statements", chunks.len());
        }
    }
}
