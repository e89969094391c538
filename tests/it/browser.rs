//! The panel in a real headless Chromium (through chromedriver), against a real
//! `sipwarden serve` with a real SQLite file, a log file the test appends to, and
//! nftables in a network namespace. Needs root, nft, ip, chromium and chromedriver;
//! under `CI=true` a missing one fails the test instead of skipping it.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use sipwarden::store::{self, Store};

use crate::common::{append, works};
use crate::harness::{Serve, eventually_async, never_async};

fn can_run() -> bool {
    crate::common::runnable(
        "browser test",
        &[
            ("root", nix::unistd::geteuid().is_root()),
            ("nft", works("nft", &["--version"])),
            ("ip", works("ip", &["-V"])),
            ("chromedriver", works("chromedriver", &["--version"])),
            ("chromium", Path::new("/usr/bin/chromium").exists()),
        ],
    )
}

/// Kills the child and removes the namespace however the test ends.
struct Guard {
    children: Vec<Child>,
    netns: String,
}

impl Drop for Guard {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = Command::new("ip").args(["netns", "del", &self.netns]).output();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn kernel_bans(netns: &str) -> String {
    let out = Command::new("ip")
        .args(["netns", "exec", netns, "nft", "list", "table", "inet", "sipwarden"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// How long a page or the kernel is given to show a change.
const SOON: Duration = Duration::from_secs(10);

fn failure(ip: &str, user: &str) -> String {
    let now = crate::common::now_date();
    format!(
        "[{now}] SECURITY[2] res_security_log.c: SecurityEvent=\"InvalidAccountID\",EventTV=\"{}\",Severity=\"Error\",Service=\"PJSIP\",EventVersion=\"1\",AccountID=\"{user}\",SessionID=\"1@x\",LocalAddress=\"IPV4/UDP/10.0.0.1/5060\",RemoteAddress=\"IPV4/UDP/{ip}/5060\"\n",
        chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.3f+0000")
    )
}

/// Screenshots and the server's log are kept for a look after the run.
fn artifacts() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn screenshot(c: &Client, name: &str) {
    let dir = artifacts();
    let png = c.screenshot().await.unwrap();
    std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
}

/// The text of `css`, waiting for it. The dashboard refreshes itself, so an element
/// found a moment ago may have been replaced: look again rather than fail.
async fn text_of(c: &Client, css: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(e) = c.find(Locator::Css(css)).await {
            if let Ok(text) = e.text().await {
                return text;
            }
        }
        if Instant::now() > deadline {
            screenshot(c, "failure").await;
            panic!(
                "{css} not found on {}: {}",
                c.current_url().await.unwrap(),
                c.source().await.unwrap_or_default()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Says OK to the confirmation the page asks for.
async fn accept_confirmation(c: &Client) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while c.accept_alert().await.is_err() {
        assert!(Instant::now() < deadline, "no confirmation was asked");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Clicks `css`, looking it up again if a refresh replaced it in between.
async fn click(c: &Client, css: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(e) = c.find(Locator::Css(css)).await {
            if e.click().await.is_ok() {
                return;
            }
        }
        assert!(Instant::now() < deadline, "could not click {css}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_admin_sets_up_logs_in_releases_a_ban_and_switches_protection() {
    if !can_run() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let netns = format!("swt-{}-web", std::process::id());
    assert!(works("ip", &["netns", "add", &netns]));
    let mut guard = Guard { children: Vec::new(), netns: netns.clone() };
    let log = dir.path().join("messages");
    append(&log, "[2026-11-27 10:00:00] NOTICE[1] chan_sip.c: sipwarden browser test log\n");
    let (_asterisk_dir, pbx, asterisk_calls) = crate::pbx::config_dir();
    let config = dir.path().join("sipwarden.toml");
    let geoip = crate::countries::debian_geoip();
    let geoip_line = geoip.as_ref().map_or(String::new(), |g| format!("geoip = \"{}\"\n", g.display()));
    std::fs::write(
        &config,
        format!(
            "{geoip_line}[firewall]\nbackend = \"nft\"\ncommand_prefix = [\"ip\", \"netns\", \"exec\", \"{netns}\"]\nreconcile_interval = \"1s\"\n\n[asterisk]\nconfig_dir = \"{}\"\ncommand = [\"{}\"]\n",
            pbx.config_dir.display(),
            pbx.command[0]
        ),
    )
    .unwrap();
    // Declared after the guard: stopped before the namespace goes.
    let serve = Serve::new(&dir.path().join("data"))
        .arg("--config")
        .arg(&config)
        .log(&log)
        .stderr_to(&artifacts().join("serve.log"))
        .start();
    let setup_url = serve.setup_url.clone();
    assert!(setup_url.contains("/setup?token="));

    let driver_port = free_port();
    let driver = Command::new("chromedriver")
        .args([format!("--port={driver_port}"), "--allowed-ips=127.0.0.1".into()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    guard.children.push(driver);
    let profile = tempfile::tempdir().unwrap();
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": "/usr/bin/chromium",
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                     "--no-first-run", "--disable-background-networking", "--disable-component-update",
                     "--disable-sync", "--window-size=1280,1000", format!("--user-data-dir={}", profile.path().display())]
        }),
    );
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    let mut c = None;
    for _ in 0..50 {
        match ClientBuilder::new(connector.clone())
            .capabilities(caps.clone())
            .connect(&format!("http://127.0.0.1:{driver_port}"))
            .await
        {
            Ok(client) => {
                c = Some(client);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
    let c = c.expect("chromedriver answers");
    let base = setup_url.split("/setup").next().unwrap().to_string();

    // First start: create the admin from the one-time address.
    c.goto(&setup_url).await.unwrap();
    c.find(Locator::Css("input[name=username]")).await.unwrap().clear().await.unwrap();
    c.find(Locator::Css("input[name=username]")).await.unwrap().send_keys("office-admin").await.unwrap();
    c.find(Locator::Css("input[name=password]")).await.unwrap().send_keys("a long passphrase").await.unwrap();
    c.find(Locator::Css("input[name=confirm]")).await.unwrap().send_keys("a long passphrase").await.unwrap();
    c.find(Locator::Id("create")).await.unwrap().click().await.unwrap();
    c.wait().for_element(Locator::Id("protection-state")).await.unwrap();

    // Log out and in again.
    c.find(Locator::Css("form[action='/logout'] button")).await.unwrap().click().await.unwrap();
    c.wait().for_element(Locator::Id("login")).await.unwrap();
    c.find(Locator::Css("input[name=username]")).await.unwrap().send_keys("office-admin").await.unwrap();
    c.find(Locator::Css("input[name=password]")).await.unwrap().send_keys("wrong password!").await.unwrap();
    c.find(Locator::Id("login")).await.unwrap().click().await.unwrap();
    assert!(text_of(&c, ".error").await.contains("Wrong user name or password"));
    c.find(Locator::Css("input[name=password]")).await.unwrap().send_keys("a long passphrase").await.unwrap();
    c.find(Locator::Id("login")).await.unwrap().click().await.unwrap();
    assert!(text_of(&c, "#protection-state").await.contains("Protection is ON"));
    screenshot(&c, "dashboard").await;

    // An attacker whose user name is a script: two failures, a ban.
    let attacker = "198.51.100.50";
    let script = "<script>alert(1)</script>";
    append(&log, &(failure(attacker, script) + &failure(attacker, script)));
    eventually_async("the ban reaches the kernel", SOON, async || kernel_bans(&netns).contains(attacker))
        .await;
    c.goto(&format!("{base}/offenders")).await.unwrap();
    let table = text_of(&c, "#offenders").await;
    assert!(table.contains(attacker) && table.contains(script), "the name shows as text: {table}");
    assert!(c.get_alert_text().await.is_err(), "no script ran");
    screenshot(&c, "offenders").await;

    // Release in one click: the row goes, the database and the kernel follow.
    c.goto(&format!("{base}/bans")).await.unwrap();
    assert!(text_of(&c, "#bans").await.contains(attacker));
    screenshot(&c, "bans").await;
    click(&c, "#bans button.release").await;
    eventually_async("the row disappears", SOON, async || !text_of(&c, "#bans").await.contains(attacker))
        .await;
    let store = Store::open(&dir.path().join("data/sipwarden.db")).await.unwrap();
    let mut conn = store.acquire().await.unwrap();
    let now = chrono::Utc::now().timestamp_millis();
    assert!(
        store::bans::active_for(&mut conn, attacker, now).await.unwrap().is_none(),
        "released in the database"
    );
    let history = store::bans::for_ip(&mut conn, attacker).await.unwrap();
    assert_eq!(history[0].released_by.as_deref(), Some("office-admin"));
    drop(conn);
    eventually_async("the kernel element goes", SOON, async || !kernel_bans(&netns).contains(attacker)).await;

    // Protection off: a new decision is recorded but not enforced; on: enforced.
    c.goto(&base).await.unwrap();
    click(&c, "#protection-toggle").await;
    accept_confirmation(&c).await;
    eventually_async("monitor mode shown", SOON, async || {
        text_of(&c, "#protection-state").await.contains("OFF")
    })
    .await;
    let second = "198.51.100.51";
    append(&log, &(failure(second, "1001") + &failure(second, "1002")));
    eventually_async("the decision is stored", SOON, async || {
        let mut conn = store.acquire().await.unwrap();
        store::bans::active_for(&mut conn, second, chrono::Utc::now().timestamp_millis())
            .await
            .unwrap()
            .is_some()
    })
    .await;
    // Watched over more than one reconcile interval (1 s here).
    never_async("monitor mode blocks nobody", Duration::from_secs(2), async || {
        kernel_bans(&netns).contains(second)
    })
    .await;
    click(&c, "#protection-toggle").await;
    accept_confirmation(&c).await;
    eventually_async("protection back on", SOON, async || {
        text_of(&c, "#protection-state").await.contains("ON")
    })
    .await;
    eventually_async("the decision taken meanwhile is enforced", SOON, async || {
        kernel_bans(&netns).contains(second)
    })
    .await;

    c.goto(&base).await.unwrap();
    text_of(&c, "#active-bans").await;
    screenshot(&c, "dashboard-after").await;

    // The failed-login log, and the audit of all of this.
    c.goto(&format!("{base}/log")).await.unwrap();
    assert!(text_of(&c, "#log").await.contains(second));
    screenshot(&c, "log").await;
    c.goto(&format!("{base}/audit")).await.unwrap();
    let audit = text_of(&c, "#audit").await;
    for action in ["setup", "login", "release", "protection"] {
        assert!(audit.contains(action), "audit has {action}: {audit}");
    }
    // The mistyped password is on the failed-logins view, one click away.
    click(&c, "#failed-logins").await;
    let failed = text_of(&c, "#audit").await;
    assert!(failed.contains("User name tried") && failed.contains("127.0.0.1"), "{failed}");

    // Networks: an extension network, the roles, preview, apply, and removing it again.
    c.goto(&format!("{base}/networks")).await.unwrap();
    c.find(Locator::Css("#add-network select[name=list]"))
        .await
        .unwrap()
        .select_by_value("extensions")
        .await
        .unwrap();
    c.find(Locator::Css("#add-network input[name=address]"))
        .await
        .unwrap()
        .send_keys("192.168.10.0/24")
        .await
        .unwrap();
    c.find(Locator::Css("#add-network input[name=label]"))
        .await
        .unwrap()
        .send_keys("office phones")
        .await
        .unwrap();
    click(&c, "#add").await;
    assert!(text_of(&c, "table.list-extensions").await.contains("192.168.10.0/24"));
    c.find(Locator::Css("select[name='role:sip:1001']"))
        .await
        .unwrap()
        .select_by_value("extension")
        .await
        .unwrap();
    click(&c, "#save-targets").await;
    click(&c, "#preview").await;
    assert!(text_of(&c, "pre.diff").await.contains("permit=192.168.10.0/255.255.255.0"));
    screenshot(&c, "acl-preview").await;
    click(&c, "#apply-acl").await;
    assert!(text_of(&c, "#applied").await.contains("Applied and verified"));
    assert!(
        std::fs::read_to_string(pbx.config_dir.join("sip_custom_post.conf")).unwrap().contains("[1001](+)")
    );
    c.goto(&format!("{base}/networks")).await.unwrap();
    click(&c, "table.list-extensions button.link").await;
    eventually_async("the entry is removed", SOON, async || {
        !text_of(&c, "table.list-extensions").await.contains("192.168.10.0/24")
    })
    .await;

    // The lockout guard: always-deny over the browser's own address is refused.
    c.find(Locator::Css("#add-network select[name=list]"))
        .await
        .unwrap()
        .select_by_value("deny")
        .await
        .unwrap();
    c.find(Locator::Css("#add-network input[name=address]"))
        .await
        .unwrap()
        .send_keys("127.0.0.0/8")
        .await
        .unwrap();
    click(&c, "#add").await;
    assert!(text_of(&c, ".error").await.contains("contains your own address 127.0.0.1"));
    assert!(!text_of(&c, "table.list-deny").await.contains("127.0.0.0/8"), "nothing saved");
    screenshot(&c, "networks").await;

    // A form on another site (here: another port of the same host, which is
    // "same-site" for cookies) cannot switch protection off.
    let evil_port = free_port();
    let evil = tokio::net::TcpListener::bind(("127.0.0.1", evil_port)).await.unwrap();
    let page = format!(
        "<!doctype html><form method=post action='{base}/protection'><input type=hidden name=on value=false><button id=go>win a prize</button></form>"
    );
    tokio::spawn(async move {
        let app = axum::Router::new()
            .route("/", axum::routing::get(move || async move { axum::response::Html(page) }));
        axum::serve(evil, app).await.unwrap();
    });
    c.goto(&format!("http://127.0.0.1:{evil_port}/")).await.unwrap();
    c.find(Locator::Id("go")).await.unwrap().click().await.unwrap();
    // The post reached the panel (the browser shows its answer) and changed nothing.
    eventually_async("the cross-site post is answered", SOON, async || {
        c.current_url().await.is_ok_and(|u| u.as_str().starts_with(&base))
    })
    .await;
    let mut conn = store.acquire().await.unwrap();
    assert!(store::settings::protection(&mut conn, true).await.unwrap(), "the cross-site post was refused");

    a_cracked_extension_is_locked_and_unlocked(&c, &base, &log, &asterisk_calls).await;
    a_viewer_looks_but_changes_nothing(&c, &base).await;
    if geoip.is_some() {
        countries_are_chosen_per_service(&c, &base, &netns).await;
    }
    on_a_phone(&c, &base, &log).await;
    c.close().await.unwrap();
}

fn security_event(event: &str, ip: &str, user: &str, session: &str, tail: &str) -> String {
    let now = crate::common::now_date();
    let severity = if event == "SuccessfulAuth" { "Informational" } else { "Error" };
    format!(
        "[{now}] SECURITY[2] res_security_log.c: SecurityEvent=\"{event}\",EventTV=\"{}\",Severity=\"{severity}\",Service=\"SIP\",EventVersion=\"1\",AccountID=\"{user}\",SessionID=\"{session}\",LocalAddress=\"IPV4/UDP/10.0.0.1/5060\",RemoteAddress=\"IPV4/UDP/{ip}/5060\",{tail}\n",
        chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.3f+0000")
    )
}

/// A password guessed at machine speed: the dashboard says the extension is locked,
/// the incident shows what was done, Unlock ends it and Asterisk is told.
async fn a_cracked_extension_is_locked_and_unlocked(
    c: &Client,
    base: &str,
    log: &Path,
    asterisk_calls: &Path,
) {
    let cracker = "198.51.100.77";
    let wrong = "Challenge=\"a\",ReceivedChallenge=\"a\",ReceivedHash=\"b\"";
    let mut lines = String::new();
    for i in 0..3 {
        lines.push_str(&security_event("InvalidPassword", cracker, "2001", &format!("0x{i}"), wrong));
    }
    lines.push_str(&security_event("SuccessfulAuth", cracker, "2001", "0x9", "UsingPassword=\"1\""));
    append(log, &lines);
    c.goto(base).await.unwrap();
    eventually_async("the lock on the dashboard", SOON, async || {
        c.refresh().await.unwrap();
        text_of(c, "main").await.contains("Extension 2001 locked")
    })
    .await;
    assert!(text_of(c, "main").await.contains(cracker));
    screenshot(c, "dashboard-locked").await;
    click(c, "section.locked a").await;
    let incident = text_of(c, "#incidents").await;
    assert!(incident.contains("critical breach") && incident.contains("banned until released"), "{incident}");
    assert!(incident.contains("2001 locked"), "{incident}");
    screenshot(c, "incidents").await;
    let asked = std::fs::read_to_string(asterisk_calls).unwrap_or_default();
    assert!(asked.contains("-rx database put sipwarden-locked 2001 1"), "{asked}");
    click(c, "button.unlock").await;
    accept_confirmation(c).await;
    eventually_async("unlocked", SOON, async || {
        text_of(c, "main").await.contains("Extension 2001 is unlocked")
    })
    .await;
    let asked = std::fs::read_to_string(asterisk_calls).unwrap_or_default();
    assert!(asked.contains("-rx database del sipwarden-locked 2001"), "{asked}");
    c.goto(base).await.unwrap();
    assert!(!text_of(c, "main").await.contains("Extension 2001 locked"));
}

/// SIP only from Germany and Austria: a typo is refused with nothing saved, the preview
/// counts what the change drops, the change is kept and reaches the kernel.
async fn countries_are_chosen_per_service(c: &Client, base: &str, netns: &str) {
    c.goto(&format!("{base}/countries")).await.unwrap();
    assert!(text_of(c, "#database").await.contains("ranges loaded"));
    let only = "#countries-sip input[name=only]";
    c.find(Locator::Css(only)).await.unwrap().send_keys("DE Germany").await.unwrap();
    click(c, "#save-sip").await;
    let error = text_of(c, "#countries-sip .error").await;
    assert!(
        error.contains("\"Germany\" is no country code") && error.contains("Nothing was saved"),
        "{error}"
    );
    assert_eq!(text_of(c, "#now-sip").await, "every country");
    c.find(Locator::Css(only)).await.unwrap().clear().await.unwrap();
    c.find(Locator::Css(only)).await.unwrap().send_keys("de at").await.unwrap();
    click(c, "#preview-button-sip").await;
    eventually_async("the preview", SOON, async || text_of(c, "#preview-sip").await.contains("drops")).await;
    let preview = text_of(c, "#preview-sip").await;
    assert!(
        preview.contains("ranges of") && preview.contains("every address the database places in no country"),
        "{preview}"
    );
    screenshot(c, "countries-preview").await;
    click(c, "#save-sip").await;
    assert_eq!(text_of(c, "#now-sip").await, "only AT, DE");
    assert!(text_of(c, "#pending").await.contains("countries for sip: only AT, DE"));
    click(c, "#keep").await;
    c.wait().for_url(&url::Url::parse(&format!("{base}/countries")).unwrap()).await.unwrap();
    assert!(c.find(Locator::Id("pending")).await.is_err(), "kept: nothing left to undo");
    eventually_async("the country table in the kernel", SOON, async || {
        let out = Command::new("ip")
            .args([
                "netns",
                "exec",
                netns,
                "nft",
                "list",
                "set",
                "inet",
                "sipwarden_countries",
                "only4_sip_a",
            ])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).contains("flags interval")
    })
    .await;
    // The kernel's counters, read through the running `serve`.
    c.goto(&format!("{base}/countries")).await.unwrap();
    let dropped = text_of(c, "#dropped-sip").await;
    assert!(dropped.contains("dropped since 20"), "{dropped}");
    screenshot(c, "countries").await;
}

async fn log_in(c: &Client, base: &str, name: &str, password: &str) {
    c.goto(&format!("{base}/login")).await.unwrap();
    c.find(Locator::Css("input[name=username]")).await.unwrap().send_keys(name).await.unwrap();
    c.find(Locator::Css("input[name=password]")).await.unwrap().send_keys(password).await.unwrap();
    click(c, "#login").await;
    c.wait().for_element(Locator::Css("header.top")).await.unwrap();
}

/// The admin adds a viewer on the Accounts page; logged in as the viewer, the
/// dashboard shows the state without the switch, and the account says it is read only.
async fn a_viewer_looks_but_changes_nothing(c: &Client, base: &str) {
    c.goto(&format!("{base}/accounts")).await.unwrap();
    let form = c.find(Locator::Css("#add-account")).await.unwrap();
    form.find(Locator::Css("input[name=username]")).await.unwrap().send_keys("night-shift").await.unwrap();
    form.find(Locator::Css("select[name=role]")).await.unwrap().select_by_value("viewer").await.unwrap();
    form.find(Locator::Css("input[name=password]"))
        .await
        .unwrap()
        .send_keys("night shift pass")
        .await
        .unwrap();
    form.find(Locator::Css("input[name=confirm]"))
        .await
        .unwrap()
        .send_keys("night shift pass")
        .await
        .unwrap();
    click(c, "#add-account button").await;
    assert!(text_of(c, ".ok").await.contains("Account night-shift added as viewer"));
    assert!(text_of(c, "#accounts").await.contains("night-shift"));
    screenshot(c, "accounts").await;

    click(c, "form[action='/logout'] button").await;
    log_in(c, base, "night-shift", "night shift pass").await;
    assert!(text_of(c, "header.top").await.contains("viewer, read only"));
    assert!(text_of(c, "#protection-state").await.contains("Protection is ON"));
    let switch = c.find(Locator::Css("form[action='/protection'] button")).await.unwrap();
    assert!(!switch.is_displayed().await.unwrap(), "a viewer has no protection switch");
    c.goto(&format!("{base}/bans")).await.unwrap();
    assert!(text_of(c, "main").await.contains("198.51.100.77"), "a viewer sees the bans");
    let changes = "return [...document.querySelectorAll('main form[method=post] button, main [hx-post]')]\
                   .filter(e => e.offsetParent !== null).length";
    assert_eq!(c.execute(changes, vec![]).await.unwrap(), 0, "no change control is shown to a viewer");
    screenshot(c, "bans-viewer").await;
    click(c, "form[action='/logout'] button").await;
    log_in(c, base, "office-admin", "a long passphrase").await;
}

/// At 400 px wide every page fits the screen (no sideways scrolling) and a ban is
/// released with one tap.
async fn on_a_phone(c: &Client, base: &str, log: &Path) {
    let phone = "203.0.113.40";
    append(log, &(failure(phone, "1003") + &failure(phone, "1004")));
    c.set_window_size(400, 800).await.unwrap();
    let width = "return [document.documentElement.scrollWidth, window.innerWidth]";
    for page in [
        "/",
        "/offenders",
        &format!("/offenders/{phone}"),
        "/bans",
        "/incidents",
        "/logins",
        "/alerts",
        "/log",
        "/networks",
        "/countries",
        "/settings",
        "/audit",
        "/accounts",
        "/password",
    ] {
        c.goto(&format!("{base}{page}")).await.unwrap();
        if page == "/bans" {
            eventually_async("the phone's ban is listed", SOON, async || {
                text_of(c, "main").await.contains(phone)
            })
            .await;
        }
        let name = match page.trim_matches('/').replace('/', "-") {
            n if n.is_empty() => "dashboard".to_string(),
            n => n,
        };
        screenshot(c, &format!("phone-{name}")).await;
        if page == "/" {
            // The attacks-by-country chart: one bar per country.
            let card = c.find(Locator::Id("countries")).await.unwrap();
            assert!(!card.find_all(Locator::Css("svg.bar rect")).await.unwrap().is_empty());
            std::fs::write(
                artifacts().join("phone-dashboard-countries.png"),
                card.screenshot().await.unwrap(),
            )
            .unwrap();
        }
        let sizes = c.execute(width, vec![]).await.unwrap();
        let (scroll, inner) = (sizes[0].as_i64().unwrap(), sizes[1].as_i64().unwrap());
        assert!(scroll <= inner, "{page} scrolls sideways at 400 px: {scroll} > {inner}");
    }
    c.goto(&format!("{base}/bans")).await.unwrap();
    let row = format!("//tr[td[contains(., '{phone}')]]//button[contains(@class, 'release')]");
    c.find(Locator::XPath(&row)).await.unwrap().click().await.unwrap();
    eventually_async("the released ban leaves the list", SOON, async || {
        !text_of(c, "main").await.contains(phone)
    })
    .await;
}
