//! Decisions stored by the live pipeline: the ladder, trusted networks, known-good
//! phones, one source per service, and the clean failed-auth log.

use sipwarden::asterisk::SourceKind;
use sipwarden::domain::{DAY_MS, HOUR_MS, MINUTE_MS, TrustedNetworks};
use sipwarden::ingest::StartAt;

use crate::common::{NOW, TestApp, append};

/// The log date Asterisk would print for `ms` (local time, `%F %T.%3q`).
fn date(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap()
        .with_timezone(&chrono::Local)
        .format("%Y-%m-%d %H:%M:%S%.3f")
        .to_string()
}

fn failure_at(ip: &str, at: i64) -> String {
    format!(
        "[{}] NOTICE[1] res_pjsip/pjsip_distributor.c: Request 'REGISTER' from '<sip:100@x>' failed for '{ip}:5060' (callid: {at}) - Failed to authenticate\n",
        date(at)
    )
}

fn security_event_at(event: &str, ip: &str, at: i64, tail: &str) -> String {
    format!(
        "[{}] SECURITY[2] res_security_log.c: SecurityEvent=\"{event}\",EventTV=\"{}\",Severity=\"Error\",Service=\"PJSIP\",EventVersion=\"1\",AccountID=\"2001\",SessionID=\"{at}\",LocalAddress=\"IPV4/UDP/10.0.0.1/5060\",RemoteAddress=\"IPV4/UDP/{ip}/5060\"{tail}\n",
        date(at),
        chrono::DateTime::from_timestamp_millis(at).unwrap().format("%Y-%m-%dT%H:%M:%S%.3f+0000")
    )
}

async fn app_with_log(trusted: TrustedNetworks) -> (TestApp, std::path::PathBuf) {
    let mut app = TestApp::new(trusted, false).await;
    let log = app.path("full");
    append(&log, "");
    app.follow(&log, Some(SourceKind::Messages), StartAt::Beginning).await;
    (app, log)
}

const ATTACKER: &str = "203.0.113.9";

#[tokio::test]
async fn two_failures_within_an_hour_ban_for_an_hour() {
    let (mut app, log) = app_with_log(TrustedNetworks::default()).await;
    append(&log, &failure_at(ATTACKER, NOW - 10 * MINUTE_MS));
    app.poll().await;
    assert!(app.active_bans().await.is_empty(), "one failure is not enough");
    append(&log, &failure_at(ATTACKER, NOW - 5 * MINUTE_MS));
    app.poll().await;
    let bans = app.active_bans().await;
    assert_eq!(bans.len(), 1);
    assert_eq!(bans[0].ip, ATTACKER);
    assert_eq!(bans[0].rung, 1);
    assert_eq!(bans[0].until_at, Some(NOW - 5 * MINUTE_MS + HOUR_MS));
    assert_eq!(bans[0].reason, "2 failures within 1h");
}

#[tokio::test]
async fn twelve_failures_in_a_day_ban_until_released() {
    let (mut app, log) = app_with_log(TrustedNetworks::default()).await;
    for i in 0..12 {
        // 100 minutes apart: never two within an hour.
        append(&log, &failure_at(ATTACKER, NOW - 20 * HOUR_MS + i * 100 * MINUTE_MS));
    }
    app.poll().await;
    let bans = app.active_bans().await;
    assert_eq!(bans.len(), 1);
    assert_eq!((bans[0].rung, bans[0].until_at), (2, None));
}

#[tokio::test]
async fn a_repeat_offender_gets_a_day() {
    let (mut app, log) = app_with_log(TrustedNetworks::default()).await;
    append(
        &log,
        &(failure_at(ATTACKER, NOW - 5 * HOUR_MS) + &failure_at(ATTACKER, NOW - 5 * HOUR_MS + MINUTE_MS)),
    );
    append(&log, &(failure_at(ATTACKER, NOW - 2 * MINUTE_MS) + &failure_at(ATTACKER, NOW - MINUTE_MS)));
    app.poll().await;
    let bans = app.active_bans().await;
    assert_eq!(bans.len(), 1);
    assert_eq!(bans[0].until_at, Some(NOW - MINUTE_MS + DAY_MS));
    assert!(bans[0].reason.contains("repeat offender"));
}

