//! Country rules in the real kernel: addresses of real countries (from Debian's
//! tor-geoipdb) on the outside end of a veth pair, the PBX's SIP port on the other.

use std::net::{Ipv4Addr, Ipv6Addr, UdpSocket};

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
    // A table's handle is new each time it is made.
    let handle = || {
        let json: serde_json::Value = serde_json::from_str(&pair.nft(&["-j", "list", "tables"])).unwrap();
        let tables = json["nftables"].as_array().unwrap().clone();
        tables.iter().find(|t| t["table"]["name"] == "sipwarden_countries").unwrap()["table"]["handle"]
            .as_u64()
            .unwrap()
    };
    let before = handle();
    enforcer.reconcile_once().await.unwrap();
    assert_eq!(handle(), before, "not rebuilt");

    // Never CN instead: France comes in, China stays out.
    let deny_cn = ServiceCountries::parse("", "CN").unwrap();
    countries::set(&store, &ADMIN, &none, &geo, ClosableService::Sip, deny_cn, false, now).await.unwrap();
    enforcer.reconcile_once().await.unwrap();
    assert_ne!(handle(), before, "rebuilt for the new rules");
    assert_eq!(sip_from(&pair, &sip, &fr), [true, true]);
    assert_eq!(sip_from(&pair, &sip, &cn), [false, false]);
    assert_eq!(sip_from(&pair, &sip, &cn_trusted), [true, true]);

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
