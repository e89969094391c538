//! Country rules in the real kernel: addresses of real countries (from Debian's
//! tor-geoipdb) on the outside end of a veth pair, the PBX's SIP port on the other.

use std::net::{Ipv4Addr, Ipv6Addr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sipwarden::actions::{Actor, countries, networks};
use sipwarden::clock::{Clock, SystemClock};
use sipwarden::domain::{ClosableService, TrustedNetworks};
use sipwarden::geo::Geo;
use sipwarden::geo::rules::ServiceCountries;

use crate::netns::{Pair, in_netns, run, udp_from};

const ADMIN: Actor<'static> = Actor { name: "test", client_ip: None };

/// Two addresses inside wide ranges of `country` (IPv4 and IPv6), from the file itself.
fn addresses_of(geo: &std::path::Path, country: &str, nth: usize) -> (String, String) {
    let wide = |text: &str, parse: &dyn Fn(&str) -> Option<u128>, min: u128| {
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| {
                let f: Vec<&str> = l.split(',').collect();
                let (a, b) = (parse(f.first()?)?, parse(f.get(1)?)?);
                (f.get(2)?.trim() == country && b - a >= min).then_some(a + 1)
            })
            .nth(nth)
            .unwrap_or_else(|| panic!("no wide range of {country}"))
    };
    let v4 = std::fs::read_to_string(geo).unwrap();
    let v6 = std::fs::read_to_string(geo.with_file_name("geoip6")).unwrap();
    let a4 = wide(&v4, &|s| s.parse::<u32>().ok().map(u128::from), 255);
    let a6 = wide(&v6, &|s| s.parse::<Ipv6Addr>().ok().map(u128::from), 1 << 64);
    (Ipv4Addr::from(a4 as u32).to_string(), Ipv6Addr::from(a6).to_string())
}

/// Puts `v4`/`v6` on the outside end and routes them back from the PBX.
fn attach(pair: &Pair, (v4, v6): &(String, String)) {
    run(&["ip", "-n", &pair.outside, "addr", "add", &format!("{v4}/32"), "dev", "vb"]);
    run(&["ip", "-n", &pair.outside, "addr", "add", &format!("{v6}/128"), "dev", "vb", "nodad"]);
    run(&["ip", "-n", &pair.pbx, "route", "add", &format!("{v4}/32"), "dev", "va"]);
    run(&["ip", "-n", &pair.pbx, "-6", "route", "add", &format!("{v6}/128"), "dev", "va"]);
}

/// The comment of the country table's fingerprint element.
fn stamp(pair: &Pair) -> String {
    let json: serde_json::Value =
        serde_json::from_str(&pair.nft(&["-j", "list", "set", "inet", "sipwarden_countries", "fingerprint"]))
            .unwrap();
    let set = json["nftables"].as_array().unwrap().iter().find(|o| o.get("set").is_some()).unwrap();
    set["set"]["elem"][0]["elem"]["comment"].as_str().unwrap().to_string()
}

/// The country table's sets of ranges, by name (`-t`: without their elements).
fn range_sets(pair: &Pair) -> Vec<String> {
    let json: serde_json::Value =
        serde_json::from_str(&pair.nft(&["-t", "-j", "list", "table", "inet", "sipwarden_countries"]))
            .unwrap();
    let mut names: Vec<String> = json["nftables"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|o| o["set"]["name"].as_str())
        .filter(|n| n.starts_with("only") || n.starts_with("deny"))
        .map(str::to_string)
        .collect();
    names.sort();
    names
}

struct Sip {
    udp4: UdpSocket,
    udp6: UdpSocket,
    iax4: UdpSocket,
}

