//! The country table's transactions: prepare, fill and commit (see [`Generation`]).
//! Pure functions.

use std::borrow::Cow;
use std::collections::HashSet;
use std::net::{Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;
use nftables::expr::{
    Elem, Expression, Meta, MetaKey, NamedExpression, Payload, PayloadField, Prefix, Range,
};
use nftables::schema::{
    Chain, Counter as NamedCounter, FlushObject, NfCmd, NfListObject, NfObject, Nftables, Rule, Set, SetFlag,
    SetType, SetTypeValue,
};
use nftables::stmt::{Counter, Match, Operator, Statement};
use nftables::types::NfFamily;

use super::{
    CHAIN, CountryAccess, FINGERPRINT_ELEMENT, FINGERPRINT_SET, Generation, NO_COUNTRY, PRIORITY,
    ServiceRule, Stamp, TABLE, cmd, drops_counter, table,
};
use crate::domain::ClosableService;

/// Ranges per fill transaction: the parts of a big set go to the kernel through
/// several `nft` at once, and `add set` with elements adds to what a set holds
/// without nft reading it first. Chunks of this size keep two cores busy to the end.
pub(super) const FILL_CHUNK: usize = 16_384;

/// A country table put in the kernel in three steps (see [`Generation`]).
#[derive(Debug, Clone)]
pub struct Load {
    /// Makes the table if needed and clears what a load cut short left in the sets
    /// about to be filled.
    pub prepare: Nftables<'static>,
    /// Transactions that fill the sets of ranges, largest first; they may run at the
    /// same time.
    pub fills: Vec<Nftables<'static>>,
    /// Points the rules at the new sets, renews the small sets and the fingerprint,
    /// and deletes the other generation's sets: one transaction.
    pub commit: Nftables<'static>,
}

fn set_def(name: String, set_type: SetTypeValue<'static>, interval: bool) -> Set<'static> {
    let flags: HashSet<SetFlag> = if interval { [SetFlag::Interval].into() } else { HashSet::new() };
    Set {
        family: NfFamily::INet,
        table: Cow::Borrowed(TABLE),
        name: Cow::Owned(name),
        set_type,
        flags: (!flags.is_empty()).then_some(flags),
        ..Set::default()
    }
}

fn add_set(set: Set<'static>) -> NfObject<'static> {
    cmd(NfCmd::Add(NfListObject::Set(Box::new(set))))
}

/// `add set` with the elements in it: nft 1.0.6 reads every interval set of every
/// table before an `add element`, not before an `add set` (which adds to the set
/// when it exists).
fn with_elements(set: Set<'static>, elem: Vec<Expression<'static>>) -> NfObject<'static> {
    add_set(Set { elem: Some(Cow::Owned(elem)), ..set })
}

/// Deletes the set whether or not it exists.
fn drop_set(set: Set<'static>) -> [NfObject<'static>; 2] {
    let delete = cmd(NfCmd::Delete(NfListObject::Set(Box::new(set.clone()))));
    [add_set(set), delete]
}

/// Empties the set, then fills it (it is made first if it does not exist).
fn refill(set: Set<'static>, elem: Vec<Expression<'static>>) -> [NfObject<'static>; 3] {
    let flush = cmd(NfCmd::Flush(FlushObject::Set(Box::new(set.clone()))));
    [add_set(set.clone()), flush, with_elements(set, elem)]
}

fn text(s: String) -> Expression<'static> {
    Expression::String(Cow::Owned(s))
}

fn range(a: String, b: String) -> Expression<'static> {
    if a == b { text(a) } else { Expression::Range(Box::new(Range { range: [text(a), text(b)] })) }
}

fn v4_elems(r: &[(u32, u32)]) -> Vec<Expression<'static>> {
    r.iter().map(|(a, b)| range(Ipv4Addr::from(*a).to_string(), Ipv4Addr::from(*b).to_string())).collect()
}

fn v6_elems(r: &[(u128, u128)]) -> Vec<Expression<'static>> {
    r.iter().map(|(a, b)| range(Ipv6Addr::from(*a).to_string(), Ipv6Addr::from(*b).to_string())).collect()
}

fn net_elems(nets: &[IpNet], v6: bool) -> Vec<Expression<'static>> {
    nets.iter()
        .filter(|n| matches!(n, IpNet::V6(_)) == v6)
        .map(|n| {
            Expression::Named(NamedExpression::Prefix(Prefix {
                addr: Box::new(text(n.network().to_string())),
                len: u32::from(n.prefix_len()),
            }))
        })
        .collect()
}

