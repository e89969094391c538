//! The `inet sipwarden_countries` table: which countries may reach each service. Pure
//! functions.
//!
//! A table of its own beside the bans' table: an allow-list of the EU is a hundred
//! thousand ranges, rebuilt only when the rules or the country database change (never
//! with a ban), and never read back when the bans are listed. Its chain runs right
//! after the bans' chain; it accepts the allowed networks (trusted, extension, trunk)
//! and addresses that have no country (private, loopback, link-local) before any
//! country rule. The comment of the `fingerprint` set's one element says what the
//! table was built from, so the enforcer checks it without listing a single range
//! (nft 1.0.6 drops a set's own comment given in JSON; an element's it keeps).

use std::borrow::Cow;
use std::collections::HashSet;
use std::hash::{BuildHasher, Hash, Hasher};
use std::net::{Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;
use nftables::expr::{
    Elem, Expression, Meta, MetaKey, NamedExpression, Payload, PayloadField, Prefix, Range,
};
use nftables::schema::{
    Chain, FlushObject, NfCmd, NfListObject, NfObject, Nftables, Rule, Set, SetFlag, SetType, SetTypeValue,
    Table,
};
use nftables::stmt::{Counter, Match, Operator, Statement};
use nftables::types::NfFamily;

use crate::domain::ClosableService;

pub const TABLE: &str = "sipwarden_countries";
pub const CHAIN: &str = "by_country";
/// Right after the bans' chain (-300).
pub const PRIORITY: i32 = -299;
pub const FINGERPRINT_SET: &str = "fingerprint";
/// The one element of the fingerprint set, which carries the comment.
const FINGERPRINT_ELEMENT: &str = "0.0.0.1";

/// Addresses no country database places: always let through the country rules.
pub const NO_COUNTRY: [&str; 11] = [
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "::1/128",
    "fc00::/7",
    "fe80::/10",
    "::ffff:0:0/96",
];

/// Merged ranges of some countries, both families.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct CountryRanges {
    pub v4: Vec<(u32, u32)>,
    pub v6: Vec<(u128, u128)>,
}

impl CountryRanges {
    pub fn len(&self) -> usize {
        self.v4.len() + self.v6.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One service's country rules, resolved to ranges.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ServiceRule {
    pub service: ClosableService,
    pub tcp: Vec<u16>,
    pub udp: Vec<u16>,
    /// `Some`: only these ranges may reach the service.
    pub only: Option<CountryRanges>,
    pub deny: CountryRanges,
}

/// What the table holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct CountryAccess {
    /// Networks the rules never drop (trusted, extension and trunk networks).
    pub pass: Vec<IpNet>,
    pub services: Vec<ServiceRule>,
}

impl CountryAccess {
    /// Ranges in every set, as a measure of the table's size.
    pub fn ranges(&self) -> usize {
        self.services.iter().map(|s| s.deny.len() + s.only.as_ref().map_or(0, CountryRanges::len)).sum()
    }

    /// What the table is built from, as its `fingerprint` set's comment says: the
    /// database it belongs to and a digest of everything in it.
    pub fn fingerprint(&self, owner: &str) -> String {
        let mut h = foldhash::fast::FixedState::with_seed(0x5157_4152_4445_4e00).build_hasher();
        owner.hash(&mut h);
        self.hash(&mut h);
        format!("{} ranges, {:016x}", self.ranges(), h.finish())
    }
}

/// Two sets of names for the sets of ranges. A new table of ranges fills the sets of
/// the generation not in use while the rules keep using the other, then one small
/// transaction points the rules at the new sets and deletes the old ones: the rules
/// never go without ranges, and the big sets can be filled by several `nft` at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Generation {
    A,
    B,
}

impl Generation {
    fn suffix(self) -> &'static str {
        match self {
            Generation::A => "a",
            Generation::B => "b",
        }
    }

    pub fn other(self) -> Generation {
        match self {
            Generation::A => Generation::B,
            Generation::B => Generation::A,
        }
    }
}

/// What the fingerprint element's comment says: what the table was built from, and
/// which generation of sets its rules use (none in tables from before generations).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamp {
    pub built_from: String,
    pub generation: Option<Generation>,
}

