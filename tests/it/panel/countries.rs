//! Countries in the panel's lists, from a country database that is replaced while the
//! panel runs (a package update).

use sipwarden::clock::Clock;
use sipwarden::domain::ClosableService;
use sipwarden::geo::Geo;
use sipwarden::store;

use super::{hour_ban, panel, router_of, wrong_password_for_1001};

/// The text of the Country cell in the row that holds `ip`.
fn country_of(page: &str, ip: &str) -> String {
    let row =
        page.split("<tr").find(|r| r.contains(&format!(">{ip}<"))).unwrap_or_else(|| panic!("{ip}: {page}"));
    let cell = row.split("data-label=\"Country\">").nth(1).expect("a Country cell");
    cell.split('<').next().unwrap().to_string()
}

#[tokio::test]
async fn the_lists_show_each_addresss_country_and_follow_the_database_when_it_changes() {
    let mut p = panel().await;
    let now = p.clock.now();
    let dir = tempfile::tempdir().unwrap();
    let v4 = dir.path().join("geoip");
    // 203.0.113.0/24 is 3405803776 – 3405804031.
    std::fs::write(&v4, "# IPFire Location\n3405803776,3405804031,FR\n").unwrap();
    std::fs::write(dir.path().join("geoip6"), "2001:db8::,2001:db8:ffff:ffff:ffff:ffff:ffff:ffff,DE\n")
        .unwrap();
    let geo = Geo::open(&v4).unwrap();
    p.state = p.state.clone().with_geo(geo.clone());
    p.router = router_of(&p.store, p.state.clone(), time::Duration::hours(1)).await;
    {
        let mut conn = p.store.acquire().await.unwrap();
        for ip in ["203.0.113.7", "203.0.113.8", "2001:db8::5", "198.51.100.9"] {
            store::failures::insert(&mut conn, &wrong_password_for_1001(ip, now - 60_000)).await.unwrap();
            store::offenders::record(&mut conn, ip, "PJSIP", Some("1001"), now - 60_000).await.unwrap();
            hour_ban(&mut conn, ip, now).await;
        }
    }
    let cookie = p.login().await;
    let session = [("Cookie", cookie.as_str())];
    for path in ["/offenders?q=203.0.113.0%2F24", "/bans?q=203.0.113.7", "/log?ip=203.0.113.7"] {
        let page = p.request("GET", path, &session, "").await;
        assert_eq!(country_of(&page.body, "203.0.113.7"), "FR", "{path}");
    }
    let dash = p.request("GET", "/", &session, "").await.body;
    let card = dash.split("id=\"countries\"").nth(1).expect("an attacks-by-country card");
    // Most first, each with a bar in proportion to the largest.
    let rows: Vec<&str> = card.split("<tr>").skip(2).collect();
    assert!(rows[0].contains("q=FR\">FR</a></td><td>2</td>"), "{card}");
    assert!(rows[0].contains("<rect width=\"100\""), "{card}");
    assert!(rows[1].contains("q=DE\">DE</a></td><td>1</td>"), "{card}");
    assert!(rows[1].contains("<rect width=\"50\""), "{card}");
    assert!(rows[2].contains("<td>—</td><td>1</td>") && rows[2].contains("<rect width=\"50\""), "{card}");
    // A country's offenders, one click away.
    let french = p.request("GET", "/offenders?q=fr", &session, "").await.body;
    assert_eq!(country_of(&french, "203.0.113.7"), "FR");
    assert!(!french.contains("2001:db8::5") && !french.contains("198.51.100.9"), "{french}");
    // The failed-login log by country, on screen and as evidence.
    let french = p.request("GET", "/log?country=fr", &session, "").await.body;
    assert_eq!(country_of(&french, "203.0.113.7"), "FR");
    assert!(!french.contains("2001:db8::5") && !french.contains("198.51.100.9"), "{french}");
    assert!(french.contains("/log.csv?") && french.contains("country=fr"), "the export keeps the filter");
    let csv = p.request("GET", "/log.csv?country=DE", &session, "").await.body;
    let lines: Vec<&str> = csv.lines().collect();
    assert!(lines[0].starts_with("time_utc,ip,country,"), "{csv}");
    assert_eq!(lines.len(), 2, "{csv}");
    assert!(lines[1].contains("\"2001:db8::5\",\"DE\""), "{csv}");
    let wrong = p.request("GET", "/log?country=France", &session, "").await;
    assert_eq!(wrong.status, 400);
    assert!(wrong.body.contains("not a two-letter country code like FR"), "{}", wrong.body);
    let german = p.request("GET", "/bans?q=DE", &session, "").await.body;
    assert_eq!(country_of(&german, "2001:db8::5"), "DE");
    let in_force = german.split("<h2>History</h2>").next().unwrap();
    assert!(!in_force.contains(">203.0.113.7<"), "{in_force}");
    let offenders = p.request("GET", "/offenders", &session, "").await.body;
    assert_eq!(country_of(&offenders, "2001:db8::5"), "DE");
    assert_eq!(country_of(&offenders, "198.51.100.9"), "—", "no range: no country");

    // The package is updated: the range moves to another country.
    std::fs::write(&v4, "# IPFire Location, updated\n3405803776,3405804031,NL\n").unwrap();
    assert!(geo.reload_if_changed().unwrap(), "the change is noticed");
    assert!(!geo.reload_if_changed().unwrap(), "and read once");
    let page = p.request("GET", "/bans?q=203.0.113.7", &session, "").await;
    assert_eq!(country_of(&page.body, "203.0.113.7"), "NL");

    // A broken update leaves the database in use as it was.
    std::fs::write(&v4, "not a geoip file\n").unwrap();
    assert!(geo.reload_if_changed().is_err());
    assert_eq!(geo.shown("203.0.113.7"), "NL");
}