fn saddr(v6: bool, set: &str, op: Operator) -> Statement<'static> {
    Statement::Match(Match {
        left: Expression::Named(NamedExpression::Payload(Payload::PayloadField(PayloadField {
            protocol: Cow::Borrowed(if v6 { "ip6" } else { "ip" }),
            field: Cow::Borrowed("saddr"),
        }))),
        right: text(format!("@{set}")),
        op,
    })
}

/// `meta l4proto . th dport @ports_<service>`
fn to_service(ports: &str) -> Statement<'static> {
    Statement::Match(Match {
        left: Expression::Named(NamedExpression::Concat(vec![
            Expression::Named(NamedExpression::Meta(Meta { key: MetaKey::L4proto })),
            Expression::Named(NamedExpression::Payload(Payload::PayloadField(PayloadField {
                protocol: Cow::Borrowed("th"),
                field: Cow::Borrowed("dport"),
            }))),
        ])),
        right: text(format!("@{ports}")),
        op: Operator::EQ,
    })
}

fn rule(expr: Vec<Statement<'static>>, comment: String) -> NfObject<'static> {
    cmd(NfCmd::Add(NfListObject::Rule(Rule {
        family: NfFamily::INet,
        table: Cow::Borrowed(TABLE),
        chain: Cow::Borrowed(CHAIN),
        expr: Cow::Owned(expr),
        handle: None,
        index: None,
        comment: Some(Cow::Owned(comment)),
    })))
}

/// The networks the rules never drop: `pass` and [`NO_COUNTRY`], merged (an interval
/// set refuses overlapping elements).
fn passing(pass: &[IpNet]) -> Vec<IpNet> {
    let mut all: Vec<IpNet> = pass.to_vec();
    all.extend(NO_COUNTRY.iter().filter_map(|n| n.parse::<IpNet>().ok()));
    IpNet::aggregate(&all)
}

fn addr_type(v6: bool) -> SetTypeValue<'static> {
    SetTypeValue::Single(if v6 { SetType::Ipv6Addr } else { SetType::Ipv4Addr })
}

/// "only" or "deny".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum List {
    Deny,
    Only,
}

/// The set of ranges of one list, family and service; `None` names the sets of
/// tables from before generations.
fn list_set(list: List, v6: bool, service: ClosableService, generation: Option<Generation>) -> Set<'static> {
    let kind = match list {
        List::Deny => "deny",
        List::Only => "only",
    };
    let family = if v6 { "6" } else { "4" };
    let name = match generation {
        Some(g) => format!("{kind}{family}_{}_{}", service.as_str(), g.suffix()),
        None => format!("{kind}{family}_{}", service.as_str()),
    };
    set_def(name, addr_type(v6), true)
}

/// Every name a set of ranges of `generation` can have.
fn every_list_set(generation: Option<Generation>) -> Vec<Set<'static>> {
    let mut all = Vec::new();
    for service in ClosableService::ALL {
        for list in [List::Deny, List::Only] {
            for v6 in [false, true] {
                all.push(list_set(list, v6, service, generation));
            }
        }
    }
    all
}

fn ports_set(service: ClosableService) -> Set<'static> {
    let port_type = SetTypeValue::Concatenated(Cow::Owned(vec![SetType::InetProto, SetType::InetService]));
    set_def(format!("ports_{}", service.as_str()), port_type, false)
}

fn port_elems(rule: &ServiceRule) -> Vec<Expression<'static>> {
    [("tcp", &rule.tcp), ("udp", &rule.udp)]
        .into_iter()
        .flat_map(|(proto, list)| {
            list.iter().map(move |p| {
                Expression::Named(NamedExpression::Concat(vec![
                    text(proto.to_string()),
                    Expression::Number(u32::from(*p)),
                ]))
            })
        })
        .collect()
}

/// One set of ranges the rules use: its set, elements and rule.
struct ListSet {
    set: Set<'static>,
    elems: Vec<Expression<'static>>,
    rule: NfObject<'static>,
}