/// Whether a SIP packet from each family of `from` arrives: [IPv4, IPv6].
fn sip_from(pair: &Pair, sip: &Sip, from: &(String, String)) -> [bool; 2] {
    [
        udp_from(pair, &sip.udp4, &from.0, "10.77.0.1:5060"),
        udp_from(pair, &sip.udp6, &format!("[{}]", from.1), "[fd77::1]:5060"),
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn only_the_allowed_countries_reach_sip_and_trusted_addresses_pass_from_anywhere() {
    if !crate::netns::can_run() {
        return;
    }
    let Some(path) = crate::countries::debian_geoip() else {
        crate::common::runnable(
            "the country firewall test",
            &[("tor-geoipdb (tests/run-all.sh unpacks it)", false)],
        );
        return;
    };
    let pair = Pair::new();
    let (de, cn, cn_trusted, fr) = (
        addresses_of(&path, "DE", 3),
        addresses_of(&path, "CN", 3),
        addresses_of(&path, "CN", 7),
        addresses_of(&path, "FR", 3),
    );
    for a in [&de, &cn, &cn_trusted, &fr] {
        attach(&pair, a);
    }
    let sip = in_netns(&pair.pbx, || Sip {
        udp4: UdpSocket::bind("10.77.0.1:5060").unwrap(),
        udp6: UdpSocket::bind("[fd77::1]:5060").unwrap(),
        iax4: UdpSocket::bind("10.77.0.1:4569").unwrap(),
    });
    let dir = tempfile::tempdir().unwrap();
    let geo = Geo::open(&path).unwrap();
    let (store, enforcer) = crate::netns::enforcer_in(&pair, &dir).await;
    let enforcer = enforcer.with_geo(geo.clone());
    let now = SystemClock.now();
    let only_de = ServiceCountries::parse("DE", "").unwrap();
    let none = TrustedNetworks::default();
    countries::set(&store, &ADMIN, &none, &geo, ClosableService::Sip, only_de, false, now).await.unwrap();
    networks::trust(&store, &ADMIN, format!("{}/32", cn_trusted.0).parse().unwrap(), "office abroad", now)
        .await
        .unwrap();
    networks::trust(&store, &ADMIN, format!("{}/128", cn_trusted.1).parse().unwrap(), "office abroad", now)
        .await
        .unwrap();
    enforcer.reconcile_once().await.unwrap();

    assert_eq!(sip_from(&pair, &sip, &de), [true, true], "an allowed country reaches SIP");
    assert_eq!(sip_from(&pair, &sip, &cn), [false, false], "another country is dropped");
    assert_eq!(
        sip_from(&pair, &sip, &cn_trusted),
        [true, true],
        "a trusted address passes whatever its country"
    );
    assert!(udp_from(&pair, &sip.iax4, &cn.0, "10.77.0.1:4569"), "a service without rules stays open");
    let private = ("10.77.0.2".to_string(), "fd77::2".to_string());
    assert_eq!(sip_from(&pair, &sip, &private), [true, true], "private addresses have no country: they pass");
    // Nothing changed: the next pass leaves the table as it is (its fingerprint matches).
    let before = stamp(&pair);
    assert!(before.ends_with("; sets a"), "{before}");
    enforcer.reconcile_once().await.unwrap();
    assert_eq!(stamp(&pair), before, "not rebuilt");
    // Counting began with that pass: two packets from China, both counted.
    assert_eq!(sip_from(&pair, &sip, &cn), [false, false]);
    let drops = enforcer.country_drops();
    assert_eq!(drops.take().unwrap().of(ClosableService::Sip, true), 2, "dropped by the only-list");

    // Never CN instead: France comes in, China stays out.
    let deny_cn = ServiceCountries::parse("", "CN").unwrap();
    countries::set(&store, &ADMIN, &none, &geo, ClosableService::Sip, deny_cn, false, now).await.unwrap();
    enforcer.reconcile_once().await.unwrap();
    assert!(stamp(&pair).ends_with("; sets b"), "rebuilt for the new rules, in the other sets");
    assert_eq!(range_sets(&pair), ["deny4_sip_b", "deny6_sip_b"], "the allow-list's sets are gone");
    assert_eq!(sip_from(&pair, &sip, &fr), [true, true]);
    assert_eq!(sip_from(&pair, &sip, &cn), [false, false]);
    assert_eq!(sip_from(&pair, &sip, &cn_trusted), [true, true]);
    let tally = drops.take().unwrap();
    assert_eq!(
        (tally.of(ClosableService::Sip, true), tally.of(ClosableService::Sip, false)),
        (2, 2),
        "the never-list counts its own drops; the sums are kept across the rebuild"
    );

    // No rules left: the table goes, everyone reaches SIP again.
    countries::set(
        &store,
        &ADMIN,
        &none,
        &geo,
        ClosableService::Sip,
        ServiceCountries::default(),
        false,
        now,
    )
    .await
    .unwrap();
    enforcer.reconcile_once().await.unwrap();
    let tables = pair.nft(&["list", "tables"]);
    assert!(!tables.contains("sipwarden_countries"), "{tables}");
    assert_eq!(sip_from(&pair, &sip, &cn), [true, true]);
}

/// Sends from `from` to the PBX's SIP port, one packet a millisecond, until `stop`;
/// returns how many it sent.
fn stream_from(pair: &Pair, from: String, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<u64> {
    let path = format!("/run/netns/{}", pair.outside);
    std::thread::spawn(move || {
        let fd = std::fs::File::open(path).unwrap();
        nix::sched::setns(&fd, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        let socket = UdpSocket::bind(format!("{from}:0")).unwrap();
        let mut sent = 0u64;
        while !stop.load(Ordering::SeqCst) {
            socket.send_to(from.as_bytes(), "10.77.0.1:5060").unwrap();
            sent += 1;
            std::thread::sleep(Duration::from_millis(1));
        }
        sent
    })
}

async fn sip_rules(store: &sipwarden::store::Store, geo: &Geo, only: &str) {
    let rules = ServiceCountries::parse(only, "").unwrap();
    let none = TrustedNetworks::default();
    countries::set(store, &ADMIN, &none, geo, ClosableService::Sip, rules, false, SystemClock.now())
        .await
        .unwrap();
}

type Addresses = (String, String);

/// An enforcer of `pair`'s PBX with the database at `path`, its kernel holding "SIP
/// only from DE".
async fn only_germany(
    pair: &Pair,
    dir: &tempfile::TempDir,
    path: &std::path::Path,
) -> (sipwarden::store::Store, Geo, sipwarden::enforcer::Enforcer) {
    let geo = Geo::open(path).unwrap();
    let (store, enforcer) = crate::netns::enforcer_in(pair, dir).await;
    let enforcer = enforcer.with_geo(geo.clone());
    sip_rules(&store, &geo, "DE").await;
    enforcer.reconcile_once().await.unwrap();
    (store, geo, enforcer)
}

/// A namespace pair with a German and a Chinese address (each IPv4 and IPv6) outside;
/// `None` when the test cannot run here (only outside CI).
fn germany_and_china(nth: usize) -> Option<(Pair, std::path::PathBuf, Addresses, Addresses)> {
    if !crate::netns::can_run() {
        return None;
    }
    let Some(path) = crate::countries::debian_geoip() else {
        crate::common::runnable("the country firewall test", &[("tor-geoipdb", false)]);
        return None;
    };
    let pair = Pair::new();
    let (de, cn) = (addresses_of(&path, "DE", nth), addresses_of(&path, "CN", nth));
    attach(&pair, &de);
    attach(&pair, &cn);
    Some((pair, path, de, cn))
}

/// Packets from a dropped and an allowed country stream in while the table is
/// replaced again and again.
#[tokio::test(flavor = "multi_thread")]
async fn replacing_the_table_lets_no_dropped_packet_through_and_loses_no_allowed_one() {
    let Some((pair, path, de, cn)) = germany_and_china(5) else {
        return;
    };
    let rx = in_netns(&pair.pbx, || UdpSocket::bind("10.77.0.1:5060").unwrap());
    rx.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (store, geo, enforcer) = only_germany(&pair, &dir, &path).await;

    let (de4, cn4) = (de.0.clone(), cn.0.clone());
    let received = std::thread::spawn(move || {
        let (mut from_de, mut from_cn) = (0u64, 0u64);
        let mut buf = [0u8; 64];
        while let Ok((n, src)) = rx.recv_from(&mut buf) {
            assert_eq!(buf[..n], *src.ip().to_string().as_bytes());
            match src.ip().to_string() {
                ip if ip == de4 => from_de += 1,
                ip if ip == cn4 => from_cn += 1,
                _ => {}
            }
        }
        (from_de, from_cn)
    });
    let stop = Arc::new(AtomicBool::new(false));
    let senders =
        [stream_from(&pair, de.0.clone(), stop.clone()), stream_from(&pair, cn.0.clone(), stop.clone())];
    // Every replacement keeps DE in and CN out; the sets in use alternate.
    let mut stamps = Vec::new();
    for only in ["DE FR", "DE", "DE AT", "DE"] {
        sip_rules(&store, &geo, only).await;
        enforcer.reconcile_once().await.unwrap();
        stamps.push(stamp(&pair));
    }
    stop.store(true, Ordering::SeqCst);
    let [sent_de, sent_cn] = senders.map(|s| s.join().unwrap());
    let (from_de, from_cn) = received.join().unwrap();
    assert!(sent_de > 100 && sent_cn > 100, "{sent_de} {sent_cn}");
    assert_eq!(from_cn, 0, "a packet of the dropped country passed during a replacement");
    assert_eq!(from_de, sent_de, "a packet of the allowed country was lost during a replacement");
    let generations: Vec<&str> = stamps.iter().map(|s| &s[s.len() - 1..]).collect();
    assert_eq!(generations, ["b", "a", "b", "a"], "{stamps:?}");
    assert_eq!(range_sets(&pair), ["only4_sip_a", "only6_sip_a"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_table_of_the_older_layout_a_load_cut_short_or_a_hand_edit_is_replaced_cleanly() {
    let Some((pair, path, de, cn)) = germany_and_china(4) else {
        return;
    };
    let sip = in_netns(&pair.pbx, || Sip {
        udp4: UdpSocket::bind("10.77.0.1:5060").unwrap(),
        udp6: UdpSocket::bind("[fd77::1]:5060").unwrap(),
        iax4: UdpSocket::bind("10.77.0.1:4569").unwrap(),
    });
    // As the version before sets had generations left it (one unsuffixed set, a stamp
    // without generation), with a set of the first generation that a load cut short left.
    let older = "table inet sipwarden_countries {
        set fingerprint { type ipv4_addr; elements = { 0.0.0.1 comment \"1 ranges, 00\" } }
        set ports_sip { type inet_proto . inet_service; elements = { udp . 5060 } }
        set only4_sip { type ipv4_addr; flags interval; elements = { 192.0.2.0/24 } }
        set only6_sip_a { type ipv6_addr; flags interval; elements = { 2001:db8::/32 } }
        chain by_country {
            type filter hook prerouting priority -299; policy accept;
            meta l4proto . th dport @ports_sip ip saddr != @only4_sip drop
        }
    }";
    load_text(&pair, older);
    assert_eq!(sip_from(&pair, &sip, &de), [false, true], "the older table drops DE's IPv4");
    let dir = tempfile::tempdir().unwrap();
    let (store, geo, enforcer) = only_germany(&pair, &dir, &path).await;
    assert_eq!(range_sets(&pair), ["only4_sip_a", "only6_sip_a"], "the older set is gone");
    let six = pair.nft(&["list", "set", "inet", "sipwarden_countries", "only6_sip_a"]);
    assert!(!six.contains("2001:db8::/32"), "the cut-short load's range was cleared: {six}");
    assert_eq!(sip_from(&pair, &sip, &de), [true, true]);
    assert_eq!(sip_from(&pair, &sip, &cn), [false, false]);

    // By hand: a rule using a set of the generation the next load will fill.
    load_text(
        &pair,
        "table inet sipwarden_countries {
            set only4_sip_b { type ipv4_addr; flags interval; elements = { 198.51.100.0/24 } }
            chain by_country { ip saddr @only4_sip_b counter; }
        }",
    );
    sip_rules(&store, &geo, "DE FR").await;
    enforcer.reconcile_once().await.unwrap();
    assert!(stamp(&pair).ends_with("; sets b"));
    assert_eq!(range_sets(&pair), ["only4_sip_b", "only6_sip_b"]);
    assert_eq!(sip_from(&pair, &sip, &de), [true, true]);
    assert_eq!(sip_from(&pair, &sip, &cn), [false, false]);
}

fn load_text(pair: &Pair, ruleset: &str) {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), ruleset).unwrap();
    run(&["ip", "netns", "exec", &pair.pbx, "nft", "-f", file.path().to_str().unwrap()]);
}