#[tokio::test]
async fn without_a_country_database_every_country_shows_as_a_dash() {
    let p = panel().await;
    let now = p.clock.now();
    {
        let mut conn = p.store.acquire().await.unwrap();
        store::failures::insert(&mut conn, &wrong_password_for_1001("203.0.113.7", now - 60_000))
            .await
            .unwrap();
        store::offenders::record(&mut conn, "203.0.113.7", "PJSIP", Some("1001"), now - 60_000)
            .await
            .unwrap();
    }
    let cookie = p.login().await;
    let page = p.request("GET", "/offenders", &[("Cookie", cookie.as_str())], "").await;
    assert_eq!(page.status, 200);
    assert_eq!(country_of(&page.body, "203.0.113.7"), "—");
    let dash = p.request("GET", "/", &[("Cookie", cookie.as_str())], "").await;
    assert!(!dash.body.contains("id=\"countries\""), "no country card without a database");
    let log = p.request("GET", "/log", &[("Cookie", cookie.as_str())], "").await.body;
    assert!(!log.contains("name=\"country\""), "no country filter without a database");
    let asked = p.request("GET", "/log?country=FR", &[("Cookie", cookie.as_str())], "").await;
    assert_eq!(asked.status, 400);
    assert!(asked.body.contains("no country database is loaded"), "{}", asked.body);
}

/// A database of two countries: 203.0.113.0/24 is FR, 198.51.100.0/24 DE.
fn two_countries(dir: &std::path::Path) -> Geo {
    let v4 = dir.join("geoip");
    std::fs::write(&v4, "3325256704,3325256959,DE\n3405803776,3405804031,FR\n").unwrap();
    std::fs::write(dir.join("geoip6"), "").unwrap();
    Geo::open(&v4).unwrap()
}

