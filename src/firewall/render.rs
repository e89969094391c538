//! The `inet sipwarden` table as nftables JSON commands. Pure functions.
//!
//! One base chain on the prerouting hook at priority -300 (before connection
//! tracking): packets from banned addresses are dropped before anything else on
//! the host or behind it sees them, and never fill the conntrack table. Trusted
//! networks are accepted first.

use std::borrow::Cow;
use std::collections::HashSet;
use std::net::IpAddr;

use ipnet::IpNet;
use nftables::expr::{Elem, Expression, NamedExpression, Payload, PayloadField, Prefix};
use nftables::schema::{
    Chain, Element, FlushObject, NfCmd, NfListObject, NfObject, Nftables, Rule, Set, SetFlag, SetType,
    SetTypeValue, Table,
};
use nftables::stmt::{Counter, Match, Operator, Statement};
use nftables::types::{NfChainPolicy, NfChainType, NfFamily, NfHook};

pub const TABLE: &str = "sipwarden";
pub const CHAIN: &str = "drop_banned";
pub const PRIORITY: i32 = -300;

/// The sets of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SetName {
    Trusted4,
    Trusted6,
    /// Timed bans: each element carries its remaining time and the kernel expires it.
    Ban4,
    Ban6,
    /// Bans until released.
    Forever4,
    Forever6,
    /// IPv6 prefixes banned as a whole (many addresses of one /64 banned), timed and
    /// until released: interval sets of their own, so they never overlap an address.
    BanPrefix6,
    ForeverPrefix6,
    /// Networks that may reach closed ports (trusted, extension and trunk networks).
    Allowed4,
    Allowed6,
    /// "Always deny": dropped everywhere, before anything else.
    Deny4,
    Deny6,
    /// Ports in closed mode.
    ClosedTcp,
    ClosedUdp,
}

impl SetName {
    pub const ALL: [SetName; 14] = [
        SetName::Trusted4,
        SetName::Trusted6,
        SetName::Ban4,
        SetName::Ban6,
        SetName::Forever4,
        SetName::Forever6,
        SetName::BanPrefix6,
        SetName::ForeverPrefix6,
        SetName::Allowed4,
        SetName::Allowed6,
        SetName::Deny4,
        SetName::Deny6,
        SetName::ClosedTcp,
        SetName::ClosedUdp,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SetName::Trusted4 => "trusted4",
            SetName::Trusted6 => "trusted6",
            SetName::Ban4 => "ban4",
            SetName::Ban6 => "ban6",
            SetName::Forever4 => "forever4",
            SetName::Forever6 => "forever6",
            SetName::BanPrefix6 => "ban6_prefix",
            SetName::ForeverPrefix6 => "forever6_prefix",
            SetName::Allowed4 => "allowed4",
            SetName::Allowed6 => "allowed6",
            SetName::Deny4 => "deny4",
            SetName::Deny6 => "deny6",
            SetName::ClosedTcp => "closed_tcp",
            SetName::ClosedUdp => "closed_udp",
        }
    }

    pub fn parse(name: &str) -> Option<SetName> {
        SetName::ALL.into_iter().find(|s| s.as_str() == name)
    }

    fn is_v6(self) -> bool {
        matches!(
            self,
            SetName::Trusted6
                | SetName::Ban6
                | SetName::Forever6
                | SetName::BanPrefix6
                | SetName::ForeverPrefix6
                | SetName::Allowed6
                | SetName::Deny6
        )
    }

    /// The set a ban of `net` (an address, or an IPv6 prefix) belongs in.
    pub fn for_ban(net: IpNet, timed: bool) -> SetName {
        let prefix = net.prefix_len() < net.max_prefix_len();
        match (net, prefix, timed) {
            (IpNet::V4(_), _, true) => SetName::Ban4,
            (IpNet::V4(_), _, false) => SetName::Forever4,
            (IpNet::V6(_), false, true) => SetName::Ban6,
            (IpNet::V6(_), false, false) => SetName::Forever6,
            (IpNet::V6(_), true, true) => SetName::BanPrefix6,
            (IpNet::V6(_), true, false) => SetName::ForeverPrefix6,
        }
    }

    fn flags(self) -> HashSet<SetFlag> {
        match self {
            SetName::Trusted4
            | SetName::Trusted6
            | SetName::Allowed4
            | SetName::Allowed6
            | SetName::Deny4
            | SetName::Deny6 => [SetFlag::Interval].into(),
            SetName::ClosedTcp | SetName::ClosedUdp => HashSet::new(),
            SetName::Ban4 | SetName::Ban6 => [SetFlag::Timeout].into(),
            SetName::Forever4 | SetName::Forever6 => HashSet::new(),
            SetName::BanPrefix6 => [SetFlag::Interval, SetFlag::Timeout].into(),
            SetName::ForeverPrefix6 => [SetFlag::Interval].into(),
        }
    }
}

