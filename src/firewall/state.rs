//! What the kernel holds, read from `nft -j list table inet sipwarden`, and the plan
//! that brings it to what the database says. Pure functions.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;

use ipnet::IpNet;
use nftables::expr::{Expression, NamedExpression};
use nftables::schema::{NfListObject, NfObject, Nftables};
use nftables::types::NfHook;

use super::render::{self, Access, CHAIN, KernelBan, PRIORITY, SetName, TABLE};

/// The sipwarden table as listed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KernelState {
    pub table: bool,
    pub chain: bool,
    pub rules: usize,
    pub sets: BTreeSet<&'static str>,
    /// (banned address or prefix, the set it is in) → for timed bans, seconds left. An
    /// address can sit in two sets when someone edited the table by hand.
    pub bans: HashMap<(IpNet, SetName), Option<u32>>,
    pub trusted: BTreeSet<IpNet>,
    pub allowed: BTreeSet<IpNet>,
    pub deny: BTreeSet<IpNet>,
    pub closed_tcp: BTreeSet<u16>,
    pub closed_udp: BTreeSet<u16>,
    /// The database the table's rules name (see `render::OWNER_PREFIX`).
    pub owner: Option<String>,
}

impl KernelState {
    /// The set (and seconds left) of the address `ip`, if any set holds it.
    pub fn ban_of(&self, ip: IpAddr) -> Option<(SetName, Option<u32>)> {
        self.ban_of_target(IpNet::from(ip))
    }

    /// The same for an address or a prefix.
    pub fn ban_of_target(&self, net: IpNet) -> Option<(SetName, Option<u32>)> {
        SetName::ALL.into_iter().find_map(|s| self.bans.get(&(net, s)).map(|t| (s, *t)))
    }

    /// Every banned address and prefix.
    pub fn banned_targets(&self) -> BTreeSet<IpNet> {
        self.bans.keys().map(|(net, _)| *net).collect()
    }

    /// Table, chain, every set and every rule are as sipwarden writes them.
    pub fn structure_ok(&self) -> bool {
        self.table
            && self.chain
            && self.rules == render::rule_count()
            && self.sets.len() == SetName::ALL.len()
    }
}

fn text<'a>(e: &'a Expression<'_>) -> Option<&'a str> {
    match e {
        Expression::String(s) => Some(s),
        _ => None,
    }
}

/// Reads the listing. An absent table (nft answers with an error instead) is the
/// caller's `KernelState::default()`.
pub fn parse_listing(n: &Nftables<'_>) -> KernelState {
    let mut state = KernelState::default();
    for obj in n.objects.iter() {
        let NfObject::ListObject(obj) = obj else {
            continue;
        };
        match obj {
            NfListObject::Table(t) if t.name == TABLE => state.table = true,
            NfListObject::Chain(c) if c.table == TABLE && c.name == CHAIN => {
                state.chain = c.hook == Some(NfHook::Prerouting) && c.prio == Some(PRIORITY);
            }
            NfListObject::Rule(r) if r.table == TABLE && r.chain == CHAIN => {
                state.rules += 1;
                if let Some(owner) = r.comment.as_deref().and_then(|c| c.strip_prefix(render::OWNER_PREFIX)) {
                    state.owner = Some(owner.to_string());
                }
            }
            NfListObject::Set(s) if s.table == TABLE => {
                let Some(name) = SetName::parse(&s.name) else {
                    continue;
                };
                state.sets.insert(name.as_str());
                for e in s.elem.iter().flat_map(|e| e.iter()) {
                    read_element(&mut state, name, e);
                }
            }
            _ => {}
        }
    }
    state
}

/// An element's value: a prefix, or a bare address (a /32 or /128).
pub(super) fn net_of(value: &Expression<'_>) -> Option<IpNet> {
    match value {
        Expression::Named(NamedExpression::Prefix(p)) => {
            text(&p.addr).and_then(|a| a.parse::<IpAddr>().ok()).and_then(|a| IpNet::new(a, p.len as u8).ok())
        }
        other => text(other).and_then(|a| a.parse::<IpAddr>().ok()).map(IpNet::from),
    }
}

