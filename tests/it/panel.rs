//! The panel's HTTP: authentication, CSRF, headers, rate limits and input validation,
//! each request sent in process to the panel's router (with the client address it
//! would have come from) over a real SQLite file.

use std::net::SocketAddr;
use std::sync::Arc;

use argon2::Argon2;
use argon2::password_hash::PasswordHasher;
use axum::extract::ConnectInfo;
use sipwarden::clock::{Clock, ManualClock, SystemClock};
use sipwarden::domain::{ClosableService, NetworkList, TrustedNetworks};
use sipwarden::policy::Ladder;
use sipwarden::store::{self, Store};
use sipwarden::web::{self, PanelOptions, WebState};
use tokio::sync::Notify;
use tower::ServiceExt;

mod accounts;
mod countries;
mod nodes;

struct Panel {
    _dir: tempfile::TempDir,
    router: axum::Router,
    store: Store,
    state: WebState,
    clock: ManualClock,
}

struct Reply {
    status: u16,
    head: String,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    }

    fn session(&self) -> Option<String> {
        let c = self.header("set-cookie")?;
        Some(c.split(';').next()?.to_string())
    }
}

async fn panel() -> Panel {
    panel_with(None).await
}

async fn panel_with(pbx: Option<sipwarden::pbx::Pbx>) -> Panel {
    panel_idle(pbx, time::Duration::hours(1)).await
}

async fn panel_idle(pbx: Option<sipwarden::pbx::Pbx>, session_idle: time::Duration) -> Panel {
    let dir = tempfile::tempdir().unwrap();
    let store = crate::backends::store_in(dir.path()).await;
    let hash = Argon2::default().hash_password(b"a long passphrase").unwrap().to_string();
    let mut conn = store.acquire().await.unwrap();
    store::admins::create(&mut conn, "admin", &hash, sipwarden::domain::Role::Admin, 0).await.unwrap();
    drop(conn);
    let clock = ManualClock::new(SystemClock.now());
    let state = WebState::new(
        store.clone(),
        Arc::new(clock.clone()),
        TrustedNetworks::default(),
        Ladder::default(),
        true,
        Arc::new(Notify::new()),
        "test".into(),
    )
    .with_pbx(pbx);
    let router = router_of(&store, state.clone(), session_idle).await;
    Panel { _dir: dir, router, store, state, clock }
}

/// The panel's routes over `state`, with sessions in `store`.
async fn router_of(store: &Store, state: WebState, session_idle: time::Duration) -> axum::Router {
    let options =
        PanelOptions { listen: "127.0.0.1:8575".parse().unwrap(), secure_cookies: false, session_idle };
    let (tasks, stop) = (tokio_util::task::TaskTracker::new(), tokio_util::sync::CancellationToken::new());
    let sessions = web::sessions(store, &options, &tasks, stop).await.unwrap();
    web::router(state, sessions)
}

impl Panel {
    /// The bans of `ip` in force now.
    async fn active_bans_of(&self, ip: &str) -> Vec<store::bans::BanRow> {
        let mut conn = self.store.acquire().await.unwrap();
        let all = store::bans::active(&mut conn, self.clock.now()).await.unwrap();
        all.into_iter().filter(|b| b.ip == ip).collect()
    }

