//! Faults a PBX meets: sipwarden killed with SIGKILL mid-import, logs rotated while
//! written. Sizes are small by default; `SIPWARDEN_LONG_TESTS=1` runs the full ones
//! (1M lines, 100 rotations).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use sipwarden::store::{self, Store};

use crate::common::append;
use crate::harness::{Running, Serve, eventually_async};

fn long() -> bool {
    std::env::var_os("SIPWARDEN_LONG_TESTS").is_some()
}

/// A deterministic log: noise and failures from `addresses` addresses; returns the truth.
pub(crate) fn write_log(path: &Path, lines: usize, addresses: u32) -> BTreeMap<String, i64> {
    let mut truth = BTreeMap::new();
    let mut text = String::with_capacity(lines * 140);
    let mut seed: u64 = 42;
    for i in 0..lines {
        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        if seed >> 60 < 2 {
            let ip = format!(
                "198.18.{}.{}",
                (seed >> 40) as u32 % addresses / 250,
                (seed >> 40) as u32 % addresses % 250
            );
            *truth.entry(ip.clone()).or_insert(0) += 1;
            text.push_str(&format!(
                "[2026-11-27 09:{:02}:{:02}] NOTICE[1] res_pjsip/pjsip_distributor.c: Request 'REGISTER' from '<sip:{i}@x>' failed for '{ip}:5060' (callid: {i}) - Failed to authenticate\n",
                (i / 60) % 60,
                i % 60
            ));
        } else {
            text.push_str(&format!("[2026-11-27 09:00:00] VERBOSE[2] pbx.c: Executing [s@from-internal:{i}] NoOp(\"x\", \"\") in new stack\n"));
        }
    }
    append(path, &text);
    truth
}

/// `serve` on `log`, returning at once (tests here stop it at any moment).
pub(crate) fn serve(dir: &Path, log: &Path) -> Running {
    Serve::dry_run(dir).args(["--trusted", "198.18.0.0/15"]).log(log).spawn()
}

pub(crate) async fn counts(store: &Store) -> BTreeMap<String, i64> {
    let mut conn = store.acquire().await.unwrap();
    store::failures::count_by_ip(&mut conn).await.unwrap().into_iter().collect()
}

/// Waits until the `serve` using `data` follows `log`; returns its database. Opened
/// only then: `Store::open` migrates, and two migrators on a new file race.
pub(crate) async fn following(data: &Path, log: &Path) -> Store {
    use sqlx::Connection;
    let deadline = Instant::now() + Duration::from_secs(60);
    let db = data.join("sipwarden.db");
    loop {
        // A plain connection that changes nothing; errors mean "not yet".
        let url = format!("sqlite://{}?mode=ro", db.display());
        if let Ok(mut conn) = sqlx::SqliteConnection::connect(&url).await {
            let row: Result<Option<(i64,)>, _> =
                sqlx::query_as("SELECT read_offset FROM log_sources WHERE path = $1")
                    .bind(log.display().to_string())
                    .fetch_optional(&mut conn)
                    .await;
            let _ = conn.close().await;
            if matches!(row, Ok(Some(_))) {
                break;
            }
        }
        assert!(Instant::now() < deadline, "serve never started following");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Store::open(&db).await.unwrap()
}

pub(crate) async fn read_offset(store: &Store, log: &Path) -> i64 {
    let mut conn = store.acquire().await.unwrap();
    store::sources::get(&mut conn, &log.display().to_string()).await.unwrap().map_or(0, |s| s.read_offset)
}

/// Waits until `serve` has stored `log` up to `size` bytes.
pub(crate) async fn caught_up(store: &Store, log: &Path, size: i64, within: Duration) {
    let deadline = Instant::now() + within;
    while read_offset(store, log).await < size {
        assert!(Instant::now() < deadline, "never caught up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_with_sigkill_ten_times_mid_import_nothing_is_lost_or_counted_twice() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("full");
    let truth = write_log(&log, if long() { 1_000_000 } else { 60_000 }, 2_000);
    let size = std::fs::metadata(&log).unwrap().len() as i64;
    let data = dir.path().join("data");
    let mut seed: u64 = 7;
    for _ in 0..10 {
        let mut child = serve(&data, &log);
        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        std::thread::sleep(Duration::from_millis(150 + (seed >> 56) * 2));
        child.kill();
    }
    let mut child = serve(&data, &log);
    let store = Store::open(&data.join("sipwarden.db")).await.unwrap();
    caught_up(&store, &log, size, Duration::from_secs(if long() { 600 } else { 60 })).await;
    child.kill();
    assert_eq!(counts(&store).await, truth);
}

#[tokio::test(flavor = "multi_thread")]
async fn rotations_while_lines_are_written_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("messages");
    append(&log, "");
    let data = dir.path().join("data");
    let mut child = serve(&data, &log);
    // Lines rotated away before sipwarden first saw the file are not its to read.
    following(&data, &log).await;
    let rotations = if long() { 100 } else { 20 };
    let mut truth: BTreeMap<String, i64> = BTreeMap::new();
    for r in 0..rotations {
        for i in 0..50 {
            let ip = format!("198.19.{}.{}", r % 200, i % 5);
            *truth.entry(ip.clone()).or_insert(0) += 1;
            append(
                &log,
                &format!(
                    "[2026-11-27 09:00:00] NOTICE[1] chan_sip.c: Registration from '<sip:{i}@x>' failed for '{ip}:5060' - Wrong password\n"
                ),
            );
        }
        if r % 2 == 0 {
            // rename + create, as logrotate does by default
            std::fs::rename(&log, dir.path().join(format!("messages.{r}"))).unwrap();
            append(&log, "");
        } else {
            // copytruncate; lines written between the copy and the truncate are the
            // method's own loss, so sipwarden is given the time to read them first.
            std::thread::sleep(Duration::from_millis(1200));
            std::fs::copy(&log, dir.path().join(format!("messages.{r}"))).unwrap();
            std::fs::OpenOptions::new().write(true).truncate(true).open(&log).unwrap();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let store = Store::open(&data.join("sipwarden.db")).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while counts(&store).await != truth {
        if Instant::now() > deadline {
            let got = counts(&store).await;
            let missing: Vec<_> = truth.iter().filter(|(ip, n)| got.get(*ip) != Some(n)).collect();
            panic!("lost lines: {missing:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    child.kill();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_database_locked_by_someone_else_delays_but_loses_nothing() {
    use sqlx::Connection;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("full");
    append(&log, "");
    let data = dir.path().join("data");
    let mut child = serve(&data, &log);
    let store = following(&data, &log).await;
    // Another program takes the write lock for longer than sipwarden's busy timeout (5 s).
    let mut locker =
        sqlx::SqliteConnection::connect(&format!("sqlite://{}", data.join("sipwarden.db").display()))
            .await
            .unwrap();
    sqlx::query("BEGIN EXCLUSIVE").execute(&mut locker).await.unwrap();
    let truth = write_log(&log, 3_000, 50);
    tokio::time::sleep(Duration::from_secs(7)).await;
    assert!(counts(&store).await.is_empty(), "nothing could be written while the lock was held");
    sqlx::query("ROLLBACK").execute(&mut locker).await.unwrap();
    drop(locker);
    eventually_async("caught up after the lock was released", Duration::from_secs(60), || async {
        counts(&store).await == truth
    })
    .await;
    child.kill();
}
