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

/// The commands of each transaction, as one line each ("flush set ban4", "add set
/// ban4 198.51.100.9 203.0.113.7", "delete element forever4 192.0.2.44").
fn steps(transactions: &[nftables::schema::Nftables<'_>]) -> Vec<Vec<String>> {
    transactions
        .iter()
        .map(|t| {
            let v: serde_json::Value = serde_json::from_str(&to_json(t)).unwrap();
            v["nftables"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| {
                    let (verb, body) = c.as_object().unwrap().iter().next().unwrap();
                    let (kind, obj) = body.as_object().unwrap().iter().next().unwrap();
                    let mut line = format!("{verb} {kind} {}", obj["name"].as_str().unwrap());
                    for e in obj["elem"].as_array().into_iter().flatten() {
                        let val = e.pointer("/elem/val").unwrap_or(e);
                        line.push(' ');
                        line.push_str(&val.to_string().replace('"', ""));
                    }
                    line
                })
                .collect()
        })
        .collect()
}

#[test]
fn a_release_empties_the_sets_it_touches_and_puts_back_the_rest_with_the_new_bans() {
    let kept = KernelBan::address("198.51.100.9".parse().unwrap(), Some(600));
    let forever = KernelBan::address("2001:db8::99".parse().unwrap(), None);
    let new = KernelBan::address("203.0.113.7".parse().unwrap(), Some(3600));
    let released: ipnet::IpNet = "192.0.2.44/32".parse().unwrap();
    let desired = [kept, forever, new];
    assert_eq!(
        steps(&ban_changes(&[new], &[released], &desired)),
        [vec![
            "flush set ban4".to_string(),
            "add set ban4 198.51.100.9 203.0.113.7".into(),
            "flush set forever4".into(),
        ]],
        "one transaction, no `delete element`; forever6 is not touched"
    );
    // An address released and banned again in the same pass (a timed ban made one
    // until released): it leaves the one set and is in the other.
    let again = KernelBan::address("192.0.2.44".parse().unwrap(), None);
    assert_eq!(
        steps(&ban_changes(&[again], &[released], &[kept, again])),
        [vec![
            "flush set ban4".to_string(),
            "add set ban4 198.51.100.9".into(),
            "flush set forever4".into(),
            "add set forever4 192.0.2.44".into(),
        ]]
    );
    // Nothing to release: the new bans alone; nothing at all: no transaction.
    assert_eq!(steps(&ban_changes(&[new], &[], &desired)), [vec!["add set ban4 203.0.113.7".to_string()]]);
    assert!(ban_changes(&[], &[], &desired).is_empty());
}

/// Above `REFILL_LIMIT` bans in a set, a release deletes its element: after the bans, in
/// a transaction of its own, except an address banned again, deleted before its ban.
#[test]
fn a_set_too_large_to_put_back_takes_delete_element_after_the_bans() {
    use sipwarden::firewall::render::REFILL_LIMIT;
    let many: Vec<KernelBan> = (0..=REFILL_LIMIT as u32)
        .map(|i| KernelBan::address(std::net::Ipv4Addr::from(0x0A00_0000 + i).into(), Some(600)))
        .collect();
    let again = KernelBan::address("203.0.113.7".parse().unwrap(), Some(60));
    let new = KernelBan::address("198.51.100.1".parse().unwrap(), Some(60));
    let released: ipnet::IpNet = "192.0.2.44/32".parse().unwrap();
    let mut desired = many.clone();
    desired.extend([again, new]);
    let steps = steps(&ban_changes(&[again, new], &[released, again.net], &desired));
    assert_eq!(steps.len(), 2, "{steps:?}");
    let (bans, releases) = (&steps[0], &steps[1]);
    assert!(!bans.iter().any(|c| c.starts_with("flush set ban4")), "{bans:?}");
    let out = bans.iter().position(|c| c == "delete element ban4 203.0.113.7").unwrap();
    let back = bans.iter().position(|c| c == "add set ban4 203.0.113.7 198.51.100.1").unwrap();
    assert!(out < back, "the old ban of 203.0.113.7 is deleted before the new one is added: {bans:?}");
    // forever4 holds nothing: emptied rather than deleted from.
    assert!(bans.contains(&"flush set forever4".to_string()), "{bans:?}");
    assert!(releases.contains(&"delete element ban4 192.0.2.44".to_string()), "{releases:?}");
    assert!(
        !releases.iter().any(|c| c.contains("203.0.113.7") || c.contains("198.51.100.1")),
        "{releases:?}"
    );
}