#[tokio::test]
async fn trusted_networks_are_recorded_but_never_banned() {
    let trusted = TrustedNetworks::new(["198.51.100.0/24".parse().unwrap()]);
    let (mut app, log) = app_with_log(trusted).await;
    for i in 0..15 {
        append(&log, &failure_at("198.51.100.44", NOW - i * MINUTE_MS));
    }
    app.poll().await;
    assert!(app.active_bans().await.is_empty());
    assert_eq!(app.count_for("198.51.100.44").await, 15);
}

#[tokio::test]
async fn a_phone_that_authenticated_gets_five_tries_and_its_failures_stay_visible() {
    let mut app = TestApp::new(TrustedNetworks::default(), true).await;
    let log = app.path("security");
    let phone = "198.51.100.20";
    append(&log, &security_event_at("SuccessfulAuth", phone, NOW - DAY_MS, ",UsingPassword=\"1\""));
    app.follow(&log, Some(SourceKind::Security), StartAt::Beginning).await;
    for i in 0..4 {
        append(&log, &security_event_at("InvalidAccountID", phone, NOW - 10 * MINUTE_MS + i * MINUTE_MS, ""));
    }
    app.poll().await;
    assert!(app.active_bans().await.is_empty());
    assert_eq!(app.count_for(phone).await, 4);
    append(&log, &security_event_at("InvalidAccountID", phone, NOW - MINUTE_MS, ""));
    app.poll().await;
    assert_eq!(app.active_bans().await.len(), 1);
}

#[tokio::test]
async fn with_a_security_log_the_messages_log_only_adds_iax2() {
    let mut app = TestApp::new(TrustedNetworks::default(), true).await;
    let messages = app.path("full");
    let security = app.path("security");
    append(&messages, &failure_at(ATTACKER, NOW - MINUTE_MS));
    append(
        &messages,
        &format!(
            "[{}] NOTICE[3] chan_iax2.c: Host {ATTACKER}:4569 failed to authenticate as iaxuser\n",
            date(NOW - MINUTE_MS)
        ),
    );
    append(
        &security,
        &security_event_at(
            "ChallengeResponseFailed",
            ATTACKER,
            NOW - MINUTE_MS,
            ",Challenge=\"a\",Response=\"b\",ExpectedResponse=\"\"",
        ),
    );
    app.follow(&messages, Some(SourceKind::Messages), StartAt::Beginning).await;
    app.follow(&security, Some(SourceKind::Security), StartAt::Beginning).await;
    app.poll().await;
    assert_eq!(app.count_for(ATTACKER).await, 2, "one PJSIP attempt from security, one IAX2 from messages");
}

#[tokio::test]
async fn the_clean_log_has_one_escaped_line_per_counted_failure() {
    let (mut app, log) = app_with_log(TrustedNetworks::default()).await;
    append(&log, &crate::common::noise(10));
    append(
        &log,
        &format!(
            "[{}] NOTICE[1] chan_sip.c: Registration from '\"x\" <sip:a\"b'c@x>' failed for '{ATTACKER}:5060' - Wrong password\n",
            date(NOW - MINUTE_MS)
        ),
    );
    append(&log, &failure_at(ATTACKER, NOW));
    app.poll().await;
    let clean = std::fs::read_to_string(app.path("failed-auth.log")).unwrap();
    let lines: Vec<_> = clean.lines().collect();
    assert_eq!(lines.len(), 2, "{clean}");
    assert!(
        lines[0].contains(&format!(
            "ip={ATTACKER} service=SIP user=\"a\\\"b'c\" kind=wrong_password verdict=\"watch\""
        )),
        "{}",
        lines[0]
    );
    assert!(lines[1].contains("verdict=\"ban (rung 1)\""), "{}", lines[1]);
}