/// Who may reach what, apart from bans.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Access {
    /// Accepted before any ban.
    pub trusted: Vec<IpNet>,
    /// May reach the closed ports (trusted, extension and trunk networks).
    pub allowed: Vec<IpNet>,
    /// Dropped everywhere, first.
    pub deny: Vec<IpNet>,
    /// Ports closed to everyone not allowed; empty means open mode.
    pub closed_tcp: Vec<u16>,
    pub closed_udp: Vec<u16>,
    /// The database whose bans these are, written into the table so that a sipwarden
    /// with another database never takes it over (see [`OWNER_PREFIX`]).
    pub owner: String,
}

/// The comment of the chain's first rule: the owner follows it.
pub const OWNER_PREFIX: &str = "sipwarden of ";

/// One ban as the kernel should hold it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KernelBan {
    /// An address (a /32 or /128), or an IPv6 prefix.
    pub net: IpNet,
    /// Remaining seconds (at least 1) for a timed ban; `None` until released.
    pub timeout_secs: Option<u32>,
}

impl KernelBan {
    pub fn address(ip: IpAddr, timeout_secs: Option<u32>) -> KernelBan {
        KernelBan { net: IpNet::from(ip), timeout_secs }
    }
}

/// A ban target as an admin reads it: `203.0.113.7`, `2001:db8:1:2::/64`.
pub fn target_text(net: &IpNet) -> String {
    if net.prefix_len() == net.max_prefix_len() { net.addr().to_string() } else { net.to_string() }
}

/// A ban target as nft writes it: a bare address, or a prefix.
fn target_expr(net: &IpNet) -> Expression<'static> {
    if net.prefix_len() == net.max_prefix_len() {
        Expression::String(Cow::Owned(net.addr().to_string()))
    } else {
        prefix_expr(net)
    }
}

fn cmd(c: NfCmd<'static>) -> NfObject<'static> {
    NfObject::CmdObject(c)
}

fn table() -> Table<'static> {
    Table { family: NfFamily::INet, name: Cow::Borrowed(TABLE), handle: None }
}

fn set(name: SetName) -> Set<'static> {
    let flags = name.flags();
    Set {
        family: NfFamily::INet,
        table: Cow::Borrowed(TABLE),
        name: Cow::Borrowed(name.as_str()),
        handle: None,
        set_type: SetTypeValue::Single(match name {
            SetName::ClosedTcp | SetName::ClosedUdp => SetType::InetService,
            n if n.is_v6() => SetType::Ipv6Addr,
            _ => SetType::Ipv4Addr,
        }),
        policy: None,
        flags: (!flags.is_empty()).then_some(flags),
        elem: None,
        timeout: None,
        gc_interval: None,
        size: None,
        comment: None,
    }
}

fn field_in(protocol: &'static str, field: &'static str, set: SetName, op: Operator) -> Statement<'static> {
    Statement::Match(Match {
        left: Expression::Named(NamedExpression::Payload(Payload::PayloadField(PayloadField {
            protocol: Cow::Borrowed(protocol),
            field: Cow::Borrowed(field),
        }))),
        right: Expression::String(Cow::Owned(format!("@{}", set.as_str()))),
        op,
    })
}

fn saddr_in(v6: bool, set: SetName) -> Statement<'static> {
    field_in(if v6 { "ip6" } else { "ip" }, "saddr", set, Operator::EQ)
}

