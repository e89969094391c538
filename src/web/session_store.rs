//! Panel sessions kept in the store's own engine: SQLite's file or the shared
//! PostgreSQL database (so any node's panel knows a session another node started).

use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::{self, ExpiredDeletion, SessionStore};
use tower_sessions_sqlx_store::{PostgresStore, SqliteStore};

#[derive(Debug, Clone)]
pub enum PanelSessions {
    Sqlite(SqliteStore),
    Postgres(PostgresStore),
}

const TABLE: &str = "panel_sessions";

impl PanelSessions {
    /// The session table in `store`'s database, created when missing.
    pub async fn for_store(store: &crate::store::Store) -> anyhow::Result<PanelSessions> {
        let sessions = if let Some(pool) = store.sqlite_pool() {
            let s = SqliteStore::new(pool.clone()).with_table_name(TABLE).map_err(anyhow::Error::msg)?;
            s.migrate().await?;
            PanelSessions::Sqlite(s)
        } else if let Some(pool) = store.postgres_pool() {
            let s = PostgresStore::new(pool.clone()).with_table_name(TABLE).map_err(anyhow::Error::msg)?;
            s.migrate().await?;
            PanelSessions::Postgres(s)
        } else {
            anyhow::bail!("the store has no pool for panel sessions")
        };
        Ok(sessions)
    }
}

#[async_trait::async_trait]
impl SessionStore for PanelSessions {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        match self {
            PanelSessions::Sqlite(s) => s.create(record).await,
            PanelSessions::Postgres(s) => s.create(record).await,
        }
    }

    async fn save(&self, record: &Record) -> session_store::Result<()> {
        match self {
            PanelSessions::Sqlite(s) => s.save(record).await,
            PanelSessions::Postgres(s) => s.save(record).await,
        }
    }

    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        match self {
            PanelSessions::Sqlite(s) => s.load(id).await,
            PanelSessions::Postgres(s) => s.load(id).await,
        }
    }

    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        match self {
            PanelSessions::Sqlite(s) => s.delete(id).await,
            PanelSessions::Postgres(s) => s.delete(id).await,
        }
    }
}

#[async_trait::async_trait]
impl ExpiredDeletion for PanelSessions {
    async fn delete_expired(&self) -> session_store::Result<()> {
        match self {
            PanelSessions::Sqlite(s) => s.delete_expired().await,
            PanelSessions::Postgres(s) => s.delete_expired().await,
        }
    }
}