fn read_element(state: &mut KernelState, set: SetName, e: &Expression<'_>) {
    let (value, expires) = match e {
        Expression::Named(NamedExpression::Elem(elem)) => (elem.val.as_ref(), elem.expires.or(elem.timeout)),
        other => (other, None),
    };
    match set {
        SetName::ClosedTcp | SetName::ClosedUdp => {
            let port = match value {
                Expression::Number(n) => u16::try_from(*n).ok(),
                other => text(other).and_then(|t| t.parse().ok()),
            };
            if let Some(port) = port {
                if set == SetName::ClosedTcp {
                    state.closed_tcp.insert(port)
                } else {
                    state.closed_udp.insert(port)
                };
            }
        }
        SetName::Trusted4
        | SetName::Trusted6
        | SetName::Allowed4
        | SetName::Allowed6
        | SetName::Deny4
        | SetName::Deny6 => {
            if let Some(net) = net_of(value) {
                match set {
                    SetName::Trusted4 | SetName::Trusted6 => state.trusted.insert(net),
                    SetName::Allowed4 | SetName::Allowed6 => state.allowed.insert(net),
                    _ => state.deny.insert(net),
                };
            }
        }
        _ => {
            if let Some(net) = net_of(value) {
                state.bans.insert((net, set), expires);
            }
        }
    }
}

/// What to change in the kernel.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Replace the whole table (structure missing or altered, or trusted sets differ).
    pub replace: bool,
    pub add: Vec<KernelBan>,
    pub remove: Vec<IpNet>,
    /// Human-readable reasons, one per repair, for the log.
    pub repairs: Vec<String>,
    /// The table belongs to the sipwarden of this database: nothing may be changed.
    pub foreign_owner: Option<String>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        !self.replace && self.add.is_empty() && self.remove.is_empty()
    }
}

/// How far a kernel timeout may run short of the database before it is refreshed:
/// listing and applying take time, and nft counts in whole seconds.
pub const TIMEOUT_SLACK_SECS: u32 = 5;