#[tokio::test]
async fn a_flood_of_bans_is_stored_completely_across_transactions() {
    let (mut app, log) = app_with_log(TrustedNetworks::default()).await;
    let mut text = String::new();
    for round in 0..3 {
        for i in 0..400 {
            text.push_str(&failure_at(&format!("198.18.{}.{}", i / 200, i % 200), NOW - 1000 + round));
        }
    }
    append(&log, &text);
    app.poll().await;
    assert_eq!(app.active_bans().await.len(), 400);
    assert_eq!(app.counts().await.iter().map(|c| c.1).sum::<i64>(), 1200);
    let mut conn = app.store.acquire().await.unwrap();
    let src = sipwarden::store::sources::get(&mut conn, &log.display().to_string()).await.unwrap().unwrap();
    assert_eq!(src.lines_read, 1200, "every line counted once across the partial commits");
    assert_eq!(src.read_offset as usize, text.len());
}

#[tokio::test]
async fn failures_stored_by_a_batch_s_earlier_transaction_count_in_its_later_ones() {
    let (mut app, log) = app_with_log(TrustedNetworks::default()).await;
    // A ban at the second line closes its transaction before the batch reads further
    // addresses ahead (after the first 128 lines): the second address's first failure
    // is stored by that transaction, its second judged by the next.
    let mut text = failure_at(ATTACKER, NOW - 1000) + &failure_at(ATTACKER, NOW - 999);
    text.push_str(&failure_at("198.51.100.7", NOW - 998));
    for i in 0..125 {
        text.push_str(&failure_at(&format!("198.18.0.{i}"), NOW - 900 + i));
    }
    text.push_str(&failure_at("198.51.100.7", NOW - 500));
    append(&log, &text);
    app.poll().await;
    let banned: Vec<String> = app.active_bans().await.into_iter().map(|b| b.ip).collect();
    assert_eq!(banned.len(), 2, "{banned:?}");
    assert!(banned.contains(&"198.51.100.7".to_string()), "{banned:?}");
}

#[tokio::test]
async fn in_monitor_mode_bans_are_recorded_as_would_ban() {
    let (mut app, log) = app_with_log(TrustedNetworks::default()).await;
    let mut conn = app.store.acquire().await.unwrap();
    sipwarden::store::settings::set_protection(&mut conn, false).await.unwrap();
    drop(conn);
    append(&log, &(failure_at(ATTACKER, NOW - 2000) + &failure_at(ATTACKER, NOW - 1000)));
    app.poll().await;
    assert_eq!(app.active_bans().await.len(), 1, "the decision is stored");
    let clean = std::fs::read_to_string(app.path("failed-auth.log")).unwrap();
    assert!(clean.lines().last().unwrap().contains("verdict=\"would ban (rung 1)\""), "{clean}");
}

fn chan_sip_failure_at(ip: &str, user: &str, at: i64) -> String {
    crate::common::sip_failure_dated(ip, user, &date(at))
}

