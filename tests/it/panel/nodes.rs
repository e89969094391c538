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

    // Incidents, each saying whose extension it was.
    for (s, account) in [(&p.store, "1001"), (&other, "2002")] {
        let mut conn = s.acquire().await.unwrap();
        let incident = store::incidents::NewIncident {
            kind: "breach",
            severity: "warning",
            account,
            tech: Some("PJSIP"),
            ip: Some("198.51.100.9"),
            at: now - 30_000,
            reason: "first login to this account from this address",
            calls: None,
            numbers: "",
            locked: false,
        };
        store::incidents::insert(&mut conn, &incident).await.unwrap();
    }
    let all = p.request("GET", "/incidents", &session, "").await.body;
    assert!(all.contains("<th>PBX</th>") && all.contains("data-label=\"PBX\">pbx-branch<"), "{all}");
    assert!(all.contains(">1001<") && all.contains(">2002<"), "{all}");
    let branch = p.request("GET", "/incidents?node=pbx-branch", &session, "").await.body;
    assert!(branch.contains(">2002<") && !branch.contains(">1001<"), "{branch}");

    // Logins: extension 1001 of each PBX is its own phone, with its own history.
    for (s, ip) in [(&p.store, "192.0.2.10"), (&other, "192.0.2.20")] {
        let mut conn = s.acquire().await.unwrap();
        store::incidents::record_login(&mut conn, "1001", ip, now - 20_000).await.unwrap();
    }
    let mut conn = p.store.acquire().await.unwrap();
    let (seen, from_here) =
        store::incidents::login_history(&mut conn, "1001", "192.0.2.20", now).await.unwrap();
    assert!(seen && !from_here, "the branch's phone is no address of this PBX's 1001");
    drop(conn);
    // The same contact URI registered on both PBXes: a row each.
    for s in [&p.store, &other] {
        let mut conn = s.acquire().await.unwrap();
        let change = sipwarden::domain::ContactChange {
            account: "1001".into(),
            uri: "sip:1001@192.0.2.30:5060".into(),
            user_agent: Some(format!("phone of {}", s.node())),
            present: true,
            expires_in_s: Some(3600),
        };
        let dated = [sipwarden::domain::DatedContact { at: Some(now - 10_000), change }];
        store::contacts::record(&mut conn, &dated, now).await.unwrap();
    }
    let logins = p.request("GET", "/logins", &session, "").await.body;
    let registered = logins.split("id=\"contacts\"").nth(1).unwrap().split("</table>").next().unwrap();
    assert!(
        registered.contains("phone of pbx-branch")
            && registered.contains(&format!("phone of {}", p.store.node()))
    );
    let logins = p.request("GET", "/logins?node=pbx-branch", &session, "").await.body;
    assert!(
        logins.contains("phone of pbx-branch") && !logins.contains(&format!("phone of {}", p.store.node()))
    );
    let logins = p.request("GET", "/logins?node=pbx-branch", &session, "").await.body;
    assert!(logins.contains(">192.0.2.20<") && !logins.contains(">192.0.2.10<"), "{logins}");
    assert!(logins.contains("data-label=\"PBX\">pbx-branch<"), "{logins}");
    let logins = p.request("GET", "/logins", &session, "").await.body;
    assert!(logins.contains(">192.0.2.20<") && logins.contains(">192.0.2.10<"), "{logins}");

    let offenders = p.request("GET", "/offenders?q=pbx-branch", &session, "").await;
    assert!(
        offenders.body.contains("198.51.100.2") && !offenders.body.contains("203.0.113.1"),
        "{}",
        offenders.body
    );
}

#[tokio::test]
async fn a_pbx_upgraded_to_named_nodes_keeps_its_phones_logins_and_registrations() {
    let dir = tempfile::tempdir().unwrap();
    let store = crate::backends::store_in(dir.path()).await;
    // Written before nodes had names.
    let mut conn = store.clone().with_node("").acquire().await.unwrap();
    store::incidents::record_login(&mut conn, "1001", "192.0.2.10", 1_000).await.unwrap();
    let change = sipwarden::domain::ContactChange {
        account: "1001".into(),
        uri: "sip:1001@192.0.2.10".into(),
        user_agent: None,
        present: true,
        expires_in_s: None,
    };
    let dated = [sipwarden::domain::DatedContact { at: Some(1_000), change }];
    store::contacts::record(&mut conn, &dated, 1_000).await.unwrap();
    drop(conn);
    let named = store.with_node("pbx-a");
    let mut conn = named.acquire().await.unwrap();
    assert_eq!(
        store::incidents::login_history(&mut conn, "1001", "192.0.2.10", 2_000).await.unwrap(),
        (false, false)
    );
    store::nodes::register(&mut conn, "test", 2_000).await.unwrap();
    assert_eq!(
        store::incidents::login_history(&mut conn, "1001", "192.0.2.10", 2_000).await.unwrap(),
        (true, true),
        "the first node to start adopts them"
    );
    let contacts = store::contacts::current(&mut conn, Some("pbx-a"), 2_000, 10).await.unwrap();
    assert_eq!(contacts.len(), 1, "and its registrations");
}