fn rule(stmts: Vec<Statement<'static>>, comment: impl Into<Cow<'static, str>>) -> NfObject<'static> {
    cmd(NfCmd::Add(NfListObject::Rule(Rule {
        family: NfFamily::INet,
        table: Cow::Borrowed(TABLE),
        chain: Cow::Borrowed(CHAIN),
        expr: Cow::Owned(stmts),
        handle: None,
        index: None,
        comment: Some(comment.into()),
    })))
}

/// The rules of the chain, in order. Their count is how a listing is checked.
fn rules(owner: &str) -> Vec<NfObject<'static>> {
    let counter = || Statement::Counter(Counter::Anonymous(None));
    let closed = |proto: &'static str, ports: SetName, v6: bool| {
        let (family, allowed) = if v6 { ("ip6", SetName::Allowed6) } else { ("ip", SetName::Allowed4) };
        rule(
            vec![
                field_in(proto, "dport", ports, Operator::EQ),
                field_in(family, "saddr", allowed, Operator::NEQ),
                counter(),
                Statement::Drop(None),
            ],
            "closed mode: not from an allowed network",
        )
    };
    vec![
        // Counts every packet; there for its comment, which names the owner.
        rule(vec![counter()], format!("{OWNER_PREFIX}{owner}")),
        rule(vec![saddr_in(false, SetName::Deny4), counter(), Statement::Drop(None)], "always deny"),
        rule(vec![saddr_in(true, SetName::Deny6), counter(), Statement::Drop(None)], "always deny"),
        rule(vec![saddr_in(false, SetName::Trusted4), Statement::Accept(None)], "trusted"),
        rule(vec![saddr_in(true, SetName::Trusted6), Statement::Accept(None)], "trusted"),
        rule(vec![saddr_in(false, SetName::Ban4), counter(), Statement::Drop(None)], "banned"),
        rule(vec![saddr_in(true, SetName::Ban6), counter(), Statement::Drop(None)], "banned"),
        rule(
            vec![saddr_in(false, SetName::Forever4), counter(), Statement::Drop(None)],
            "banned until released",
        ),
        rule(
            vec![saddr_in(true, SetName::Forever6), counter(), Statement::Drop(None)],
            "banned until released",
        ),
        rule(vec![saddr_in(true, SetName::BanPrefix6), counter(), Statement::Drop(None)], "banned prefix"),
        rule(
            vec![saddr_in(true, SetName::ForeverPrefix6), counter(), Statement::Drop(None)],
            "banned prefix until released",
        ),
        closed("tcp", SetName::ClosedTcp, false),
        closed("tcp", SetName::ClosedTcp, true),
        closed("udp", SetName::ClosedUdp, false),
        closed("udp", SetName::ClosedUdp, true),
    ]
}

pub fn rule_count() -> usize {
    rules("").len()
}

fn element_expr(ban: &KernelBan) -> Expression<'static> {
    let val = target_expr(&ban.net);
    match ban.timeout_secs {
        Some(t) => Expression::Named(NamedExpression::Elem(Elem {
            val: Box::new(val),
            timeout: Some(t.max(1)),
            expires: None,
            comment: None,
            counter: None,
        })),
        None => val,
    }
}

fn prefix_expr(net: &IpNet) -> Expression<'static> {
    Expression::Named(NamedExpression::Prefix(Prefix {
        addr: Box::new(Expression::String(Cow::Owned(net.network().to_string()))),
        len: u32::from(net.prefix_len()),
    }))
}

