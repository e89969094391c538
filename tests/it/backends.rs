//! The store in-process tests run on: a SQLite file in the test's directory or, with
//! `SIPWARDEN_TEST_STORE=postgres` (the test command's second pass), a PostgreSQL
//! database of the test's own on the server `SIPWARDEN_TEST_DATABASE_URL` names.

use std::path::Path;

use sipwarden::store::Store;

pub const URL_VAR: &str = "SIPWARDEN_TEST_DATABASE_URL";

/// The PostgreSQL server tests may use, if one is given. Under `CI=true` one must
/// be: the test command starts one.
pub fn postgres_url() -> Option<String> {
    let url = std::env::var(URL_VAR).ok().filter(|u| !u.is_empty());
    if url.is_none() && std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{URL_VAR} is not set under CI=true: tests/run-all.sh sets it");
    }
    url
}

pub async fn store_in(dir: &Path) -> Store {
    if std::env::var("SIPWARDEN_TEST_STORE").is_ok_and(|v| v == "postgres") {
        let server = postgres_url().expect("SIPWARDEN_TEST_STORE=postgres needs SIPWARDEN_TEST_DATABASE_URL");
        return Store::connect_postgres(&fresh_database(&server, dir).await).await.unwrap();
    }
    Store::open(&dir.join("sipwarden.db")).await.unwrap()
}

/// The database of the test in `dir` (one per directory and test process, new and
/// empty the first time: a test that restarts its app finds its data again); its URL.
pub async fn fresh_database(server: &str, dir: &Path) -> String {
    use sqlx::Connection;
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    dir.hash(&mut h);
    std::process::id().hash(&mut h);
    let name = format!("swt_{:016x}", h.finish());
    let mut admin = sqlx::PgConnection::connect(server).await.unwrap();
    let exists: Option<i32> = sqlx::query_scalar("SELECT 1 FROM pg_database WHERE datname = $1")
        .bind(&name)
        .fetch_optional(&mut admin)
        .await
        .unwrap();
    if exists.is_none() {
        sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut admin).await.unwrap();
    }
    admin.close().await.unwrap();
    let mut url = url::Url::parse(server).unwrap();
    url.set_path(&name);
    url.to_string()
}
