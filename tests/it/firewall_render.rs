//! Golden files for the nftables JSON sipwarden sends. Regenerate on purpose with
//! `UPDATE_GOLDEN=1 cargo test --test it firewall_render`, then read the diff.

use sipwarden::firewall::render::{add_bans, ban_changes, full_ruleset, remove_bans, to_json};
use sipwarden::firewall::{Access, KernelBan};

use crate::common::fixture;

/// A set's flags are a hash set in the nftables model: their order is the only thing
/// that may differ between two runs, so they are compared sorted.
fn sorted_flags(json: &str) -> String {
    fn walk(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(map) => {
                for (key, value) in map.iter_mut() {
                    if let (true, serde_json::Value::Array(items)) = (key == "flags", &mut *value) {
                        items.sort_by_key(|i| i.to_string());
                    }
                    walk(value);
                }
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(walk),
            _ => {}
        }
    }
    let mut v: serde_json::Value = serde_json::from_str(json).unwrap_or(serde_json::Value::Null);
    walk(&mut v);
    serde_json::to_string_pretty(&v).unwrap()
}

fn golden(name: &str, actual: &str) {
    let actual = &sorted_flags(actual);
    let path = fixture("../golden").join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, actual).unwrap();
    }
    let expected = sorted_flags(&std::fs::read_to_string(&path).unwrap_or_default());
    assert_eq!(*actual, expected, "{} differs; UPDATE_GOLDEN=1 regenerates it", path.display());
}

fn bans() -> Vec<KernelBan> {
    vec![
        KernelBan::address("203.0.113.7".parse().unwrap(), Some(3600)),
        KernelBan::address("2001:db8::66".parse().unwrap(), Some(60)),
        KernelBan::address("198.51.100.9".parse().unwrap(), None),
        KernelBan::address("2001:db8::99".parse().unwrap(), None),
        KernelBan { net: "2001:db8:5:6::/64".parse().unwrap(), timeout_secs: Some(86_400) },
        KernelBan { net: "2001:db8:5:7::/64".parse().unwrap(), timeout_secs: None },
    ]
}

#[test]
fn full_table_with_trusted_networks_and_every_kind_of_ban() {
    let trusted: Vec<ipnet::IpNet> =
        vec!["192.168.1.0/24".parse().unwrap(), "127.0.0.0/8".parse().unwrap(), "fd00::/8".parse().unwrap()];
    let owner = "/var/lib/sipwarden/sipwarden.db".to_string();
    let open = Access { trusted: trusted.clone(), owner: owner.clone(), ..Access::default() };
    golden("ruleset-full.json", &to_json(&full_ruleset(&open, &bans())));
    let mut allowed = trusted.clone();
    allowed.extend([
        "10.20.0.0/16".parse::<ipnet::IpNet>().unwrap(),
        "203.0.113.10/32".parse().unwrap(),
        "2001:db8:77::/48".parse().unwrap(),
    ]);
    let closed = Access {
        trusted,
        allowed,
        deny: vec!["198.51.100.0/24".parse().unwrap(), "2001:db8:bad::/48".parse().unwrap()],
        closed_tcp: vec![5038, 5060, 5061, 8088],
        closed_udp: vec![4569, 5060, 5061],
        owner,
    };
    golden("ruleset-closed.json", &to_json(&full_ruleset(&closed, &[])));
}

#[test]
fn incremental_add_and_idempotent_release() {
    golden("ruleset-add.json", &to_json(&add_bans(&bans()[..2])));
    golden("ruleset-release.json", &to_json(&remove_bans(&["203.0.113.7/32".parse().unwrap()])));
    golden("ruleset-release-prefix.json", &to_json(&remove_bans(&["2001:db8:5:6::/64".parse().unwrap()])));
}

#[test]
fn bans_go_in_before_releases_and_a_release_of_an_address_banned_again_goes_before_its_ban() {
    let again = KernelBan::address("203.0.113.7".parse().unwrap(), None);
    let new = KernelBan::address("198.51.100.1".parse().unwrap(), Some(60));
    let released: ipnet::IpNet = "192.0.2.44/32".parse().unwrap();
    let steps: Vec<String> = ban_changes(&[again, new], &[released, again.net])
        .iter()
        .map(|t| serde_json::to_string(t).unwrap())
        .collect();
    assert_eq!(steps.len(), 2, "{steps:?}");
    let (bans, releases) = (&steps[0], &steps[1]);
    assert!(bans.contains("198.51.100.1") && !bans.contains("192.0.2.44"), "{bans}");
    let (out, back) = (bans.find(r#""delete""#).unwrap(), bans.rfind("203.0.113.7").unwrap());
    assert!(out < back, "the old ban of 203.0.113.7 is deleted before the new one is added: {bans}");
    assert!(releases.contains(r#""delete""#) && releases.contains("192.0.2.44"), "{releases}");
    assert!(!releases.contains("203.0.113.7") && !releases.contains("198.51.100.1"), "{releases}");
    // Nothing to release: one transaction; nothing at all: none.
    assert_eq!(ban_changes(&[new], &[]).len(), 1);
    assert!(ban_changes(&[], &[]).is_empty());
    for t in ban_changes(&[new], &[]) {
        assert!(!serde_json::to_string(&t).unwrap().contains(r#""element""#), "bans use `add set`");
    }
}
