//! History past its retention is removed in small batches; what is recent, what is
//! still banned and what is kept forever stays.

use sipwarden::config::Retention;
use sipwarden::domain::DAY_MS;
use sipwarden::store;
use tokio_util::sync::CancellationToken;

use crate::common::NOW;

async fn failure(conn: &mut store::Conn, ip: &str, at: i64) {
    let f = store::failures::NewFailure {
        at,
        ip: Some(ip.into()),
        service: "SIP",
        account: Some("1001"),
        kind: "wrong_password",
        source: "/var/log/asterisk/full",
        raw: "",
        tampered: false,
        verdict: "watch",
    };
    store::failures::insert(conn, &f).await.unwrap();
}

async fn count(conn: &mut store::Conn, sql: &str) -> i64 {
    store::raw::number(conn, sql).await.unwrap()
}

#[tokio::test]
async fn history_past_its_retention_goes_in_batches_and_the_rest_stays() {
    let dir = tempfile::tempdir().unwrap();
    let store = crate::backends::store_in(dir.path()).await;
    let mut conn = store.acquire().await.unwrap();
    let old = NOW - 100 * DAY_MS;
    // More old failures than one batch holds.
    for i in 0..(sipwarden::retention::BATCH * 2 + 37) {
        failure(&mut conn, &format!("203.0.113.{}", i % 3), old + i).await;
    }
    failure(&mut conn, "198.51.100.1", NOW - DAY_MS).await;
    let mut deltas = store::offenders::Deltas::default();
    for ip in ["203.0.113.0", "203.0.113.1", "203.0.113.2"] {
        deltas.count(ip, "SIP", Some("1001"), old);
    }
    deltas.count("198.51.100.1", "SIP", Some("1001"), NOW - DAY_MS);
    store::offenders::add_deltas(&mut conn, &deltas).await.unwrap();
    // 203.0.113.1 is still banned (until released); 203.0.113.2's ban ended long ago.
    let ban = |ip, until_at| store::bans::NewBan { ip, reason: "r", rung: 2, created_at: old, until_at };
    store::bans::insert(&mut conn, &ban("203.0.113.1", None)).await.unwrap();
    store::bans::insert(&mut conn, &ban("203.0.113.2", Some(old + DAY_MS))).await.unwrap();
    store::audit::record(&mut conn, old, "admin", None, "login", "").await.unwrap();
    drop(conn);

    let removed = sipwarden::retention::prune_once(
        &store,
        &Retention { ended_bans: Some(std::time::Duration::from_secs(30 * 86_400)), ..Retention::default() },
        NOW,
        std::time::Duration::ZERO,
        &CancellationToken::new(),
    )
    .await
    .unwrap();
    let mut conn = store.acquire().await.unwrap();
    assert_eq!(count(&mut conn, "SELECT COUNT(*) FROM failures").await, 1, "only the recent failure stays");
    let offenders: Vec<String> =
        store::raw::texts(&mut conn, "SELECT ip FROM offenders ORDER BY ip").await.unwrap();
    assert_eq!(offenders, ["198.51.100.1", "203.0.113.1"], "a banned address keeps its summary");
    let bans: Vec<String> = store::raw::texts(&mut conn, "SELECT ip FROM bans").await.unwrap();
    assert_eq!(bans, ["203.0.113.1"]);
    assert_eq!(count(&mut conn, "SELECT COUNT(*) FROM audit").await, 1, "the audit log is kept by default");
    assert!(removed >= (sipwarden::retention::BATCH * 2 + 37) as u64);
    // Nothing old is left: a second pass removes nothing.
    drop(conn);
    let again = sipwarden::retention::prune_once(
        &store,
        &Retention::default(),
        NOW,
        std::time::Duration::ZERO,
        &CancellationToken::new(),
    )
    .await
    .unwrap();
    assert_eq!(again, 0);
}