    /// One request as if from `from` (any 127.x address).
    async fn request_from(
        &self,
        from: &str,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Reply {
        let mut req =
            axum::http::Request::builder().method(method).uri(path).header("host", "127.0.0.1:8575");
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if !body.is_empty() {
            req = req.header("content-type", "application/x-www-form-urlencoded");
        }
        let mut req = req.body(axum::body::Body::from(body.to_owned())).unwrap();
        // What serving with connect info puts on every request.
        req.extensions_mut().insert(ConnectInfo(SocketAddr::new(from.parse().unwrap(), 40_000)));
        let reply = self.router.clone().oneshot(req).await.unwrap();
        let status = reply.status().as_u16();
        let mut head = format!("HTTP/1.1 {status}\r\n");
        for (name, value) in reply.headers() {
            head.push_str(&format!("{name}: {}\r\n", value.to_str().unwrap_or("")));
        }
        let body = axum::body::to_bytes(reply.into_body(), usize::MAX).await.unwrap();
        Reply { status, head, body: String::from_utf8_lossy(&body).into_owned() }
    }

    async fn request(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Reply {
        self.request_from("127.0.0.1", method, path, headers, body).await
    }

    async fn login(&self) -> String {
        let r = self
            .request(
                "POST",
                "/login",
                &[("Sec-Fetch-Site", "same-origin")],
                "username=admin&password=a+long+passphrase",
            )
            .await;
        assert_eq!(r.status, 303, "{}", r.body);
        r.session().expect("a session cookie")
    }
}

#[tokio::test]
async fn pages_need_a_session_and_carry_security_headers() {
    let p = panel().await;
    let r = p.request("GET", "/bans", &[], "").await;
    assert_eq!((r.status, r.header("location").as_deref()), (303, Some("/login")));
    assert!(r.header("content-security-policy").unwrap().contains("script-src 'self'"));
    assert_eq!(r.header("x-frame-options").as_deref(), Some("DENY"));
    assert_eq!(r.header("x-content-type-options").as_deref(), Some("nosniff"));
    assert!(r.header("referrer-policy").is_some());
    let r = p.request("GET", "/bans", &[("HX-Request", "true")], "").await;
    assert_eq!(
        r.header("hx-redirect").as_deref(),
        Some("/login"),
        "htmx is sent to the login page as a whole"
    );
    let r = p.request("GET", "/healthz", &[], "").await;
    assert_eq!(r.status, 200);
    assert!(r.body.contains("\"status\":\"ok\"") && !r.body.contains("admin"));
}

#[tokio::test]
async fn login_cycles_the_session_id_and_the_cookie_is_strict() {
    let p = panel().await;
    let planted = "sipwarden_session=planted-by-an-attacker";
    let r = p
        .request("POST", "/login", &[("Cookie", planted)], "username=admin&password=a+long+passphrase")
        .await;
    assert_eq!(r.status, 303);
    let cookie = r.header("set-cookie").unwrap();
    assert!(!cookie.contains("planted"));
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "{cookie}");
    let session = r.session().unwrap();
    assert_eq!(p.request("GET", "/bans", &[("Cookie", &session)], "").await.status, 200);
    let r = p.request("POST", "/logout", &[("Cookie", &session)], "").await;
    assert_eq!(r.status, 303);
    assert_eq!(p.request("GET", "/bans", &[("Cookie", &session)], "").await.status, 303, "logged out");
}

#[tokio::test]
async fn login_brute_force_is_rate_limited_per_address_but_the_admin_gets_in_from_another() {
    let p = panel().await;
    let mut statuses = Vec::new();
    for _ in 0..8 {
        statuses.push(p.request("POST", "/login", &[], "username=admin&password=guess").await.status);
    }
    assert_eq!(&statuses[..5], &[401; 5]);
    assert!(statuses[5..].iter().all(|s| *s == 429), "{statuses:?}");
    let r =
        p.request_from("127.0.0.2", "POST", "/login", &[], "username=admin&password=a+long+passphrase").await;
    assert_eq!(r.status, 303, "the legitimate admin from another address still gets in");
    let mut conn = p.store.acquire().await.unwrap();
    let audit = store::audit::recent(&mut conn, 50).await.unwrap();
    assert_eq!(audit.iter().filter(|a| a.action == "login failed").count(), 5);
    assert!(audit.iter().any(|a| a.action == "login" && a.client_ip.as_deref() == Some("127.0.0.2")));
}

/// Guessers on many addresses use up the admin's per-user quota: the admin at an
/// address they logged in from before still gets in; a new address must wait; and the
/// failed logins are listed apart from the admins' actions.
#[tokio::test]
async fn spread_guessing_cannot_lock_the_admin_out_of_an_address_they_used_before() {
    let p = panel().await;
    p.login().await;
    for host in 10..22 {
        let from = format!("127.0.0.{host}");
        p.request_from(&from, "POST", "/login", &[], "username=admin&password=guess").await;
    }
    let right = "username=admin&password=a+long+passphrase";
    let r = p.request_from("127.0.0.99", "POST", "/login", &[], right).await;
    assert_eq!(r.status, 429, "the user's quota is used up for a new address");
    let r = p.request("POST", "/login", &[], right).await;
    assert_eq!(r.status, 303, "the admin's own address still gets in");
    let session = r.session().unwrap();

    let audit = p.request("GET", "/audit", &[("Cookie", &session)], "").await;
    let actions = audit.body.split("id=\"failed-logins\"").next().unwrap().to_string();
    assert!(!actions.contains("login failed"), "admin actions are not drowned by guesses");
    let failed = p.request("GET", "/audit?show=failed-logins", &[("Cookie", &session)], "").await;
    // Nine guesses got through the user's quota of ten (the admin's own login took
    // one); each is listed with its address.
    assert!(failed.body.contains("127.0.0.10") && failed.body.contains("127.0.0.18"), "{}", failed.body);
    assert!(!failed.body.contains("127.0.0.19"), "a refused attempt is no login failure");
}

#[tokio::test]
async fn cross_site_and_cross_origin_posts_are_refused() {
    let p = panel().await;
    let session = p.login().await;
    for headers in [
        vec![("Cookie", session.as_str()), ("Sec-Fetch-Site", "cross-site")],
        vec![("Cookie", session.as_str()), ("Sec-Fetch-Site", "same-site")],
        vec![("Cookie", session.as_str()), ("Origin", "http://127.0.0.1:9")],
    ] {
        let r = p.request("POST", "/protection", &headers, "on=false").await;
        assert_eq!(r.status, 403, "{headers:?}");
    }
    let mut conn = p.store.acquire().await.unwrap();
    assert!(store::settings::protection(&mut conn, true).await.unwrap());
    let r = p
        .request(
            "POST",
            "/protection",
            &[("Cookie", &session), ("Sec-Fetch-Site", "same-origin")],
            "on=false",
        )
        .await;
    assert_eq!(r.status, 303);
    assert!(!store::settings::protection(&mut conn, true).await.unwrap());
}

#[tokio::test]
async fn static_files_do_not_escape_and_big_forms_are_refused() {
    let p = panel().await;
    let r = p.request("GET", "/static/htmx.min.js", &[], "").await;
    assert_eq!(r.status, 200);
    assert!(r.header("content-type").unwrap().contains("javascript"));
    for path in ["/static/../Cargo.toml", "/static/%2e%2e/Cargo.toml", "/static/..%2fCargo.toml", "/static/"]
    {
        assert_eq!(p.request("GET", path, &[], "").await.status, 404, "{path}");
    }
    let session = p.login().await;
    let big = format!("cidr={}", "1".repeat(100 * 1024));
    let r = p.request("POST", "/settings/trusted", &[("Cookie", &session)], &big).await;
    assert_eq!(r.status, 413);
}

#[tokio::test]
async fn invalid_settings_are_explained_and_nothing_is_saved() {
    let p = panel().await;
    let session = p.login().await;
    let r = p
        .request("POST", "/settings/trusted", &[("Cookie", &session)], "cidr=192.168.1.7%2F24&label=lan")
        .await;
    assert_eq!(r.status, 400);
    assert!(r.body.contains("did you mean 192.168.1.0/24"), "{}", r.body);
    let form = "r1_failures=0&r1_within=1h&r1_ban=1h&known_good_failures=5&known_good_for=7d&repeat_within=24h&repeat_ban=24h";
    let r = p.request("POST", "/settings", &[("Cookie", &session)], form).await;
    assert_eq!(r.status, 400);
    assert!(r.body.contains("Rung 1: failures must be"), "{}", r.body);
    let mut conn = p.store.acquire().await.unwrap();
    assert!(
        store::networks::in_list(&mut conn, sipwarden::domain::NetworkList::Trusted)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(store::settings::ladder(&mut conn).await.unwrap().is_none());
    let form = "r1_failures=3&r1_within=30m&r1_ban=2h&r2_failures=10&r2_within=1d&r2_ban=until-released&known_good_failures=6&known_good_for=3d&repeat_within=1d&repeat_ban=2d";
    assert_eq!(p.request("POST", "/settings", &[("Cookie", &session)], form).await.status, 200);
    let saved = store::settings::ladder(&mut conn).await.unwrap().unwrap();
    assert_eq!(saved.rungs[0].failures, 3);
    assert_eq!(saved.rungs[1].ban_ms, None);
}

#[tokio::test]
async fn the_failed_login_log_exports_csv_that_spreadsheets_cannot_execute() {
    let p = panel().await;
    let mut conn = p.store.acquire().await.unwrap();
    store::failures::insert(
        &mut conn,
        &store::failures::NewFailure {
            at: 1_795_554_290_544,
            ip: Some("203.0.113.9".into()),
            service: "PJSIP",
            account: Some("=cmd|' /C calc'!A0"),
            kind: "wrong_password",
            source: "/var/log/asterisk/full",
            raw: "raw \"line\"",
            tampered: false,
            verdict: "watch",
        },
    )
    .await
    .unwrap();
    let session = p.login().await;
    let r = p.request("GET", "/log.csv?ip=203.0.113.9", &[("Cookie", &session)], "").await;
    assert_eq!(r.status, 200);
    assert!(r.header("content-disposition").unwrap().contains("attachment"));
    assert!(r.body.contains("\"'=cmd|' /C calc'!A0\""), "{}", r.body);
    assert!(r.body.contains("\"raw \"\"line\"\"\""));
}

fn same_origin(session: &str) -> [(&'static str, &str); 2] {
    [("Cookie", session), ("Sec-Fetch-Site", "same-origin")]
}

#[tokio::test]
async fn network_entries_are_validated_and_nothing_wrong_is_saved() {
    let p = panel().await;
    let s = p.login().await;
    for (body, message) in [
        ("list=extensions&address=192.168.1.9%2F24", "did you mean 192.168.1.0/24"),
        ("list=trunk&address=203.0.113.10", "needs the trunk"),
        ("list=extensions&address=not+an+address%21", "is not an address"),
        ("list=extensions&address=10.0.0.0%2F8&expires=soon", "not a duration"),
    ] {
        let r = p.request("POST", "/networks", &same_origin(&s), body).await;
        assert_eq!(r.status, 400, "{body}");
        assert!(r.body.contains(message), "{body}: {}", r.body);
    }
    assert_eq!(
        p.request(
            "POST",
            "/networks",
            &same_origin(&s),
            "list=extensions&address=192.168.0.0%2F16&label=office"
        )
        .await
        .status,
        303
    );
    let r =
        p.request("POST", "/networks", &same_origin(&s), "list=extensions&address=192.168.7.0%2F24").await;
    assert!(r.status == 400 && r.body.contains("overlaps 192.168.0.0/16"), "{}", r.body);
    let r = p.request("POST", "/networks", &same_origin(&s), "list=deny&address=192.168.66.0%2F24").await;
    assert!(
        r.status == 400 && r.body.contains("overlaps"),
        "deny inside an allowed network is contradictory"
    );
    let mut conn = p.store.acquire().await.unwrap();
    assert_eq!(store::networks::editable(&mut conn).await.unwrap().len(), 1);
    let page = p.request("GET", "/networks", &[("Cookie", &s)], "").await;
    assert!(page.body.contains("id=\"admin-ip\">127.0.0.1"), "the admin sees their address");
    // Beside each service, the ports closing it closes.
    assert!(page.body.contains("id=\"ports-sip\">(UDP 5060, 5061; TCP 5060, 5061)"), "{}", page.body);
    assert!(page.body.contains("id=\"ports-iax2\">(UDP 4569)"));
}

#[tokio::test]
async fn a_change_that_cuts_off_the_admin_is_refused_unless_confirmed_and_undone_unless_kept() {
    let p = panel().await;
    let s = p.login().await;
    let r = p.request("POST", "/networks", &same_origin(&s), "list=deny&address=127.0.0.0%2F8").await;
    assert_eq!(r.status, 409);
    assert!(r.body.contains("contains your own address 127.0.0.1"), "{}", r.body);
    let mut conn = p.store.acquire().await.unwrap();
    assert!(store::networks::editable(&mut conn).await.unwrap().is_empty(), "refused: nothing saved");

    // Confirmed: applied, and undone by itself when nobody keeps it within 60 s.
    let r =
        p.request("POST", "/networks", &same_origin(&s), "list=deny&address=127.0.0.0%2F8&confirm=on").await;
    assert_eq!(r.status, 303);
    assert_eq!(store::networks::nets(&mut conn, NetworkList::Deny, p.clock.now()).await.unwrap().len(), 1);
    p.clock.advance(59_000);
    sipwarden::lockout::revert_when_due(&p.store, p.clock.now()).await.unwrap();
    assert_eq!(
        store::networks::nets(&mut conn, NetworkList::Deny, p.clock.now()).await.unwrap().len(),
        1,
        "not yet"
    );
    p.clock.advance(2_000);
    sipwarden::lockout::revert_when_due(&p.store, p.clock.now()).await.unwrap();
    assert!(
        store::networks::nets(&mut conn, NetworkList::Deny, p.clock.now()).await.unwrap().is_empty(),
        "reverted after 60 s"
    );

    // Closing SIP narrows access: kept when the admin says so.
    let r = p.request("POST", "/networks/closed", &same_origin(&s), "sip=on").await;
    assert_eq!(r.status, 303);
    assert!(p.request("GET", "/networks", &[("Cookie", &s)], "").await.body.contains("id=\"pending\""));
    assert_eq!(p.request("POST", "/networks/keep", &same_origin(&s), "").await.status, 303);
    p.clock.advance(120_000);
    sipwarden::lockout::revert_when_due(&p.store, p.clock.now()).await.unwrap();
    assert_eq!(store::settings::closed_services(&mut conn).await.unwrap(), [ClosableService::Sip], "kept");
    let audit = store::audit::recent(&mut conn, 20).await.unwrap();
    assert!(audit.iter().any(|a| a.action == "reverted") && audit.iter().any(|a| a.action == "kept"));
}

#[tokio::test]
async fn host_names_are_resolved_into_the_lists() {
    let p = panel().await;
    let s = p.login().await;
    assert_eq!(
        p.request(
            "POST",
            "/networks",
            &same_origin(&s),
            "list=trunk&trunk=itsp&address=localhost&label=provider"
        )
        .await
        .status,
        303
    );
    let page = p.request("GET", "/networks", &[("Cookie", &s)], "").await;
    assert!(
        page.body.contains("localhost") && page.body.contains("127.0.0.1"),
        "the last resolution is shown"
    );
    let mut conn = p.store.acquire().await.unwrap();
    let nets = store::networks::trunk_nets(&mut conn, p.clock.now()).await.unwrap();
    assert!(nets.iter().any(|(t, n)| t == "itsp" && n.to_string() == "127.0.0.1/32"), "{nets:?}");
}

#[tokio::test]
async fn the_networks_page_previews_and_applies_asterisk_acls() {
    let (dir, pbx, calls) = crate::pbx::config_dir();
    let conf = pbx.config_dir.clone();
    let p = panel_with(Some(pbx)).await;
    let s = p.login().await;
    let page = p.request("GET", "/networks", &[("Cookie", &s)], "").await;
    assert!(
        page.body.contains("role:sip:1001") && page.body.contains("role:pjsip:2001"),
        "objects discovered"
    );
    let roles = "role:sip:1001=extension&role:pjsip:2001=extension&role:sip:itsp=trunk&trunk:sip:itsp=itsp&role:pjsip:itsp=trunk&trunk:pjsip:itsp=itsp";
    assert_eq!(p.request("POST", "/networks/targets", &same_origin(&s), roles).await.status, 303);
    for body in ["list=extensions&address=192.168.0.0%2F16", "list=trunk&trunk=itsp&address=203.0.113.10"] {
        assert_eq!(p.request("POST", "/networks", &same_origin(&s), body).await.status, 303, "{body}");
    }
    let preview = p.request("GET", "/networks/preview", &[("Cookie", &s)], "").await;
    assert!(preview.body.contains("+permit=192.168.0.0/255.255.0.0"), "{}", preview.body);
    assert!(preview.body.contains("+[itsp](+)"));
    assert!(!std::path::Path::new(&conf.join("sipwarden_acl.conf")).exists(), "a preview writes nothing");
    let applied = p.request("POST", "/networks/apply", &same_origin(&s), "").await;
    assert_eq!(applied.status, 200, "{}", applied.body);
    assert!(applied.body.contains("Applied and verified"));
    assert!(
        std::fs::read_to_string(conf.join("sipwarden_acl.conf")).unwrap().contains("[sipwarden_trunk_itsp]")
    );
    assert!(
        p.request("GET", "/networks/preview", &[("Cookie", &s)], "").await.body.contains("nothing to apply")
    );

    // Asterisk not taking the change: the files are put back and the admin told.
    std::fs::write(dir.path().join("broken"), "").unwrap();
    assert_eq!(
        p.request("POST", "/networks", &same_origin(&s), "list=extensions&address=10.9.0.0%2F16")
            .await
            .status,
        303
    );
    let failed = p.request("POST", "/networks/apply", &same_origin(&s), "").await;
    assert_eq!(failed.status, 502);
    assert!(failed.body.contains("restored"), "{}", failed.body);
    assert!(!std::fs::read_to_string(conf.join("sipwarden_acl.conf")).unwrap().contains("10.9.0.0"));
    assert!(std::fs::read_to_string(calls).unwrap().contains("acl show sipwarden_extensions"));
}

/// Idle expiry counts from the last request, not from the login: an admin at work is
/// not logged out, one who walked away from an open dashboard is.
#[tokio::test]
async fn a_session_in_use_stays_and_an_idle_one_expires() {
    let p = panel_idle(None, time::Duration::seconds(3)).await;
    let cookie = p.login().await;
    for _ in 0..6 {
        tokio::time::sleep(std::time::Duration::from_millis(1000)).await;
        let r = p.request("GET", "/", &[("Cookie", &cookie)], "").await;
        assert_eq!(r.status, 200, "logged out while in use");
    }
    // Nobody at the screen: the dashboard's own refreshes do not keep it alive.
    let refresh = [("Cookie", cookie.as_str()), ("HX-Request", "true")];
    for _ in 0..4 {
        tokio::time::sleep(std::time::Duration::from_millis(1000)).await;
        let r = p.request("GET", "/dashboard/live", &refresh, "").await;
        if r.status != 200 {
            assert_eq!(r.header("hx-redirect").as_deref(), Some("/login"), "the page moves to the login");
        }
    }
    let r = p.request("GET", "/", &[("Cookie", &cookie)], "").await;
    assert_eq!((r.status, r.header("location").as_deref()), (303, Some("/login")), "idle session kept");
}

/// When log records cannot be stored, the dashboard says so and why; /healthz turns
/// 503; both recover with ingest.
#[tokio::test]
async fn an_ingest_failure_is_shown_on_the_dashboard_and_by_healthz() {
    let p = panel().await;
    let cookie = p.login().await;
    p.state.ingest.failed(p.clock.now(), "database or disk is full <b>".into());
    let r = p
        .request("POST", "/protection", &[("Cookie", &cookie), ("Sec-Fetch-Site", "same-origin")], "on=true")
        .await;
    assert_eq!(r.status, 303, "a change clears the shared page data");
    let page = p.request("GET", "/", &[("Cookie", &cookie)], "").await;
    assert!(page.body.contains("Log records are not being stored"), "{}", page.body);
    assert!(
        page.body.contains("database or disk is full &#60;b&#62;"),
        "the error is escaped: {}",
        page.body
    );
    let health = p.request("GET", "/healthz", &[], "").await;
    assert_eq!(health.status, 503);
    assert!(health.body.contains("\"ingest_ok\":false"));
    p.state.ingest.recovered();
    assert_eq!(p.request("GET", "/healthz", &[], "").await.status, 200);
}

#[tokio::test]
async fn the_trusted_list_delete_removes_only_trusted_entries() {
    let p = panel().await;
    let session = p.login().await;
    let mut conn = p.store.acquire().await.unwrap();
    store::networks::add(&mut conn, NetworkList::Deny, "203.0.113.0/24", "scanners", "test", 0)
        .await
        .unwrap();
    store::networks::add(&mut conn, NetworkList::Trusted, "192.168.7.0/24", "lan", "test", 0).await.unwrap();
    let id = |list: NetworkList| {
        let store = p.store.clone();
        async move {
            let mut conn = store.acquire().await.unwrap();
            store::networks::in_list(&mut conn, list).await.unwrap().first().map(|r| r.id)
        }
    };
    let deny = id(NetworkList::Deny).await.unwrap();
    let r = p.request("POST", &format!("/settings/trusted/{deny}/delete"), &[("Cookie", &session)], "").await;
    assert_eq!(r.status, 303);
    assert_eq!(
        id(NetworkList::Deny).await,
        Some(deny),
        "a deny entry is not removed through the trusted list"
    );
    let trusted = id(NetworkList::Trusted).await.unwrap();
    p.request("POST", &format!("/settings/trusted/{trusted}/delete"), &[("Cookie", &session)], "").await;
    assert_eq!(id(NetworkList::Trusted).await, None);
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_setup_requests_create_exactly_one_admin() {
    let p = panel().await;
    let mut conn = p.store.acquire().await.unwrap();
    store::raw::execute(&mut conn, "DELETE FROM admins").await.unwrap();
    *p.state.setup_token.lock().unwrap() = Some("first-start".into());
    let p = std::sync::Arc::new(p);
    let attempts: Vec<_> = (0..4)
        .map(|i| {
            let p = p.clone();
            tokio::spawn(async move {
                let form = format!(
                    "token=first-start&username=admin{i}&password=a+long+passphrase&confirm=a+long+passphrase"
                );
                p.request("POST", "/setup", &[("Sec-Fetch-Site", "same-origin")], &form).await.status
            })
        })
        .collect();
    let mut created = 0;
    for a in attempts {
        created += u32::from(a.await.unwrap() == 303);
    }
    assert_eq!(created, 1, "one request creates the admin, the others are told the link is used");
    assert_eq!(store::admins::count(&mut conn).await.unwrap(), 1);
}

#[tokio::test]
async fn a_password_change_ends_the_admins_other_sessions() {
    let p = panel().await;
    let (laptop, phone) = (p.login().await, p.login().await);
    assert_eq!(p.request("GET", "/bans", &[("Cookie", &phone)], "").await.status, 200);
    let form = "current=a+long+passphrase&password=another+long+passphrase&confirm=another+long+passphrase";
    let r =
        p.request("POST", "/password", &[("Cookie", &laptop), ("Sec-Fetch-Site", "same-origin")], form).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let laptop = r.session().unwrap_or(laptop);
    assert_eq!(
        p.request("GET", "/bans", &[("Cookie", &laptop)], "").await.status,
        200,
        "the session that changed it goes on"
    );
    let r = p.request("GET", "/bans", &[("Cookie", &phone)], "").await;
    assert_eq!((r.status, r.header("location").as_deref()), (303, Some("/login")), "the other session ended");
}

/// A first-rung ban of `ip` until released, as the pipeline stores one.
async fn ladder_ban(conn: &mut store::Conn, ip: &str, now: i64) -> i64 {
    let ban =
        store::bans::NewBan { ip, reason: "2 failures within 1h", rung: 1, created_at: now, until_at: None };
    store::bans::insert(conn, &ban).await.unwrap()
}

#[tokio::test]
async fn a_banned_phone_is_found_by_its_extension_on_the_bans_page() {
    let p = panel().await;
    let session = p.login().await;
    let mut conn = p.store.acquire().await.unwrap();
    let now = p.clock.now();
    for (ip, account) in [("203.0.113.9", "1003"), ("198.51.100.4", "1004")] {
        store::offenders::record(&mut conn, ip, "PJSIP", Some(account), now).await.unwrap();
        ladder_ban(&mut conn, ip, now).await;
    }
    let r = p.request("GET", "/bans?q=1003", &[("Cookie", &session)], "").await;
    assert_eq!(r.status, 200);
    assert!(r.body.contains("203.0.113.9") && !r.body.contains("198.51.100.4"), "{}", r.body);
    assert!(r.body.contains("1 ban in force for “1003”") && r.body.contains("class=\"release\""));
    let r = p.request("GET", "/bans?q=198.51", &[("Cookie", &session)], "").await;
    assert!(r.body.contains("198.51.100.4") && !r.body.contains("203.0.113.9"), "by part of the address");
    // A wildcard typed by the admin is a character, not a pattern.
    let r = p.request("GET", "/bans?q=%25", &[("Cookie", &session)], "").await;
    assert!(r.body.contains("0 bans in force"), "{}", r.body);
    let r = p.request("GET", "/bans", &[("Cookie", &session)], "").await;
    assert!(r.body.contains("203.0.113.9") && r.body.contains("198.51.100.4") && r.body.contains("1004"));

    // An address with two bans (a rule's and the breach detector's) shows its
    // extensions once on each row, and says which one the breach made.
    let breach = store::bans::NewBan {
        ip: "203.0.113.9",
        reason: "breach: logged into 1003 after guessing",
        rung: 0,
        created_at: now,
        until_at: None,
    };
    store::bans::insert(&mut conn, &breach).await.unwrap();
    let r = p.request("GET", "/bans?q=203.0.113.9", &[("Cookie", &session)], "").await;
    assert_eq!(
        r.body.matches("<td class=\"user\" data-label=\"Accounts tried\">1003</td>").count(),
        2,
        "{}",
        r.body
    );
    assert!(r.body.contains(">breach<") && r.body.contains(">rule 1<"), "{}", r.body);
}

#[tokio::test]
async fn a_locked_extension_is_on_the_dashboard_and_unlocked_in_one_click_with_an_audit_row() {
    let p = panel().await;
    let session = p.login().await;
    let mut conn = p.store.acquire().await.unwrap();
    let incident = store::incidents::NewIncident {
        kind: "toll_fraud",
        severity: "critical",
        account: "1002",
        tech: Some("PJSIP"),
        ip: Some("203.0.113.5"),
        at: p.clock.now(),
        reason: "3 international calls at once",
        calls: Some(3),
        // Dialled numbers are caller text.
        numbers: "00882232332113, <script>alert(1)</script>",
        locked: true,
    };
    let id = store::incidents::insert(&mut conn, &incident).await.unwrap();
    store::incidents::add_action(&mut conn, id, "hung up PJSIP/1002-00000006").await.unwrap();
    drop(conn);
    let dashboard = p.request("GET", "/", &[("Cookie", &session)], "").await;
    assert!(dashboard.body.contains("Extension 1002 locked"), "{}", dashboard.body);
    assert!(dashboard.body.contains("203.0.113.5"));
    assert!(!dashboard.body.contains("<script>alert"), "caller text is escaped");
    let page = p.request("GET", "/incidents", &[("Cookie", &session)], "").await;
    assert!(page.body.contains("hung up PJSIP/1002-00000006") && page.body.contains("Unlock 1002"));
    assert!(page.body.contains("&#60;script&#62;") && !page.body.contains("<script>alert"), "{}", page.body);

    let unlocked = p.request("POST", &format!("/incidents/{id}/unlock"), &same_origin(&session), "").await;
    assert_eq!(unlocked.status, 200, "{}", unlocked.body);
    assert!(unlocked.body.contains("Extension 1002 is unlocked"), "{}", unlocked.body);
    assert!(!unlocked.body.contains("Unlock 1002"));
    let dashboard = p.request("GET", "/", &[("Cookie", &session)], "").await;
    assert!(!dashboard.body.contains("Extension 1002 locked"));
    let audit = p.request("GET", "/audit", &[("Cookie", &session)], "").await;
    assert!(audit.body.contains("extension 1002 unlocked"), "{}", audit.body);
    // Twice is no error, and says so.
    let again = p.request("POST", &format!("/incidents/{id}/unlock"), &same_origin(&session), "").await;
    assert!(again.body.contains("Extension 1002 was not locked"));
    // Without the page's origin: refused like every other change.
    let forged = p
        .request(
            "POST",
            &format!("/incidents/{id}/unlock"),
            &[("Cookie", &session), ("Sec-Fetch-Site", "cross-site")],
            "",
        )
        .await;
    assert_eq!(forged.status, 403);
}

#[tokio::test]
async fn the_logins_page_flags_a_new_address_and_one_that_also_failed() {
    let p = panel().await;
    let session = p.login().await;
    let mut conn = p.store.acquire().await.unwrap();
    let now = p.clock.now();
    store::incidents::record_login(&mut conn, "1001", "192.0.2.20", now - 30 * 86_400_000 + 60_000)
        .await
        .unwrap();
    store::incidents::record_login(&mut conn, "1001", "192.0.2.20", now - 60_000).await.unwrap();
    // A new address for 1001, which also failed to log in first.
    store::failures::insert(&mut conn, &wrong_password_for_1001("203.0.113.66", now - 120_000))
        .await
        .unwrap();
    store::incidents::record_login(&mut conn, "1001", "203.0.113.66", now - 60_000).await.unwrap();
    drop(conn);
    let page = p.request("GET", "/logins", &[("Cookie", &session)], "").await;
    assert_eq!(page.status, 200);
    let row = |ip: &str| page.body.split("<tr").find(|r| r.contains(ip)).unwrap_or("").to_string();
    let office = row("192.0.2.20");
    assert!(!office.contains("class=\"flag\""), "{office}");
    let stranger = row("203.0.113.66");
    assert!(stranger.contains("new address for this extension"), "{stranger}");
    assert!(stranger.contains("1 failed login from it in 24 h"), "{stranger}");
}

#[tokio::test]
async fn alert_settings_are_checked_tested_and_saved_without_showing_the_password() {
    let p = panel().await;
    let session = p.login().await;
    let form = |webhook: &str, password: &str| {
        format!(
            "webhook={}&host=mail.example.com&port=587&security=starttls&username=pbx&password={password}&from=pbx%40example.com&to=admin%40example.com&breach=on&toll_fraud=on",
            urlencoding(webhook)
        )
    };
    let bad =
        p.request("POST", "/alerts", &same_origin(&session), &form("ftp://example.com/x", "s3cret")).await;
    assert!(
        bad.body.contains("webhook: &#34;ftp://example.com/x&#34; must start with https://"),
        "{}",
        bad.body
    );
    let mut conn = p.store.acquire().await.unwrap();
    assert_eq!(
        store::settings::get(&mut conn, store::settings::ALERTS).await.unwrap(),
        None,
        "nothing saved"
    );
    drop(conn);
    let (url, hooked) = crate::alerts::webhook_receiver().await;
    let tested = p
        .request("POST", "/alerts/test", &same_origin(&session), &format!("webhook={}", urlencoding(&url)))
        .await;
    assert!(tested.body.contains("Test sent"), "{}", tested.body);
    assert_eq!(hooked.lock().unwrap()[0]["kind"], "test");
    let saved = p.request("POST", "/alerts", &same_origin(&session), &form(&url, "s3cret")).await;
    assert!(saved.body.contains("Saved."), "{}", saved.body);
    assert!(!saved.body.contains("s3cret"), "the password is never shown");
    // Saved again without typing the password: the stored one stays.
    p.request("POST", "/alerts", &same_origin(&session), &form(&url, "")).await;
    let stored = sipwarden::alerts::load(&p.store).await.unwrap().unwrap();
    assert_eq!(stored.smtp.as_ref().unwrap().password.as_deref(), Some("s3cret"));
    assert_eq!(
        stored.off,
        ["unlocked", "not_protecting", "admin_login", "bans", "daily_summary"],
        "unchecked kinds are off: {stored:?}"
    );
    let audit = p.request("GET", "/audit", &[("Cookie", &session)], "").await;
    assert!(
        audit.body.contains("alerts: webhook on, mail to admin@example.com")
            && !audit.body.contains("s3cret")
    );
}

fn urlencoding(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test]
async fn release_and_trust_is_one_audited_change_and_never_trusts_a_prefix() {
    let p = panel().await;
    let session = p.login().await;
    let mut conn = p.store.acquire().await.unwrap();
    let now = p.clock.now();
    let ids = [
        ladder_ban(&mut conn, "203.0.113.9", now).await,
        ladder_ban(&mut conn, "2001:db8:1:2::/64", now).await,
    ];
    let r =
        p.request("POST", &format!("/bans/{}/release-and-trust", ids[0]), &same_origin(&session), "").await;
    assert_eq!(r.status, 303, "{}", r.body);
    let trusted = store::networks::trusted_nets(&mut conn).await.unwrap();
    assert!(trusted.iter().any(|n| n.to_string() == "203.0.113.9/32"), "{trusted:?}");
    let actions: Vec<String> =
        store::audit::recent(&mut conn, 10).await.unwrap().into_iter().map(|a| a.action).collect();
    assert!(
        actions.contains(&"release".to_string()) && actions.contains(&"trust".to_string()),
        "{actions:?}"
    );
    // A prefix is refused before anything changes: still banned, nothing trusted.
    let r =
        p.request("POST", &format!("/bans/{}/release-and-trust", ids[1]), &same_origin(&session), "").await;
    assert_eq!(r.status, 400);
    assert!(r.body.contains("not trusted as a whole"), "{}", r.body);
    let active: Vec<String> =
        store::bans::active(&mut conn, now).await.unwrap().into_iter().map(|b| b.ip).collect();
    assert_eq!(active, ["2001:db8:1:2::/64"]);
    assert!(
        !store::networks::trusted_nets(&mut conn)
            .await
            .unwrap()
            .iter()
            .any(|n| n.to_string().starts_with("2001:"))
    );
}

#[tokio::test]
async fn the_registrations_page_shows_who_is_registered_where_and_flags_a_scanners_contact() {
    use sipwarden::domain::{ContactChange, DatedContact};
    let p = panel().await;
    let session = p.login().await;
    let mut conn = p.store.acquire().await.unwrap();
    let now = p.clock.now();
    store::incidents::record_login(&mut conn, "1003", "10.98.0.30", now - 60_000).await.unwrap();
    let contact = |account: &str, uri: &str, user_agent: Option<&str>| DatedContact {
        at: Some(now - 60_000),
        change: ContactChange {
            account: account.into(),
            uri: uri.into(),
            user_agent: user_agent.map(str::to_owned),
            present: true,
            expires_in_s: Some(3600),
        },
    };
    let changes = [
        contact("1003", "sip:1003@10.98.0.30:44244", Some("Yealink SIP-T46U 108.86.0.20")),
        contact("1002", "sip:123@10.98.0.66:5060;x-ast-orig-host=1.1.1.1:0", Some("<script>x</script>")),
    ];
    store::contacts::record(&mut conn, &changes, now).await.unwrap();
    drop(conn);
    let page = p.request("GET", "/logins", &[("Cookie", &session)], "").await;
    assert_eq!(page.status, 200);
    let table =
        page.body.split("id=\"contacts\"").nth(1).unwrap().split("</table>").next().unwrap().to_string();
    let row = |text: &str| table.split("<tr").find(|r| r.contains(text)).unwrap_or("").to_string();
    let office = row("10.98.0.30");
    assert!(office.contains("Yealink") && !office.contains("class=\"flag\""), "{office}");
    let scanner = row("10.98.0.66");
    assert!(scanner.contains("the phone gave 1.1.1.1 as its address"), "{scanner}");
    assert!(!page.body.contains("<script>x"), "attacker text is escaped");
}

#[tokio::test]
async fn an_offenders_page_releases_trusts_and_bans_it_and_says_so() {
    let p = panel().await;
    let session = p.login().await;
    let mut conn = p.store.acquire().await.unwrap();
    let now = p.clock.now();
    store::offenders::record(&mut conn, "203.0.113.9", "PJSIP", Some("1003"), now).await.unwrap();
    ladder_ban(&mut conn, "203.0.113.9", now).await;
    let page = p.request("GET", "/offenders/203.0.113.9", &[("Cookie", &session)], "").await;
    let actions = page.body.split("id=\"offender-actions\"").nth(1).unwrap().split("</div>").next().unwrap();
    assert!(
        actions.contains(">Release<")
            && actions.contains(">Release and trust<")
            && !actions.contains(">Ban<")
    );
    assert!(
        page.body.contains("Why: 2 failed logins for 1003 within 1h → blocked until an admin releases it"),
        "{}",
        page.body
    );
    // Release: back on the same page, which says what happened and now offers a ban.
    let r = p.request("POST", "/offenders/203.0.113.9/release", &same_origin(&session), "").await;
    assert_eq!(
        (r.status, r.header("location").as_deref()),
        (303, Some("/offenders/203.0.113.9?done=released"))
    );
    assert!(p.active_bans_of("203.0.113.9").await.is_empty());
    let page = p.request("GET", "/offenders/203.0.113.9?done=released", &[("Cookie", &session)], "").await;
    assert!(page.body.contains("Released: the firewall lets it in again."), "{}", page.body);
    assert!(page.body.contains(">Ban<"));
    // A link cannot put words on the page.
    let page = p.request("GET", "/offenders/203.0.113.9?done=%3Cb%3Ehi", &[("Cookie", &session)], "").await;
    assert!(!page.body.contains("hi</") && !page.body.contains("class=\"notice\""));
    // Ban it by hand from here, for a day.
    let r = p
        .request("POST", "/offenders/203.0.113.9/ban", &same_origin(&session), "duration=24h&reason=scanner")
        .await;
    assert_eq!(r.status, 303);
    let bans = p.active_bans_of("203.0.113.9").await;
    assert_eq!(bans.len(), 1);
    assert_eq!(bans[0].until_at, Some(now + 86_400_000));
    // Release and trust: one change, and the page then offers nothing to do.
    let r = p.request("POST", "/offenders/203.0.113.9/release-and-trust", &same_origin(&session), "").await;
    assert_eq!(r.status, 303);
    assert!(p.active_bans_of("203.0.113.9").await.is_empty());
    let page = p.request("GET", "/offenders/203.0.113.9", &[("Cookie", &session)], "").await;
    assert!(page.body.contains("Verdict: <strong>trusted</strong>"), "{}", page.body);
    let actions = page.body.split("id=\"offender-actions\"").nth(1).unwrap().split("</div>").next().unwrap();
    assert!(!actions.contains("<button"), "{actions}");
    // Trusted now: a ban by hand is refused with the reason, nothing saved.
    let r = p.request("POST", "/offenders/203.0.113.9/ban", &same_origin(&session), "duration=1h").await;
    assert_eq!(r.status, 400);
    assert!(r.body.contains("never banned"), "{}", r.body);
    assert!(p.active_bans_of("203.0.113.9").await.is_empty());
}

/// The dashboard answers "am I under attack now": failures of the last 10 minutes,
/// from how many addresses, how many of them banned, and which top address is banned;
/// with nothing recorded yet, how to check the logs are read.
#[tokio::test]
async fn the_dashboard_says_under_attack_now_and_who_is_banned() {
    let fresh = panel().await;
    let session = fresh.login().await;
    let quiet = fresh.request("GET", "/dashboard/live", &[("Cookie", &session)], "").await;
    assert!(quiet.body.contains("No failed logins in the last 10 minutes"), "{}", quiet.body);
    assert!(quiet.body.contains("id=\"no-failures-yet\""), "the empty state says how to check");

    let p = panel().await;
    let session = p.login().await;
    let mut conn = p.store.acquire().await.unwrap();
    let now = p.clock.now();
    // Two addresses now (one banned), one two hours ago.
    for (ip, at) in
        [("203.0.113.7", now - 60_000), ("203.0.113.7", now - 30_000), ("198.51.100.8", now - 5_000)]
    {
        store::failures::insert(&mut conn, &wrong_password_for_1001(ip, at)).await.unwrap();
        store::offenders::record(&mut conn, ip, "PJSIP", Some("1001"), at).await.unwrap();
    }
    store::failures::insert(&mut conn, &wrong_password_for_1001("192.0.2.99", now - 2 * 3_600_000))
        .await
        .unwrap();
    store::offenders::record(&mut conn, "192.0.2.99", "PJSIP", Some("1001"), now - 2 * 3_600_000)
        .await
        .unwrap();
    ladder_ban(&mut conn, "203.0.113.7", now - 20_000).await;
    drop(conn);
    let live = p.request("GET", "/dashboard/live", &[("Cookie", &session)], "").await;
    let attack =
        live.body.split("id=\"attack-now\"").nth(1).unwrap_or("").split("</section>").next().unwrap();
    assert!(attack.contains("Under attack now"), "{attack}");
    assert!(attack.contains("<strong>3</strong> failed logins in the last 10 minutes"), "{attack}");
    assert!(
        attack.contains("<strong>2</strong> addresses; <strong>1</strong> of them is banned"),
        "{attack}"
    );
    assert!(live.body.contains("id=\"failures-hour\">3<"), "{}", live.body);
    assert!(live.body.contains("id=\"bans-hour\">1<"), "{}", live.body);
    assert!(!live.body.contains("no-failures-yet"));
    let row = |ip: &str| live.body.split("<tr").find(|r| r.contains(ip)).unwrap_or("").to_string();
    assert!(row("203.0.113.7").contains("until released"), "{}", row("203.0.113.7"));
    assert!(row("198.51.100.8").contains("not banned"), "{}", row("198.51.100.8"));
}

/// A stored PJSIP wrong password for 1001 from `ip`, as the pipeline stores one.
/// A first-rung ban of `ip`, decided 30 s before `now`, stored through `conn`.
async fn hour_ban(conn: &mut store::Conn, ip: &str, now: i64) {
    let ban = store::bans::NewBan {
        ip,
        reason: "2 failures within 1h",
        rung: 1,
        created_at: now - 30_000,
        until_at: Some(now + 3_600_000),
    };
    store::bans::insert(conn, &ban).await.unwrap();
}

fn wrong_password_for_1001(ip: &str, at: i64) -> store::failures::NewFailure<'static> {
    store::failures::NewFailure {
        at,
        ip: Some(ip.into()),
        service: "PJSIP",
        account: Some("1001"),
        kind: "wrong_password",
        source: "security",
        raw: "x",
        tampered: false,
        verdict: "counted",
    }
}

/// A refused panel login goes to the ban rules like a wrong SIP password: the handler
/// queues it, and stored through the pipeline two of them from one address ban it.
#[tokio::test]
async fn failed_panel_logins_feed_the_ban_rules_like_any_service() {
    let (tx, mut rx) = tokio::sync::mpsc::channel(8);
    let mut p = panel().await;
    p.router = router_of(&p.store, p.state.clone().with_panel_failures(tx), time::Duration::hours(1)).await;
    let r = p.request_from("127.0.0.7", "POST", "/login", &[], "username=root&password=guess").await;
    assert_eq!(r.status, 401);
    let queued = rx.try_recv().expect("the refused login is queued");
    assert_eq!((queued.ip, queued.account.as_deref()), (Some("127.0.0.7".parse().unwrap()), Some("root")));
    assert_eq!(queued.service, sipwarden::domain::Service::Panel);

    let app = crate::common::TestApp::new(TrustedNetworks::default(), true).await;
    let from = "203.0.113.44".parse().unwrap();
    let at = app.clock_now();
    let mut stored = 0;
    let failures = vec![
        sipwarden::ingest::panel::failure(at, from, "admin"),
        sipwarden::ingest::panel::failure(at + 1_000, from, "admin"),
    ];
    sipwarden::ingest::panel::step(&app.pipeline, &mut stored, failures).await;
    let bans = app.active_bans().await;
    assert!(bans.iter().any(|b| b.ip == "203.0.113.44"), "{bans:?}");
    assert_eq!(app.count_for("203.0.113.44").await, 2);
}
