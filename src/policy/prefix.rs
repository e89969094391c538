//! IPv6 prefixes: an attacker with a /64 has 2^64 addresses and two guesses with
//! each. When enough addresses of one prefix were banned within the day, the prefix
//! is banned as a whole.

use std::net::Ipv6Addr;

use ipnet::{IpNet, Ipv6Net};

use crate::domain::UnixMs;

/// When a prefix is banned: `after` addresses of one `/len` banned within `within_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrefixRule {
    pub len: u8,
    /// 0 turns escalation off.
    pub after: u32,
    pub within_ms: UnixMs,
}

impl Default for PrefixRule {
    fn default() -> Self {
        PrefixRule { len: 64, after: 3, within_ms: crate::domain::DAY_MS }
    }
}

/// An IPv6 ban stored or decided: an address or a prefix, when it was created, and
/// whether it is in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct V6Ban {
    pub net: Ipv6Net,
    pub created_at: UnixMs,
    pub active: bool,
}

/// The prefix to ban now that `address` was banned at `at`, with its member addresses,
/// if the rule asks for one. `spared`: networks never banned by escalation (trusted,
/// extension and trunk networks); a prefix that overlaps one is left alone.
pub fn prefix_to_ban(
    rule: &PrefixRule,
    bans: &[V6Ban],
    address: Ipv6Addr,
    at: UnixMs,
    spared: &[IpNet],
) -> Option<(Ipv6Net, Vec<Ipv6Addr>)> {
    if rule.after == 0 || rule.len >= 128 {
        return None;
    }
    let prefix = Ipv6Net::new(address, rule.len).ok()?.trunc();
    let covered = bans.iter().any(|b| b.active && b.net.prefix_len() <= rule.len && b.net.contains(&prefix));
    if covered {
        return None;
    }
    let mut members: Vec<Ipv6Addr> = bans
        .iter()
        .filter(|b| {
            b.net.prefix_len() == 128 && b.created_at > at - rule.within_ms && prefix.contains(&b.net)
        })
        .map(|b| b.net.addr())
        .chain([address])
        .collect();
    members.sort_unstable();
    members.dedup();
    if (members.len() as u32) < rule.after {
        return None;
    }
    let whole = IpNet::V6(prefix);
    if spared.iter().any(|n| n.contains(&whole) || whole.contains(n)) {
        return None;
    }
    Some((prefix, members))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ban(net: &str, created_at: UnixMs, active: bool) -> V6Ban {
        let net: IpNet = if net.contains('/') {
            net.parse().unwrap()
        } else {
            IpNet::from(net.parse::<std::net::IpAddr>().unwrap())
        };
        let IpNet::V6(net) = net else { panic!() };
        V6Ban { net, created_at, active }
    }

    #[test]
    fn the_third_address_of_a_prefix_within_the_day_bans_the_prefix() {
        let rule = PrefixRule::default();
        let day = crate::domain::DAY_MS;
        let bans = [
            ban("2001:db8:1:2::a", 10, true),
            ban("2001:db8:1:2::b", 20, true),
            ban("2001:db8:9::1", 25, true),
        ];
        let got = prefix_to_ban(&rule, &bans, "2001:db8:1:2::c".parse().unwrap(), 30, &[]).unwrap();
        assert_eq!(got.0.to_string(), "2001:db8:1:2::/64");
        assert_eq!(got.1.len(), 3);
        // Two are not enough; old bans do not count; the same address twice is one.
        assert!(prefix_to_ban(&rule, &bans[..1], "2001:db8:1:2::c".parse().unwrap(), 30, &[]).is_none());
        assert!(prefix_to_ban(&rule, &bans, "2001:db8:1:2::c".parse().unwrap(), 15 + day, &[]).is_none());
        assert!(prefix_to_ban(&rule, &bans, "2001:db8:1:2::b".parse().unwrap(), 30, &[]).is_none());
    }

    #[test]
    fn a_banned_prefix_is_not_banned_again_and_spared_networks_are_never_inside_one() {
        let rule = PrefixRule::default();
        let mut bans = vec![ban("2001:db8:1:2::a", 10, true), ban("2001:db8:1:2::b", 20, true)];
        let new: Ipv6Addr = "2001:db8:1:2::c".parse().unwrap();
        let office: IpNet = "2001:db8:1:2:8000::/65".parse().unwrap();
        assert!(prefix_to_ban(&rule, &bans, new, 30, &[office]).is_none());
        bans.push(ban("2001:db8:1:2::/64", 25, true));
        assert!(prefix_to_ban(&rule, &bans, new, 30, &[]).is_none());
        let off = PrefixRule { after: 0, ..rule };
        assert!(prefix_to_ban(&off, &bans[..2], new, 30, &[]).is_none());
    }
}