const GENERATION_MARK: &str = "; sets ";

impl Stamp {
    pub fn parse(comment: &str) -> Stamp {
        let generation = match comment.rsplit_once(GENERATION_MARK) {
            Some((from, "a")) => Some((from, Generation::A)),
            Some((from, "b")) => Some((from, Generation::B)),
            _ => None,
        };
        match generation {
            Some((from, g)) => Stamp { built_from: from.to_string(), generation: Some(g) },
            None => Stamp { built_from: comment.to_string(), generation: None },
        }
    }

    fn text(&self) -> String {
        match self.generation {
            Some(g) => format!("{}{GENERATION_MARK}{}", self.built_from, g.suffix()),
            None => self.built_from.clone(),
        }
    }
}

/// Ranges per fill transaction: the parts of a big set go to the kernel through
/// several `nft` at once, and `add set` with elements adds to what a set holds
/// without nft reading it first. Chunks of this size keep two cores busy to the end.
const FILL_CHUNK: usize = 16_384;

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

fn cmd(c: NfCmd<'static>) -> NfObject<'static> {
    NfObject::CmdObject(c)
}

fn table() -> Table<'static> {
    Table { family: NfFamily::INet, name: Cow::Borrowed(TABLE), handle: None }
}

/// Deletes the table if it exists (`add` first makes the delete valid either way).
pub fn removal() -> Nftables<'static> {
    let objects =
        vec![cmd(NfCmd::Add(NfListObject::Table(table()))), cmd(NfCmd::Delete(NfListObject::Table(table())))];
    Nftables { objects: Cow::Owned(objects) }
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
    let counter = || Statement::Counter(Counter::Anonymous(None));
    let mut out = Vec::new();
    for s in access.services.iter().filter(|s| !s.tcp.is_empty() || !s.udp.is_empty()) {
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
                let expr =
                    vec![to_service(&ports), saddr(v6, &set.name, op), counter(), Statement::Drop(None)];
                out.push(ListSet { set, elems, rule: rule(expr, comment.clone()) });
            }
        }
    }
    out
}