/// What the panel lists per address (failures, services, accounts, first and last
/// seen) and its running totals follow every failure stored, over several batches and
/// services.
#[tokio::test]
async fn the_summaries_the_panel_lists_add_up_over_batches_and_services() {
    let (mut app, log) = app_with_log(TrustedNetworks::new(["203.0.113.0/24".parse().unwrap()])).await;
    let (first, last) = (NOW - 3 * HOUR_MS, NOW - 10 * MINUTE_MS);
    append(&log, &failure_at(ATTACKER, first));
    append(&log, &chan_sip_failure_at(ATTACKER, "1001", first + MINUTE_MS));
    append(&log, &chan_sip_failure_at("198.51.100.4", "1001", first + MINUTE_MS));
    app.poll().await;
    append(&log, &chan_sip_failure_at(ATTACKER, "1001", last - MINUTE_MS));
    append(&log, &chan_sip_failure_at(ATTACKER, "admin", last));
    append(&log, &failure_at(ATTACKER, last - 2 * MINUTE_MS));
    app.poll().await;
    let mut conn = app.store.acquire().await.unwrap();
    let o = sipwarden::store::offenders::get(&mut conn, ATTACKER).await.unwrap().unwrap();
    assert_eq!((o.failures, o.first_seen, o.last_seen), (5, first, last));
    let mut services: Vec<&str> = o.services.split(',').collect();
    services.sort();
    assert_eq!(services, ["PJSIP", "SIP"]);
    let accounts = sipwarden::store::offenders::accounts(&mut conn, ATTACKER, 10).await.unwrap();
    assert!(
        accounts.contains(&("1001".into(), 2)) && accounts.contains(&("admin".into(), 1)),
        "{accounts:?}"
    );
    let top = sipwarden::store::offenders::top_accounts(&mut conn, 1).await.unwrap();
    assert_eq!(top, [("1001".to_string(), 3)], "1001 tried three times over two addresses");
    let hours = sipwarden::store::offenders::hours_since(&mut conn, first - HOUR_MS).await.unwrap();
    assert_eq!(hours.iter().map(|(_, n)| n).sum::<i64>(), 6, "every failure in the hourly totals");
}

async fn release(app: &TestApp, at: i64) {
    let admin = sipwarden::actions::Actor { name: "admin", client_ip: None };
    sipwarden::actions::release(&app.store, &admin, ATTACKER.parse().unwrap(), at).await.unwrap();
}

#[tokio::test]
async fn a_release_forgives_earlier_failures_and_is_no_strike() {
    let (mut app, log) = app_with_log(TrustedNetworks::default()).await;
    // A phone with a stale password: 33 failures in a day, banned until released.
    for i in 0..33 {
        append(&log, &failure_at(ATTACKER, NOW - 20 * HOUR_MS + i * 30 * MINUTE_MS));
    }
    app.poll().await;
    assert_eq!(app.active_bans().await[0].until_at, None);
    release(&app, NOW - 50 * MINUTE_MS).await;
    // The admin fixed the phone; one typo later is one failure, not a ban.
    append(&log, &failure_at(ATTACKER, NOW - 40 * MINUTE_MS));
    app.poll().await;
    assert!(app.active_bans().await.is_empty(), "the released failures counted again");
    // Two failures in an hour is the first rung again, for an hour: the released ban
    // makes no repeat offender.
    append(&log, &failure_at(ATTACKER, NOW - 39 * MINUTE_MS));
    app.poll().await;
    let bans = app.active_bans().await;
    assert_eq!((bans.len(), bans[0].rung), (1, 1));
    assert_eq!(bans[0].until_at, Some(NOW - 39 * MINUTE_MS + HOUR_MS));
    // Released again: a timed ban released by a person is no strike either.
    release(&app, NOW - 30 * MINUTE_MS).await;
    append(&log, &(failure_at(ATTACKER, NOW - 2 * MINUTE_MS) + &failure_at(ATTACKER, NOW - MINUTE_MS)));
    app.poll().await;
    let bans = app.active_bans().await;
    assert_eq!(bans[0].until_at, Some(NOW - MINUTE_MS + HOUR_MS), "{:?}", bans[0].reason);
}

#[tokio::test]
async fn a_success_right_after_a_failure_earns_no_leniency() {
    let mut app = TestApp::new(TrustedNetworks::default(), true).await;
    let log = app.path("security");
    let cracker = "198.51.100.66";
    // svcrack: one wrong guess, then the password (docs/ASTERISK.md §0.7).
    append(&log, &security_event_at("InvalidAccountID", cracker, NOW - 30 * MINUTE_MS, ""));
    append(
        &log,
        &security_event_at("SuccessfulAuth", cracker, NOW - 30 * MINUTE_MS + 50, ",UsingPassword=\"1\""),
    );
    app.follow(&log, Some(SourceKind::Security), StartAt::Beginning).await;
    for i in 0..2 {
        append(
            &log,
            &security_event_at("InvalidAccountID", cracker, NOW - 10 * MINUTE_MS + i * MINUTE_MS, ""),
        );
    }
    app.poll().await;
    assert_eq!(app.active_bans().await.len(), 1, "the cracker got the lenient rung");
}

