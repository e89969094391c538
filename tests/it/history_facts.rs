//! The pipeline reads each address's history once for many records, and keeps it
//! for the rest of the batch with what its transactions store; the ladder must see
//! exactly what one query per failure would have shown it, whatever is stored.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sipwarden::domain::{DAY_MS, HOUR_MS};
use sipwarden::store::{self, history::Span};

use crate::common::NOW;

/// Times fall on a coarse grid so that they often sit exactly on a window's edge.
const GRID: i64 = 10 * 60 * 1000;

fn on_grid(rng: &mut StdRng, below: i64) -> i64 {
    rng.random_range(0..below / GRID) * GRID
}

const IPS: [&str; 4] = ["192.0.2.1", "192.0.2.2", "2001:db8::3", "192.0.2.4"];

fn failure(ip: &str, at: i64) -> store::failures::NewFailure<'static> {
    store::failures::NewFailure {
        at,
        ip: Some(ip.into()),
        service: "SIP",
        account: None,
        kind: "wrong password",
        source: "/var/log/asterisk/full",
        raw: "",
        tampered: false,
        verdict: "watch",
    }
}

async fn fill(conn: &mut store::Conn, rng: &mut StdRng) {
    for _ in 0..rng.random_range(0..120) {
        let ip = IPS[rng.random_range(0..IPS.len())];
        let at = NOW - on_grid(rng, 3 * DAY_MS);
        store::failures::insert(conn, &failure(ip, at)).await.unwrap();
    }
    for _ in 0..rng.random_range(0..8) {
        let ip = IPS[rng.random_range(0..IPS.len())];
        let created_at = NOW - on_grid(rng, 2 * DAY_MS);
        let until_at = rng.random_bool(0.7).then(|| created_at + GRID + on_grid(rng, 2 * DAY_MS));
        let ban = store::bans::NewBan { ip, reason: "r", rung: rng.random_range(0..3), created_at, until_at };
        store::bans::insert(conn, &ban).await.unwrap();
        if rng.random_bool(0.3) {
            store::bans::release_ip(conn, ip, created_at + on_grid(rng, HOUR_MS), "admin").await.unwrap();
        }
    }
    for ip in IPS {
        if rng.random_bool(0.5) {
            let at = NOW - on_grid(rng, 9 * DAY_MS);
            store::known_good::record_success(conn, ip, Some("2001"), at, rng.random_bool(0.7))
                .await
                .unwrap();
        }
    }
}

async fn per_failure(
    conn: &mut store::Conn,
    span: &Span,
    ip: &str,
    at: i64,
) -> store::history::AddressHistory {
    let windows: Vec<i64> = span.windows.iter().map(|w| at - w).collect();
    store::history::for_address(conn, ip, &windows, at - span.success_for, at - span.repeat_within, at)
        .await
        .unwrap()
}

#[tokio::test]
async fn history_read_ahead_equals_history_read_per_failure() {
    for seed in 0..40 {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::backends::store_in(dir.path()).await;
        let mut conn = store.acquire().await.unwrap();
        let mut rng = StdRng::seed_from_u64(seed);
        fill(&mut conn, &mut rng).await;
        let from = NOW - on_grid(&mut rng, DAY_MS);
        let span = Span {
            node: None,
            from,
            to: from + on_grid(&mut rng, 6 * HOUR_MS),
            // The pipeline's windows: the rungs', then the clean-before-success one,
            // which may repeat a rung's.
            windows: match seed % 2 {
                0 => vec![HOUR_MS, DAY_MS, GRID + on_grid(&mut rng, 3 * DAY_MS)],
                _ => vec![HOUR_MS, DAY_MS, HOUR_MS],
            },
            success_for: 7 * DAY_MS,
            repeat_within: DAY_MS,
        };
        let ips: Vec<String> = IPS.iter().map(|s| s.to_string()).collect();
        let mut facts = store::history::facts_for(&mut conn, &ips, &span).await.unwrap();
        for step in 0..30 {
            let ip = IPS[rng.random_range(0..IPS.len())];
            let at = span.from + on_grid(&mut rng, span.to - span.from + GRID);
            let expected = per_failure(&mut conn, &span, ip, at).await;
            assert_eq!(facts[ip].at(&span, at), expected, "seed {seed} step {step} {ip} at {at}");
            // A ban stored the way the pipeline does, told to the facts.
            if rng.random_bool(0.15) {
                let superseding = expected.active_until.is_some();
                let until = rng.random_bool(0.5).then(|| at + HOUR_MS);
                let pending = store::bans::PendingBan {
                    ip: ip.into(),
                    reason: "r".into(),
                    rung: 1,
                    created_at: at,
                    until_at: until,
                    superseding,
                    released_at: None,
                };
                store::bans::insert_many(&mut conn, &[pending]).await.unwrap();
                facts.get_mut(ip).unwrap().banned(at, until, superseding);
            }
            // A failure and a lenient success a batch's earlier transaction stored,
            // told to the facts it keeps for the next.
            if rng.random_bool(0.3) {
                store::failures::insert(&mut conn, &failure(ip, at)).await.unwrap();
                facts.get_mut(ip).unwrap().failed(&span, at);
            }
            if rng.random_bool(0.1) {
                store::known_good::record_success(&mut conn, ip, Some("2001"), at, true).await.unwrap();
                facts.get_mut(ip).unwrap().succeeded(at);
            }
        }
    }
}