/// The sets of ranges `access` needs under `generation`. An allow-list keeps both
/// families even when one has no ranges (then that family is dropped whole); a
/// deny-list family without ranges is left out.
fn list_sets(access: &CountryAccess, generation: Generation) -> Vec<ListSet> {
    let counter = |service, list| {
        Statement::Counter(Counter::Named(Cow::Owned(drops_counter(service, list == List::Only))))
    };
    let mut out = Vec::new();
    for s in access.services.iter().filter(|s| s.has_ports()) {
        let name = s.service.as_str();
        let ports = format!("ports_{name}");
        let mut lists =
            vec![(List::Deny, &s.deny, Operator::EQ, format!("{name}: never from these countries"))];
        if let Some(only) = &s.only {
            lists.push((List::Only, only, Operator::NEQ, format!("{name}: only from these countries")));
        }
        for (list, ranges, op, comment) in lists {
            for (v6, elems) in [(false, v4_elems(&ranges.v4)), (true, v6_elems(&ranges.v6))] {
                if list == List::Deny && elems.is_empty() {
                    continue;
                }
                let set = list_set(list, v6, s.service, Some(generation));
                let expr = vec![
                    to_service(&ports),
                    saddr(v6, &set.name, op),
                    counter(s.service, list),
                    Statement::Drop(None),
                ];
                out.push(ListSet { set, elems, rule: rule(expr, comment.clone()) });
            }
        }
    }
    out
}

/// The steps that put `access` in the kernel under `generation` (the one the kernel's
/// rules do not use), stamped with `fingerprint`.
pub fn load(access: &CountryAccess, fingerprint: &str, generation: Generation) -> Load {
    let chain = crate::firewall::render::prerouting_chain(TABLE, CHAIN, PRIORITY);
    let mut prepare = vec![cmd(NfCmd::Add(NfListObject::Table(table()))), chain.clone()];
    prepare.extend(every_list_set(Some(generation)).into_iter().flat_map(drop_set));

    let lists = list_sets(access, generation);
    let mut parts: Vec<(&Set<'static>, &[Expression<'static>])> =
        lists.iter().flat_map(|l| l.elems.chunks(FILL_CHUNK).map(move |chunk| (&l.set, chunk))).collect();
    parts.sort_by_key(|(_, chunk)| std::cmp::Reverse(chunk.len()));
    let fills = parts
        .into_iter()
        .map(|(set, chunk)| Nftables {
            objects: Cow::Owned(vec![with_elements(set.clone(), chunk.to_vec())]),
        })
        .collect();

    let flush_chain = cmd(NfCmd::Flush(FlushObject::Chain(Chain {
        family: NfFamily::INet,
        table: Cow::Borrowed(TABLE),
        name: Cow::Borrowed(CHAIN),
        ..Chain::default()
    })));
    let mut commit = vec![chain, flush_chain];
    let stamp = Stamp { built_from: fingerprint.to_string(), generation: Some(generation) };
    let stamp = Elem {
        val: Box::new(text(FINGERPRINT_ELEMENT.into())),
        timeout: None,
        expires: None,
        comment: Some(Cow::Owned(stamp.text())),
        counter: None,
    };
    let stamp = vec![Expression::Named(NamedExpression::Elem(stamp))];
    commit.extend(refill(set_def(FINGERPRINT_SET.into(), addr_type(false), false), stamp));
    let pass = passing(&access.pass);
    for v6 in [false, true] {
        let name = if v6 { "pass6" } else { "pass4" };
        commit.extend(refill(set_def(name.into(), addr_type(v6), true), net_elems(&pass, v6)));
        commit.push(rule(
            vec![saddr(v6, name, Operator::EQ), Statement::Accept(None)],
            "no country rule".into(),
        ));
    }
    for service in ClosableService::ALL {
        let used = access.services.iter().find(|s| s.service == service && s.has_ports());
        match used {
            Some(rule) => commit.extend(refill(ports_set(service), port_elems(rule))),
            None => commit.extend(drop_set(ports_set(service))),
        }
    }
    // The counters stay through reloads (`add` leaves one that exists as it is).
    for s in access.services.iter().filter(|s| s.has_ports()) {
        for only in [true, false] {
            commit.push(cmd(NfCmd::Add(NfListObject::Counter(NamedCounter {
                family: NfFamily::INet,
                table: Cow::Borrowed(TABLE),
                name: Cow::Owned(drops_counter(s.service, only)),
                handle: None,
                packets: None,
                bytes: None,
            }))));
        }
    }
    for l in lists {
        commit.push(add_set(l.set));
        commit.push(l.rule);
    }
    for old in [Some(generation.other()), None] {
        commit.extend(every_list_set(old).into_iter().flat_map(drop_set));
    }
    Load {
        prepare: Nftables { objects: Cow::Owned(prepare) },
        fills,
        commit: Nftables { objects: Cow::Owned(commit) },
    }
}
