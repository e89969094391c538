//! Several panel accounts: admins add, reset, re-role and remove the others; a viewer
//! sees every page and changes nothing; each account has its own audit rows.

use super::*;
use sipwarden::domain::Role;

const SECRET: &str = "password=night+shift+pass&confirm=night+shift+pass";

impl Panel {
    /// Logs in as `name` from `from`.
    async fn login_as(&self, from: &str, name: &str, password: &str) -> String {
        let form = format!("username={}&password={}", urlencoding(name), urlencoding(password));
        let r = self.request_from(from, "POST", "/login", &[], &form).await;
        assert_eq!(r.status, 303, "{name} logs in: {}", r.body);
        r.session().expect("a session cookie")
    }

    async fn account(&self, name: &str) -> Option<store::admins::AdminRow> {
        let mut conn = self.store.acquire().await.unwrap();
        store::admins::by_username(&mut conn, name).await.unwrap()
    }

    /// The admin adds `name` with `role`; the account's id.
    async fn add_account(&self, admin: &str, name: &str, role: &str) -> i64 {
        let form = format!("username={name}&role={role}&{SECRET}");
        let r = self.request("POST", "/accounts", &same_origin(admin), &form).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert!(r.body.contains(&format!("Account {name} added as {role}.")), "{}", r.body);
        self.account(name).await.unwrap().id
    }
}

#[tokio::test]
async fn a_viewer_sees_every_page_and_can_change_nothing_but_its_own_password() {
    let p = panel().await;
    let admin = p.login().await;
    p.add_account(&admin, "night-shift", "viewer").await;
    let viewer = p.login_as("127.0.0.9", "night-shift", "night shift pass").await;

    for page in ["/", "/offenders", "/bans", "/incidents", "/logins", "/log", "/networks", "/settings"] {
        let r = p.request("GET", page, &[("Cookie", &viewer)], "").await;
        assert_eq!(r.status, 200, "{page}: {}", r.body);
        assert!(r.body.contains("viewer, read only"), "{page} says the account is read only");
    }
    for page in ["/alerts", "/audit", "/accounts"] {
        assert_eq!(p.request("GET", page, &[("Cookie", &viewer)], "").await.status, 200, "{page}");
    }

    let changes = [
        ("/protection", "on=false"),
        ("/bans", "ip=203.0.113.5&duration=1h&reason=x"),
        ("/networks", "list=deny&address=198.51.100.0/24&label=x"),
        ("/settings/trusted", "cidr=198.51.100.0/24&label=x"),
        ("/settings", "r1_failures=9&r1_within=1h&r1_ban=1h"),
        ("/accounts", "username=intruder&role=admin&password=aaaaaaaaaaaa&confirm=aaaaaaaaaaaa"),
        ("/alerts", "webhook=http://127.0.0.1:9/x"),
    ];
    for (path, form) in changes {
        let r = p.request_from("127.0.0.9", "POST", path, &same_origin(&viewer), form).await;
        assert_eq!(r.status, 403, "{path} refused: {}", r.body);
        assert!(r.body.contains("viewer account"), "{path} says why");
    }
    let mut conn = p.store.acquire().await.unwrap();
    assert!(store::settings::protection(&mut conn, true).await.unwrap(), "protection still on");
    assert!(store::bans::active(&mut conn, p.clock.now()).await.unwrap().is_empty(), "nothing banned");
    assert!(store::networks::in_list(&mut conn, NetworkList::Deny).await.unwrap().is_empty());
    assert!(store::networks::in_list(&mut conn, NetworkList::Trusted).await.unwrap().is_empty());
    drop(conn);
    assert!(p.account("intruder").await.is_none());

    let form = "current=night+shift+pass&password=a+new+night+pass&confirm=a+new+night+pass";
    let r = p.request_from("127.0.0.9", "POST", "/password", &same_origin(&viewer), form).await;
    assert_eq!(r.status, 200, "a viewer changes its own password: {}", r.body);
    let r = p.request_from("127.0.0.9", "POST", "/logout", &same_origin(&viewer), "").await;
    assert_eq!(r.status, 303, "and logs out");
}