#[tokio::test]
async fn a_success_from_outside_the_extension_networks_earns_no_leniency() {
    let mut app = TestApp::new(TrustedNetworks::default(), true).await;
    {
        let mut conn = app.store.acquire().await.unwrap();
        let ext = sipwarden::domain::NetworkList::Extensions;
        sipwarden::store::networks::add(&mut conn, ext, "192.168.10.0/24", "office", "admin", NOW)
            .await
            .unwrap();
    }
    let log = app.path("security");
    let (outside, office) = ("198.51.100.20", "192.168.10.20");
    for ip in [outside, office] {
        append(&log, &security_event_at("SuccessfulAuth", ip, NOW - DAY_MS, ",UsingPassword=\"1\""));
    }
    app.follow(&log, Some(SourceKind::Security), StartAt::Beginning).await;
    for ip in [outside, office] {
        for i in 0..3 {
            append(
                &log,
                &security_event_at("InvalidAccountID", ip, NOW - 10 * MINUTE_MS + i * MINUTE_MS, ""),
            );
        }
    }
    app.poll().await;
    let banned: Vec<String> = app.active_bans().await.into_iter().map(|b| b.ip).collect();
    assert_eq!(banned, [outside], "only the office phone keeps its five tries");
}

async fn add_network(app: &TestApp, list: sipwarden::domain::NetworkList, cidr: &str) {
    let mut conn = app.store.acquire().await.unwrap();
    sipwarden::store::networks::add(&mut conn, list, cidr, "test", "admin", NOW).await.unwrap();
}

#[tokio::test]
async fn an_address_an_admin_logged_in_from_is_never_banned_by_failures_or_by_hand() {
    let (mut app, log) = app_with_log(TrustedNetworks::default()).await;
    let admin_ip = "198.51.100.5";
    add_network(&app, sipwarden::domain::NetworkList::Admin, "198.51.100.5/32").await;
    for i in 0..3 {
        let line = format!(
            "[{}] NOTICE[1] chan_iax2.c: Host {admin_ip} failed to authenticate as 'office'\n",
            date(NOW - 10 * MINUTE_MS + i * MINUTE_MS)
        );
        append(&log, &line);
    }
    app.poll().await;
    assert_eq!(app.count_for(admin_ip).await, 3, "still recorded");
    assert!(app.active_bans().await.is_empty());
    let by = sipwarden::actions::Actor { name: "cli", client_ip: None };
    let refused = sipwarden::actions::ban(
        &app.store,
        &TrustedNetworks::default(),
        &by,
        admin_ip.parse().unwrap(),
        None,
        "test",
        NOW,
    )
    .await;
    let message = refused.unwrap_err().to_string();
    assert!(message.contains("never banned"), "{message}");
    assert!(app.active_bans().await.is_empty());
}

#[tokio::test]
async fn an_office_phone_set_up_wrong_is_not_an_attacker() {
    let mut app = TestApp::new(TrustedNetworks::default(), true).await;
    add_network(&app, sipwarden::domain::NetworkList::Extensions, "192.168.10.0/24").await;
    let log = app.path("security");
    append(&log, "");
    app.follow(&log, Some(SourceKind::Security), StartAt::Beginning).await;
    let (office, outside) = ("192.168.10.21", "198.51.100.21");
    for ip in [office, outside] {
        for i in 0..4 {
            let at = NOW - 10 * MINUTE_MS + i * MINUTE_MS;
            append(&log, &security_event_at("InvalidTransport", ip, at, ",AttemptedTransport=\"TCP\""));
        }
    }
    // A wrong password from the office still counts, against the lenient rung (5).
    for i in 0..4 {
        append(&log, &security_event_at("InvalidPassword", office, NOW - 5 * MINUTE_MS + i, ""));
    }
    app.poll().await;
    assert_eq!(app.count_for(office).await, 4, "wrong transport counted against the office");
    let banned: Vec<String> = app.active_bans().await.into_iter().map(|b| b.ip).collect();
    assert_eq!(banned, [outside]);
}