#[tokio::test]
async fn country_rules_are_previewed_checked_and_a_panel_rule_that_drops_the_admin_needs_confirming() {
    let mut p = panel().await;
    let dir = tempfile::tempdir().unwrap();
    p.state = p.state.clone().with_geo(two_countries(dir.path()));
    p.router = router_of(&p.store, p.state.clone(), time::Duration::hours(1)).await;
    let s = p.login().await;
    let headers = [("Cookie", s.as_str()), ("Sec-Fetch-Site", "same-origin")];
    let rules = async || {
        let mut conn = p.store.acquire().await.unwrap();
        store::settings::country_rules(&mut conn).await.unwrap()
    };

    let preview = p.request("POST", "/countries/preview", &headers, "service=sip&only=de&deny=").await;
    assert!(
        preview.body.contains(
            "Saving drops 1 range of 1 country (256 IPv4 addresses) and every address the database places in no country."
        ),
        "{}",
        preview.body
    );
    let r = p.request("POST", "/countries", &headers, "service=sip&only=UK&deny=").await;
    assert_eq!(r.status, 400);
    assert!(r.body.contains("no address in UK (the United Kingdom is GB)"), "{}", r.body);
    assert!(r.body.contains("value=\"UK\""), "the form keeps what was typed");
    assert!(rules().await.is_empty(), "refused: nothing saved");

    // From France, a panel only for Germany would shut the admin out.
    let r =
        p.request_from("203.0.113.9", "POST", "/countries", &headers, "service=panel&only=DE&deny=").await;
    assert_eq!(r.status, 409, "{}", r.body);
    assert!(r.body.contains("Your address 203.0.113.9 (FR) would be dropped from the panel"), "{}", r.body);
    assert!(rules().await.is_empty());
    let r = p
        .request_from("203.0.113.9", "POST", "/countries", &headers, "service=panel&only=DE&deny=&confirm=on")
        .await;
    assert_eq!(r.status, 303);
    assert_eq!(rules().await.of(ClosableService::Panel).describe(), "only DE");
    let page = p.request("GET", "/countries", &[("Cookie", s.as_str())], "").await.body;
    assert!(page.contains("id=\"now-panel\">only DE") && page.contains("id=\"pending\""), "{page}");
    // Nobody keeps it: put back after 60 s, with its audit rows.
    p.clock.advance(61_000);
    sipwarden::lockout::revert_when_due(&p.store, p.clock.now()).await.unwrap();
    assert!(rules().await.is_empty(), "reverted");
    let mut conn = p.store.acquire().await.unwrap();
    let audit = store::audit::recent(&mut conn, 10).await.unwrap();
    assert!(audit.iter().any(|a| a.action == "country rules" && a.detail == "panel: only DE"));
    assert!(audit.iter().any(|a| a.action == "reverted" && a.detail.contains("countries for panel")));

    // Taking a rule away only admits: nothing to keep.
    let r = p.request("POST", "/countries", &headers, "service=sip&only=&deny=fr").await;
    assert_eq!(r.status, 303);
    sipwarden::lockout::keep(&mut conn).await.unwrap();
    let r = p.request("POST", "/countries", &headers, "service=sip&only=&deny=").await;
    assert_eq!(r.status, 303);
    assert!(sipwarden::lockout::pending(&mut conn).await.unwrap().is_none());
}

/// Each service with rules says what they dropped on this PBX since counting began,
/// split by list; a service without rules says nothing.
#[tokio::test]
async fn each_service_says_what_its_country_rules_dropped() {
    use sipwarden::enforcer::drops::CountryDrops;
    use sipwarden::firewall::countries::Dropped;
    let mut p = panel().await;
    let dir = tempfile::tempdir().unwrap();
    let kernel = std::sync::Arc::new(sipwarden::firewall::RecordingBackend::new("recording"));
    let drops = std::sync::Arc::new(CountryDrops::new(kernel.clone(), std::sync::Arc::new(p.clock.clone())));
    p.state = p.state.clone().with_geo(two_countries(dir.path())).with_country_drops(drops);
    p.router = router_of(&p.store, p.state.clone(), time::Duration::hours(1)).await;
    let s = p.login().await;
    let headers = [("Cookie", s.as_str()), ("Sec-Fetch-Site", "same-origin")];
    let r = p.request("POST", "/countries", &headers, "service=sip&only=DE&deny=FR").await;
    assert_eq!(r.status, 303, "{}", r.body);
    // What the table held before counting began is not counted.
    kernel.count_drops(Dropped { service: ClosableService::Sip, only: true, packets: 99 });
    let page = p.request("GET", "/countries", &[("Cookie", s.as_str())], "").await.body;
    assert!(page.contains("id=\"dropped-sip\">nothing dropped since"), "{page}");
    for packets in [1200, 34_000] {
        kernel.count_drops(Dropped { service: ClosableService::Sip, only: true, packets });
    }
    kernel.count_drops(Dropped { service: ClosableService::Sip, only: false, packets: 4 });
    let page = p.request("GET", "/countries", &[("Cookie", s.as_str())], "").await.body;
    let line = page.split("id=\"dropped-sip\">").nth(1).unwrap().split('<').next().unwrap();
    assert!(line.starts_with("35,204 packets dropped since "), "{line}");
    assert!(line.ends_with("(35,200 from other countries, 4 from denied ones)"), "{line}");
    assert!(!page.contains("id=\"dropped-iax2\""), "no rules for IAX2, nothing said");
}

#[tokio::test]
async fn without_a_database_country_rules_cannot_be_set() {
    let p = panel().await;
    let s = p.login().await;
    let page = p.request("GET", "/countries", &[("Cookie", s.as_str())], "").await.body;
    assert!(page.contains("none configured"), "{page}");
    let headers = [("Cookie", s.as_str()), ("Sec-Fetch-Site", "same-origin")];
    let r = p.request("POST", "/countries", &headers, "service=sip&only=DE&deny=").await;
    assert_eq!(r.status, 400);
    assert!(r.body.contains("No country database is loaded"), "{}", r.body);
}