/// The steps that put `access` in the kernel under `generation` (the one the kernel's
/// rules do not use), stamped with `fingerprint`.
pub fn load(access: &CountryAccess, fingerprint: &str, generation: Generation) -> Load {
    let chain = super::render::prerouting_chain(TABLE, CHAIN, PRIORITY);
    let mut prepare = vec![cmd(NfCmd::Add(NfListObject::Table(table()))), chain.clone()];
    prepare.extend(every_list_set(Some(generation)).into_iter().flat_map(drop_set));

    let lists = list_sets(access, generation);
    let mut fills: Vec<(usize, Nftables<'static>)> = lists
        .iter()
        .flat_map(|l| {
            l.elems
                .chunks(FILL_CHUNK)
                .map(|chunk| (chunk.len(), with_elements(l.set.clone(), chunk.to_vec())))
        })
        .map(|(n, command)| (n, Nftables { objects: Cow::Owned(vec![command]) }))
        .collect();
    fills.sort_by_key(|(n, _)| std::cmp::Reverse(*n));
    let fills = fills.into_iter().map(|(_, fill)| fill).collect();

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
        let used =
            access.services.iter().find(|s| s.service == service && (!s.tcp.is_empty() || !s.udp.is_empty()));
        match used {
            Some(rule) => commit.extend(refill(ports_set(service), port_elems(rule))),
            None => commit.extend(drop_set(ports_set(service))),
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

/// The stamp in `nft -j list set inet sipwarden_countries fingerprint`.
pub fn fingerprint_of(listing: &Nftables<'_>) -> Option<String> {
    listing.objects.iter().find_map(|o| match o {
        NfObject::ListObject(NfListObject::Set(s)) if s.table == TABLE && s.name == FINGERPRINT_SET => {
            s.elem.as_ref().and_then(|e| stamp_of(e))
        }
        _ => None,
    })
}

/// The comment of the fingerprint element among `elems`.
pub fn stamp_of(elems: &[Expression<'_>]) -> Option<String> {
    elems.iter().find_map(|e| match e {
        Expression::Named(NamedExpression::Elem(el)) => el.comment.as_ref().map(|c| c.to_string()),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sip(only: Option<CountryRanges>, deny: CountryRanges) -> CountryAccess {
        CountryAccess {
            pass: vec!["192.0.2.0/24".parse().unwrap(), "10.1.0.0/16".parse().unwrap()],
            services: vec![ServiceRule {
                service: ClosableService::Sip,
                tcp: vec![5060],
                udp: vec![5060, 5061],
                only,
                deny,
            }],
        }
    }

    fn de() -> CountryRanges {
        CountryRanges {
            v4: vec![(0x0102_0300, 0x0102_03ff), (0x0505_0505, 0x0505_0505)],
            v6: vec![(1 << 120, (1 << 120) + 255)],
        }
    }

    fn json(n: &Nftables<'_>) -> String {
        serde_json::to_string(n).unwrap()
    }

    #[test]
    fn an_allow_list_becomes_interval_sets_and_drops_the_rest_of_the_services_ports_only() {
        let steps = load(&sip(Some(de()), CountryRanges::default()), "fp", Generation::B);
        let fills: Vec<String> = steps.fills.iter().map(json).collect();
        assert_eq!(fills.len(), 2, "one transaction per family's set; empty deny sets are left out");
        assert!(fills[0].contains(r#""name":"only4_sip_b""#), "largest first: {fills:?}");
        assert!(fills[0].contains(r#"{"range":["1.2.3.0","1.2.3.255"]}"#), "{}", fills[0]);
        assert!(fills[0].contains(r#""5.5.5.5""#), "a one-address range is an address");
        assert!(fills[1].contains(r#"{"range":["100::","100::ff"]}"#));
        let commit = json(&steps.commit);
        assert!(
            commit.contains(r#"{"concat":["udp",5061]}"#) && commit.contains(r#"{"concat":["tcp",5060]}"#)
        );
        assert!(commit.contains(r#""right":"@only4_sip_b","op":"!=""#), "only-list: not in it → drop");
        assert!(!commit.contains("deny4_sip_b"), "no deny list, no deny rule");
        assert!(commit.contains(r#""comment":"fp; sets b""#), "{commit}");
        // The office's own networks and private space pass first; 10.1/16 lies in 10/8.
        assert!(commit.contains(r#"{"prefix":{"addr":"10.0.0.0","len":8}}"#));
        assert!(!commit.contains(r#""addr":"10.1.0.0""#), "overlapping networks merged");
        assert!(commit.contains(r#"{"prefix":{"addr":"192.0.2.0","len":24}}"#));
        let deny_only = json(&load(&sip(None, de()), "fp", Generation::A).commit);
        assert!(
            !deny_only.contains("only4_sip_a") && deny_only.contains(r#""right":"@deny4_sip_a","op":"==""#)
        );
    }

    #[test]
    fn an_allow_list_without_ranges_of_a_family_still_drops_that_family() {
        let v4_only = CountryRanges { v4: de().v4, v6: Vec::new() };
        let steps = load(&sip(Some(v4_only), CountryRanges::default()), "fp", Generation::A);
        assert_eq!(steps.fills.len(), 1);
        let commit = json(&steps.commit);
        assert!(commit.contains(r#""right":"@only6_sip_a""#), "IPv6 not in the (empty) list: dropped");
    }

    #[test]
    fn the_commit_switches_the_rules_and_deletes_the_other_generation_and_older_sets() {
        let steps = load(&sip(Some(de()), de()), "fp", Generation::A);
        let commit = &steps.commit.objects;
        let flush_chain = commit
            .iter()
            .position(|o| matches!(o, NfObject::CmdObject(NfCmd::Flush(FlushObject::Chain(_)))))
            .expect("the chain is flushed");
        let deleted: Vec<(usize, String)> = commit
            .iter()
            .enumerate()
            .filter_map(|(i, o)| match o {
                NfObject::CmdObject(NfCmd::Delete(NfListObject::Set(s))) => Some((i, s.name.to_string())),
                _ => None,
            })
            .collect();
        for name in ["only4_sip_b", "deny6_sip_b", "only4_sip", "deny4_panel", "ports_iax2"] {
            assert!(deleted.iter().any(|(_, n)| n == name), "{name} deleted: {deleted:?}");
        }
        assert!(deleted.iter().all(|(i, n)| *i > flush_chain && !n.ends_with("_a")), "{deleted:?}");
        let last_rule = commit
            .iter()
            .rposition(|o| matches!(o, NfObject::CmdObject(NfCmd::Add(NfListObject::Rule(_)))))
            .unwrap();
        assert!(last_rule > flush_chain);
        // The fills' sets are cleared before they are filled, not the ones in use.
        let prepare = json(&steps.prepare);
        assert!(prepare.contains(
            r#""delete":{"set":{"family":"inet","table":"sipwarden_countries","name":"only4_sip_a""#
        ));
        assert!(!prepare.contains("_b\"") && !prepare.contains(r#""name":"only4_sip""#), "{prepare}");
    }

    #[test]
    fn a_big_set_is_filled_in_parts_that_together_hold_every_range() {
        let many: Vec<(u32, u32)> = (0..FILL_CHUNK as u32 * 2 + 5).map(|i| (i * 4, i * 4 + 1)).collect();
        let access = sip(Some(CountryRanges { v4: many.clone(), v6: de().v6 }), CountryRanges::default());
        let steps = load(&access, "fp", Generation::A);
        let parts: Vec<(String, usize)> = steps
            .fills
            .iter()
            .map(|f| match &f.objects[0] {
                NfObject::CmdObject(NfCmd::Add(NfListObject::Set(s))) => {
                    (s.name.to_string(), s.elem.as_ref().map_or(0, |e| e.len()))
                }
                other => panic!("{other:?}"),
            })
            .collect();
        let v4: Vec<usize> = parts.iter().filter(|(n, _)| n == "only4_sip_a").map(|(_, len)| *len).collect();
        assert_eq!(v4, [FILL_CHUNK, FILL_CHUNK, 5], "largest first");
        assert_eq!(parts.last(), Some(&("only6_sip_a".to_string(), 1)));
        assert_eq!(v4.iter().sum::<usize>(), many.len());
    }

    #[test]
    fn no_transaction_adds_elements_with_add_element() {
        // nft 1.0.6 reads every interval set in the kernel before an `add element`.
        let steps = load(&sip(Some(de()), de()), "fp", Generation::A);
        for t in steps.fills.iter().chain([&steps.prepare, &steps.commit]) {
            assert!(!json(t).contains(r#"{"add":{"element""#), "{}", json(t));
        }
    }

    #[test]
    fn a_stamp_says_what_the_table_was_built_from_and_which_sets_it_uses() {
        let s = Stamp::parse("3 ranges, 00ff; sets b");
        assert_eq!((s.built_from.as_str(), s.generation), ("3 ranges, 00ff", Some(Generation::B)));
        assert_eq!(s.text(), "3 ranges, 00ff; sets b");
        let older = Stamp::parse("3 ranges, 00ff");
        assert_eq!((older.built_from.as_str(), older.generation), ("3 ranges, 00ff", None));
        let listed: Nftables = serde_json::from_value(serde_json::json!({"nftables": [{"set": {
            "family": "inet", "name": "fingerprint", "table": TABLE, "type": "ipv4_addr",
            "elem": [{"elem": {"val": "0.0.0.1", "comment": "fp; sets a"}}]}}]}))
        .unwrap();
        assert_eq!(fingerprint_of(&listed).as_deref(), Some("fp; sets a"), "read back as nft lists it");
    }

    #[test]
    fn the_fingerprint_changes_with_any_range_port_network_or_owner() {
        let a = sip(Some(de()), CountryRanges::default());
        assert_eq!(a.fingerprint("db"), a.fingerprint("db"));
        assert!(a.fingerprint("db").starts_with("3 ranges, "));
        assert_ne!(a.fingerprint("db"), a.fingerprint("other db"));
        let mut b = a.clone();
        b.services[0].only.as_mut().unwrap().v4[1].1 += 1;
        assert_ne!(a.fingerprint("db"), b.fingerprint("db"));
        let mut c = a.clone();
        c.services[0].udp.push(5062);
        assert_ne!(a.fingerprint("db"), c.fingerprint("db"));
        let mut d = a.clone();
        d.pass.pop();
        assert_ne!(a.fingerprint("db"), d.fingerprint("db"));
    }
}