#[tokio::test]
async fn the_third_banned_address_of_an_ipv6_prefix_bans_the_prefix() {
    let (mut app, log) = app_with_log(TrustedNetworks::default()).await;
    for host in ["a", "b", "c", "d"] {
        let ip = format!("2001:db8:1:2::{host}");
        append(&log, &(failure_at(&ip, NOW - 10 * MINUTE_MS) + &failure_at(&ip, NOW - 9 * MINUTE_MS)));
    }
    // Another /64: two banned addresses are not enough.
    for host in ["1", "2"] {
        let ip = format!("2001:db8:1:3::{host}");
        append(&log, &(failure_at(&ip, NOW - 8 * MINUTE_MS) + &failure_at(&ip, NOW - 7 * MINUTE_MS)));
    }
    app.poll().await;
    let bans = app.active_bans().await;
    let prefixes: Vec<_> = bans.iter().filter(|b| b.ip.contains('/')).collect();
    assert_eq!(prefixes.len(), 1, "{bans:?}");
    assert_eq!(prefixes[0].ip, "2001:db8:1:2::/64");
    assert!(
        prefixes[0].reason.starts_with("3 addresses of 2001:db8:1:2::/64 banned within 1d: 2001:db8:1:2::a")
    );
    assert_eq!(prefixes[0].until_at, Some(NOW - 9 * MINUTE_MS + HOUR_MS));
    assert_eq!(bans.len(), 6 + 1, "every address keeps its own ban");
}

#[tokio::test]
async fn an_ipv6_prefix_holding_an_extension_network_is_never_banned_as_a_whole() {
    let (mut app, log) = app_with_log(TrustedNetworks::default()).await;
    add_network(&app, sipwarden::domain::NetworkList::Extensions, "2001:db8:1:2:ffff::/80").await;
    for host in ["a", "b", "c"] {
        let ip = format!("2001:db8:1:2::{host}");
        append(&log, &(failure_at(&ip, NOW - 10 * MINUTE_MS) + &failure_at(&ip, NOW - 9 * MINUTE_MS)));
    }
    app.poll().await;
    let bans = app.active_bans().await;
    assert_eq!(bans.len(), 3);
    assert!(bans.iter().all(|b| !b.ip.contains('/')));
}

/// Several PBXes on one store: a failure another PBX stored counts toward this one's
/// rules, unless this PBX counts its own only (`[store] count_per_node`).
#[tokio::test]
async fn failures_another_pbx_stored_count_unless_counting_per_pbx() {
    for per_node in [false, true] {
        let (mut app, log) = app_with_log(TrustedNetworks::default()).await;
        app.pipeline.count_per_node = per_node;
        let other = app.store.clone().with_node("pbx-branch");
        let mut conn = other.acquire().await.unwrap();
        let seen_there = sipwarden::store::failures::NewFailure {
            at: NOW - 10 * MINUTE_MS,
            ip: Some(ATTACKER.into()),
            service: "PJSIP",
            account: Some("100"),
            kind: "wrong_password",
            source: "security",
            raw: "x",
            tampered: false,
            verdict: "counted",
        };
        sipwarden::store::failures::insert(&mut conn, &seen_there).await.unwrap();
        drop(conn);
        append(&log, &failure_at(ATTACKER, NOW - 5 * MINUTE_MS));
        app.poll().await;
        let banned = !app.active_bans().await.is_empty();
        assert_eq!(banned, !per_node, "counting per PBX: {per_node}");
    }
}