/// Elements for `set`, as `add set` with the elements in it rather than `add
/// element`: nft 1.0.6 reads every interval set of every table before an `add
/// element` (a hundred thousand country ranges take it a second), but not before an
/// `add set`, which adds to the set when it exists.
fn with_elements(set_name: SetName, elem: Vec<Expression<'static>>) -> NfListObject<'static> {
    NfListObject::Set(Box::new(Set { elem: Some(Cow::Owned(elem)), ..set(set_name) }))
}

/// `delete element`: nft has no other way to take one out.
fn element(set: SetName, elem: Vec<Expression<'static>>) -> NfListObject<'static> {
    NfListObject::Element(Element {
        family: NfFamily::INet,
        table: Cow::Borrowed(TABLE),
        name: Cow::Borrowed(set.as_str()),
        elem: Cow::Owned(elem),
    })
}

/// The elements one command adds, and their set (an `add set` with elements: the only
/// way sipwarden adds them).
pub fn elements_added<'a>(command: &'a NfObject<'_>) -> Option<(&'a str, &'a [Expression<'a>])> {
    match command {
        NfObject::CmdObject(NfCmd::Add(NfListObject::Set(s))) => s.elem.as_deref().map(|e| (&*s.name, e)),
        _ => None,
    }
}

/// Group bans by the set they belong in, in a stable order.
fn by_set(bans: &[KernelBan]) -> Vec<(SetName, Vec<Expression<'static>>)> {
    SetName::ALL
        .into_iter()
        .filter_map(|s| {
            let elems: Vec<_> = bans
                .iter()
                .filter(|b| SetName::for_ban(b.net, b.timeout_secs.is_some()) == s)
                .map(element_expr)
                .collect();
            (!elems.is_empty()).then_some((s, elems))
        })
        .collect()
}

/// A base chain on the prerouting hook that lets through what its rules do not drop.
pub(super) fn prerouting_chain(table: &'static str, name: &'static str, prio: i32) -> NfObject<'static> {
    cmd(NfCmd::Add(NfListObject::Chain(Chain {
        family: NfFamily::INet,
        table: Cow::Borrowed(table),
        name: Cow::Borrowed(name),
        newname: None,
        handle: None,
        _type: Some(NfChainType::Filter),
        hook: Some(NfHook::Prerouting),
        prio: Some(prio),
        dev: None,
        policy: Some(NfChainPolicy::Accept),
    })))
}

/// The whole table, replacing whatever exists in one transaction: `add table` makes
/// the `delete table` valid whether or not it existed.
pub fn full_ruleset(access: &Access, bans: &[KernelBan]) -> Nftables<'static> {
    let mut objects = vec![
        cmd(NfCmd::Add(NfListObject::Table(table()))),
        cmd(NfCmd::Delete(NfListObject::Table(table()))),
        cmd(NfCmd::Add(NfListObject::Table(table()))),
    ];
    for s in SetName::ALL {
        objects.push(cmd(NfCmd::Add(NfListObject::Set(Box::new(set(s))))));
    }
    objects.push(prerouting_chain(TABLE, CHAIN, PRIORITY));
    objects.extend(rules(&access.owner));
    for (nets, v4set, v6set) in [
        (&access.trusted, SetName::Trusted4, SetName::Trusted6),
        (&access.allowed, SetName::Allowed4, SetName::Allowed6),
        (&access.deny, SetName::Deny4, SetName::Deny6),
    ] {
        for (s, v6) in [(v4set, false), (v6set, true)] {
            let elems: Vec<_> =
                nets.iter().filter(|n| matches!(n, IpNet::V6(_)) == v6).map(prefix_expr).collect();
            if !elems.is_empty() {
                objects.push(cmd(NfCmd::Add(with_elements(s, elems))));
            }
        }
    }
    for (ports, s) in [(&access.closed_tcp, SetName::ClosedTcp), (&access.closed_udp, SetName::ClosedUdp)] {
        if !ports.is_empty() {
            let elems = ports.iter().map(|p| Expression::Number(u32::from(*p))).collect();
            objects.push(cmd(NfCmd::Add(with_elements(s, elems))));
        }
    }
    for (s, elems) in by_set(bans) {
        objects.push(cmd(NfCmd::Add(with_elements(s, elems))));
    }
    Nftables { objects: Cow::Owned(objects) }
}

/// New bans, added to their sets (an element already present is left as is).
pub fn add_bans(bans: &[KernelBan]) -> Nftables<'static> {
    let objects = by_set(bans).into_iter().map(|(s, e)| cmd(NfCmd::Add(with_elements(s, e)))).collect();
    Nftables { objects: Cow::Owned(objects) }
}