/// Compares the kernel with the desired bans and access lists.
pub fn plan(kernel: &KernelState, desired: &[KernelBan], access: &Access) -> Plan {
    let mut p = Plan::default();
    // Another sipwarden's table: its bans are not this database's to change.
    if let Some(owner) =
        kernel.owner.as_ref().filter(|o| kernel.table && !o.is_empty() && **o != access.owner)
    {
        p.foreign_owner = Some(owner.clone());
        return p;
    }
    if kernel.structure_ok() && kernel.owner.as_deref() != Some(access.owner.as_str()) {
        p.replace = true;
        p.repairs.push("sipwarden's firewall rules did not name their database; rebuilt".into());
        return p;
    }
    if !kernel.structure_ok() {
        p.replace = true;
        p.repairs.push(if kernel.table {
            "sipwarden's firewall rules were altered; rebuilt".into()
        } else {
            "sipwarden's firewall rules were missing; rebuilt".into()
        });
        return p;
    }
    let nets = |v: &[IpNet]| -> BTreeSet<IpNet> { v.iter().map(|n| n.trunc()).collect() };
    let ports = |v: &[u16]| -> BTreeSet<u16> { v.iter().copied().collect() };
    if nets(&access.trusted) != kernel.trusted
        || nets(&access.allowed) != kernel.allowed
        || nets(&access.deny) != kernel.deny
        || ports(&access.closed_tcp) != kernel.closed_tcp
        || ports(&access.closed_udp) != kernel.closed_udp
    {
        p.replace = true;
        p.repairs.push("access lists or closed ports changed; firewall rules rebuilt".into());
        return p;
    }
    let wanted: BTreeMap<IpNet, KernelBan> = desired.iter().map(|b| (b.net, *b)).collect();
    for (ip, ban) in &wanted {
        let set = SetName::for_ban(*ip, ban.timeout_secs.is_some());
        let held: Vec<(SetName, Option<u32>)> =
            SetName::ALL.into_iter().filter_map(|s| kernel.bans.get(&(*ip, s)).map(|t| (s, *t))).collect();
        let repair = match held.as_slice() {
            [] => Some("ban missing from the firewall; added".to_string()),
            [(have, _)] if *have != set => Some("ban in the wrong list; moved".to_string()),
            [(_, Some(left))] => match ban.timeout_secs {
                Some(want) if left.saturating_add(TIMEOUT_SLACK_SECS) < want => {
                    Some(format!("firewall timeout {left}s shorter than {want}s; renewed"))
                }
                _ => None,
            },
            [_] => None,
            _ => Some("ban in several lists; rewritten".to_string()),
        };
        if let Some(why) = repair {
            p.repairs.push(format!("{}: {why}", render::target_text(ip)));
            if !held.is_empty() {
                p.remove.push(*ip);
            }
            p.add.push(*ban);
        }
    }
    for ip in kernel.banned_targets() {
        if !wanted.contains_key(&ip) {
            p.repairs.push(format!(
                "{}: not banned in the database; removed from the kernel",
                render::target_text(&ip)
            ));
            p.remove.push(ip);
        }
    }
    p.remove.sort();
    p.remove.dedup();
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ban(ip: &str, t: Option<u32>) -> KernelBan {
        KernelBan::address(ip.parse().unwrap(), t)
    }

    fn healthy(bans: &[(&str, SetName, Option<u32>)]) -> KernelState {
        KernelState {
            table: true,
            chain: true,
            rules: render::rule_count(),
            sets: SetName::ALL.iter().map(|s| s.as_str()).collect(),
            bans: bans
                .iter()
                .map(|(ip, s, t)| ((IpNet::from(ip.parse::<IpAddr>().unwrap()), *s), *t))
                .collect(),
            owner: Some(String::new()),
            ..KernelState::default()
        }
    }

    #[test]
    fn another_databases_table_is_left_alone_and_an_unstamped_one_is_rebuilt() {
        let mine = Access { owner: "/var/lib/sipwarden/sipwarden.db".into(), ..Access::default() };
        let mut k = healthy(&[("203.0.113.1", SetName::Forever4, None)]);
        k.owner = Some("/root/sipwarden-data/sipwarden.db".into());
        let p = plan(&k, &[], &mine);
        assert_eq!(p.foreign_owner.as_deref(), Some("/root/sipwarden-data/sipwarden.db"));
        assert!(p.is_empty() && p.remove.is_empty(), "not one ban of the other's removed");
        // A table an older version wrote, naming no database: taken over and stamped.
        k.owner = None;
        let p = plan(&k, &[], &mine);
        assert!(p.replace && p.foreign_owner.is_none());
        k.owner = Some(mine.owner.clone());
        assert!(plan(&k, &[ban("203.0.113.1", None)], &mine).is_empty());
    }

    #[test]
    fn a_missing_or_altered_table_is_rebuilt() {
        let open = Access::default();
        assert!(plan(&KernelState::default(), &[], &open).replace);
        let mut k = healthy(&[]);
        k.rules -= 1;
        assert!(plan(&k, &[], &open).replace);
        let k = healthy(&[]);
        let trusted = Access { trusted: vec!["10.0.0.0/8".parse().unwrap()], ..Access::default() };
        assert!(plan(&k, &[], &trusted).replace);
        let closed = Access { closed_udp: vec![5060], ..Access::default() };
        assert!(plan(&k, &[], &closed).replace);
        assert!(plan(&k, &[], &open).is_empty());
    }

    #[test]
    fn missing_extra_moved_and_short_bans_are_repaired() {
        let k = healthy(&[
            ("203.0.113.1", SetName::Ban4, Some(3000)),
            ("203.0.113.2", SetName::Ban4, Some(100)),
            ("203.0.113.3", SetName::Ban4, Some(100)),
            ("2001:db8::9", SetName::Forever6, None),
        ]);
        let desired = [
            ban("203.0.113.1", Some(3002)),
            ban("203.0.113.2", Some(3600)),
            ban("203.0.113.3", None),
            ban("198.51.100.4", Some(60)),
        ];
        let p = plan(&k, &desired, &Access::default());
        assert!(!p.replace);
        let added: Vec<String> = p.add.iter().map(|b| b.net.addr().to_string()).collect();
        assert_eq!(added, ["198.51.100.4", "203.0.113.2", "203.0.113.3"]);
        let removed: Vec<String> = p.remove.iter().map(|ip| ip.addr().to_string()).collect();
        assert_eq!(removed, ["203.0.113.2", "203.0.113.3", "2001:db8::9"]);
        assert_eq!(p.repairs.len(), 4);
    }
}
