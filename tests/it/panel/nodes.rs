//! Several PBXes on one store, as the panel shows them: a card per PBX on the
//! dashboard, and each list narrowed to one PBX.

use sipwarden::clock::Clock;
use sipwarden::store;

use super::{panel, wrong_password_for_1001};

#[tokio::test]
async fn the_dashboard_lists_each_pbx_and_every_list_narrows_to_one() {
    let p = panel().await;
    let now = p.clock.now();
    // This panel's PBX and another one writing to the same store.
    let other = p.store.clone().with_node("pbx-branch");
    for (s, ip) in [(&p.store, "203.0.113.1"), (&other, "198.51.100.2")] {
        let mut conn = s.acquire().await.unwrap();
        store::nodes::register(&mut conn, "test", now).await.unwrap();
        store::failures::insert(&mut conn, &wrong_password_for_1001(ip, now - 60_000)).await.unwrap();
        store::offenders::record(&mut conn, ip, "PJSIP", Some("1001"), now - 60_000).await.unwrap();
    }
    {
        let mut conn = other.acquire().await.unwrap();
        super::hour_ban(&mut conn, "198.51.100.2", now).await;
    }
    let cookie = p.login().await;
    let session = [("Cookie", cookie.as_str())];

    let dash = p.request("GET", "/", &session, "").await;
    assert_eq!(dash.status, 200);
    let card = dash.body.split("id=\"nodes\"").nth(1).expect("a card of the PBXes");
    assert!(
        card.contains("pbx-branch") && card.contains(&format!("{} (this one)", p.store.node())),
        "{card}"
    );
    // Each PBX's bans of the hour, leading to its bans.
    let (_, branch) = card.split_once("pbx-branch").unwrap();
    let bans_cell = branch.split("href=\"/bans?q=pbx-branch\">").nth(1).expect("a link to its bans");
    assert!(bans_cell.starts_with("1<"), "{card}");
    let bans = p.request("GET", "/bans?q=pbx-branch", &session, "").await;
    assert!(bans.body.contains("198.51.100.2"), "{}", bans.body);

    let log = p.request("GET", "/log?node=pbx-branch", &session, "").await;
    assert!(log.body.contains("198.51.100.2") && !log.body.contains("203.0.113.1"), "{}", log.body);
    let log = p.request("GET", "/log", &session, "").await;
    assert!(log.body.contains("198.51.100.2") && log.body.contains("203.0.113.1"));

    let offenders = p.request("GET", "/offenders?q=pbx-branch", &session, "").await;
    assert!(
        offenders.body.contains("198.51.100.2") && !offenders.body.contains("203.0.113.1"),
        "{}",
        offenders.body
    );
}