/// Removes `net` from every ban set, whether or not it is there: each delete is
/// preceded by an add (deleting an absent element is an error in nft 1.0.6, which
/// has no `destroy`), all in one transaction.
pub fn remove_bans(nets: &[IpNet]) -> Nftables<'static> {
    let mut objects = Vec::new();
    for net in nets {
        for timed in [true, false] {
            let s = SetName::for_ban(*net, timed);
            let placeholder = KernelBan { net: *net, timeout_secs: timed.then_some(1) };
            objects.push(cmd(NfCmd::Add(with_elements(s, vec![element_expr(&placeholder)]))));
            objects.push(cmd(NfCmd::Delete(element(s, vec![target_expr(net)]))));
        }
    }
    Nftables { objects: Cow::Owned(objects) }
}

/// Most bans a release puts back into one set (nft 1.0.6 takes about 9 µs an element:
/// 10,000 take a tenth of a second). Above it a release uses `delete element`.
pub const REFILL_LIMIT: usize = 10_000;

/// Bans and releases as transactions to apply in order; `desired` is every ban the
/// kernel should hold after them.
///
/// nft 1.0.6 reads every interval set of every table before a `delete element` (beside
/// a country table, a second), but not before a flush or an `add set`. So a release
/// empties each ban set it touches and puts back what `desired` keeps there, in the
/// same transaction as the new bans: nothing banned passes in between. A set holding
/// more than [`REFILL_LIMIT`] bans takes `delete element` instead, in a transaction
/// after the bans (an address banned again in the same pass is deleted before its ban).
pub fn ban_changes(add: &[KernelBan], remove: &[IpNet], desired: &[KernelBan]) -> Vec<Nftables<'static>> {
    let in_set = |s: SetName| {
        let mut seen = HashSet::new();
        desired
            .iter()
            .chain(add)
            .filter(move |b| SetName::for_ban(b.net, b.timeout_secs.is_some()) == s)
            .filter(move |b| seen.insert(b.net))
            .copied()
            .collect::<Vec<_>>()
    };
    let mut touched: Vec<SetName> =
        remove.iter().flat_map(|n| [SetName::for_ban(*n, true), SetName::for_ban(*n, false)]).collect();
    touched.sort_unstable();
    touched.dedup();
    let (refilled, deleted): (Vec<(SetName, Vec<KernelBan>)>, Vec<_>) =
        touched.into_iter().map(|s| (s, in_set(s))).partition(|(_, kept)| kept.len() <= REFILL_LIMIT);
    let slow =
        |n: &IpNet| deleted.iter().any(|(s, _)| [true, false].map(|t| SetName::for_ban(*n, t)).contains(s));
    let rebanned: Vec<IpNet> =
        remove.iter().copied().filter(|n| slow(n) && add.iter().any(|b| b.net == *n)).collect();
    let released: Vec<IpNet> = remove.iter().copied().filter(|n| slow(n) && !rebanned.contains(n)).collect();

    let mut bans = remove_bans(&rebanned).objects.into_owned();
    for (s, kept) in &refilled {
        bans.push(cmd(NfCmd::Flush(FlushObject::Set(Box::new(set(*s))))));
        if !kept.is_empty() {
            bans.push(cmd(NfCmd::Add(with_elements(*s, kept.iter().map(element_expr).collect()))));
        }
    }
    let refilled_set = |b: &&KernelBan| {
        refilled.iter().any(|(s, _)| *s == SetName::for_ban(b.net, b.timeout_secs.is_some()))
    };
    let others: Vec<KernelBan> = add.iter().filter(|b| !refilled_set(b)).copied().collect();
    bans.extend(add_bans(&others).objects.into_owned());
    [bans, remove_bans(&released).objects.into_owned()]
        .into_iter()
        .filter(|objects| !objects.is_empty())
        .map(|objects| Nftables { objects: Cow::Owned(objects) })
        .collect()
}

/// Pretty JSON, as golden files store it.
pub fn to_json(n: &Nftables<'_>) -> String {
    serde_json::to_string_pretty(n).expect("nftables model serializes")
}
