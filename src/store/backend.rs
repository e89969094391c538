//! A connection of either engine, pooled or inside a transaction: what every store
//! function takes as `&mut Conn`.

use sqlx::pool::PoolConnection;
use sqlx::{PgConnection, Postgres, Sqlite, SqliteConnection, Transaction};

use std::sync::Arc;

/// A connection and the node (PBX) writing through it: the rows it writes say so.
pub struct Conn {
    engine: Engine,
    node: Arc<str>,
}

pub(super) enum Engine {
    Sqlite(PoolConnection<Sqlite>),
    Postgres(PoolConnection<Postgres>),
    SqliteTx(Transaction<'static, Sqlite>),
    PostgresTx(Transaction<'static, Postgres>),
}

/// The engine's own connection, for one statement.
pub enum Native<'a> {
    Sqlite(&'a mut SqliteConnection),
    Postgres(&'a mut PgConnection),
}

impl Conn {
    pub(super) fn new(engine: Engine, node: Arc<str>) -> Conn {
        Conn { engine, node }
    }

    pub fn native(&mut self) -> Native<'_> {
        match &mut self.engine {
            Engine::Sqlite(c) => Native::Sqlite(c),
            Engine::SqliteTx(t) => Native::Sqlite(t),
            Engine::Postgres(c) => Native::Postgres(c),
            Engine::PostgresTx(t) => Native::Postgres(t),
        }
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self.engine, Engine::Postgres(_) | Engine::PostgresTx(_))
    }

    /// The node this connection writes for.
    pub fn node(&self) -> &str {
        &self.node
    }
}

/// A pooled connection; `&mut *pooled` is the `&mut Conn` store functions take.
pub struct Pooled(Conn);

impl Pooled {
    pub(super) fn new(conn: Conn) -> Pooled {
        Pooled(conn)
    }
}

impl std::ops::Deref for Pooled {
    type Target = Conn;
    fn deref(&self) -> &Conn {
        &self.0
    }
}

impl std::ops::DerefMut for Pooled {
    fn deref_mut(&mut self) -> &mut Conn {
        &mut self.0
    }
}

/// An open transaction: rolled back when dropped without [`Tx::commit`].
pub struct Tx(Conn);

impl Tx {
    pub(super) fn new(conn: Conn) -> Tx {
        Tx(conn)
    }

    pub async fn commit(self) -> super::Result<()> {
        match self.0.engine {
            Engine::SqliteTx(t) => t.commit().await?,
            Engine::PostgresTx(t) => t.commit().await?,
            // Built only by `Store::begin`, which opens a transaction.
            Engine::Sqlite(_) | Engine::Postgres(_) => {}
        }
        Ok(())
    }
}

impl std::ops::Deref for Tx {
    type Target = Conn;
    fn deref(&self) -> &Conn {
        &self.0
    }
}

impl std::ops::DerefMut for Tx {
    fn deref_mut(&mut self) -> &mut Conn {
        &mut self.0
    }
}