#[tokio::test]
async fn admins_add_reset_promote_and_remove_accounts_and_each_change_is_audited() {
    let p = panel().await;
    let admin = p.login().await;
    let id = p.add_account(&admin, "maria", "viewer").await;

    // Refused, nothing changed: a taken name, a short password, an unknown role.
    let r = p
        .request("POST", "/accounts", &same_origin(&admin), &format!("username=maria&role=admin&{SECRET}"))
        .await;
    assert_eq!(r.status, 400);
    assert!(r.body.contains("already an account named maria") && r.body.contains("Nothing was changed"));
    assert_eq!(p.account("maria").await.unwrap().role, Role::Viewer);
    let r = p
        .request(
            "POST",
            "/accounts",
            &same_origin(&admin),
            "username=li&role=admin&password=short&confirm=short",
        )
        .await;
    assert_eq!(r.status, 400);
    assert!(
        r.body.contains("at least 10 characters") && r.body.contains("value=\"li\""),
        "the form keeps the name"
    );
    let r = p
        .request("POST", "/accounts", &same_origin(&admin), &format!("username=li&role=root&{SECRET}"))
        .await;
    assert_eq!(r.status, 400);
    assert!(p.account("li").await.is_none());

    // A reset ends the account's sessions; the new password works.
    let maria = p.login_as("127.0.0.9", "maria", "night shift pass").await;
    let form = "password=maria+new+password&confirm=maria+new+password";
    let r = p.request("POST", &format!("/accounts/{id}/password"), &same_origin(&admin), form).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("maria is logged out everywhere"));
    let r = p.request("GET", "/bans", &[("Cookie", &maria)], "").await;
    assert_eq!((r.status, r.header("location").as_deref()), (303, Some("/login")), "maria's session ended");
    let maria = p.login_as("127.0.0.9", "maria", "maria new password").await;

    // Promoted: maria's next change is allowed, in the same session.
    let r = p.request("POST", &format!("/accounts/{id}/role"), &same_origin(&admin), "role=admin").await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = p.request_from("127.0.0.9", "POST", "/protection", &same_origin(&maria), "on=true").await;
    assert_ne!(r.status, 403, "an admin now: {}", r.body);

    // Removed: maria's session ends, and her login address may be banned again.
    let mut conn = p.store.acquire().await.unwrap();
    let admin_nets =
        |rows: Vec<store::networks::NetworkRow>| rows.into_iter().map(|r| r.cidr).collect::<Vec<_>>();
    let before = admin_nets(store::networks::in_list(&mut conn, NetworkList::Admin).await.unwrap());
    assert!(before.contains(&"127.0.0.9/32".to_string()), "{before:?}");
    drop(conn);
    let r = p.request("POST", &format!("/accounts/{id}/remove"), &same_origin(&admin), "").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(p.account("maria").await.is_none());
    let r = p.request_from("127.0.0.9", "GET", "/bans", &[("Cookie", &maria)], "").await;
    assert_eq!(r.status, 303, "maria's session ended");
    let mut conn = p.store.acquire().await.unwrap();
    let after = admin_nets(store::networks::in_list(&mut conn, NetworkList::Admin).await.unwrap());
    assert_eq!(after, vec!["127.0.0.1/32".to_string()], "only the remaining admin's address stays");

    // Every change has its row, and the account's own rows are one click away.
    let actions: Vec<String> =
        store::audit::recent(&mut conn, 50).await.unwrap().into_iter().map(|a| a.action).collect();
    for action in ["account added", "password reset", "role changed", "account removed"] {
        assert!(actions.iter().any(|a| a == action), "{action} audited: {actions:?}");
    }
    drop(conn);
    let r = p.request("GET", "/audit?who=maria", &[("Cookie", &admin)], "").await;
    assert!(r.body.contains("Audit log of maria") && r.body.contains("<td>login</td>"), "{}", r.body);
    assert!(!r.body.contains("account added"), "only maria's own rows");
}

#[tokio::test]
async fn the_last_admin_cannot_be_removed_or_demoted_and_nobody_removes_themselves() {
    let p = panel().await;
    let admin = p.login().await;
    let me = p.account("admin").await.unwrap().id;
    let r = p.request("POST", &format!("/accounts/{me}/role"), &same_origin(&admin), "role=viewer").await;
    assert_eq!(r.status, 400);
    assert!(r.body.contains("At least one account must keep the admin role"), "{}", r.body);
    let r = p.request("POST", &format!("/accounts/{me}/remove"), &same_origin(&admin), "").await;
    assert_eq!(r.status, 400);
    assert!(r.body.contains("cannot remove your own account"));
    assert_eq!(p.account("admin").await.unwrap().role, Role::Admin);

    // With a second admin, the first may step down to viewer.
    p.add_account(&admin, "deputy", "admin").await;
    let r = p.request("POST", &format!("/accounts/{me}/role"), &same_origin(&admin), "role=viewer").await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = p.request("POST", "/protection", &same_origin(&admin), "on=false").await;
    assert_eq!(r.status, 403, "the role holds from the next request on");
}
