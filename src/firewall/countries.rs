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
    Element, NfCmd, NfListObject, NfObject, Nftables, Rule, Set, SetFlag, SetType, SetTypeValue, Table,
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

fn set(name: String, set_type: SetTypeValue<'static>, interval: bool) -> NfObject<'static> {
    let flags: HashSet<SetFlag> = if interval { [SetFlag::Interval].into() } else { HashSet::new() };
    cmd(NfCmd::Add(NfListObject::Set(Box::new(Set {
        family: NfFamily::INet,
        table: Cow::Borrowed(TABLE),
        name: Cow::Owned(name),
        set_type,
        flags: (!flags.is_empty()).then_some(flags),
        ..Set::default()
    }))))
}

fn elements(name: &str, elem: Vec<Expression<'static>>) -> Option<NfObject<'static>> {
    (!elem.is_empty()).then(|| {
        cmd(NfCmd::Add(NfListObject::Element(Element {
            family: NfFamily::INet,
            table: Cow::Borrowed(TABLE),
            name: Cow::Owned(name.to_string()),
            elem: Cow::Owned(elem),
        })))
    })
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

/// The whole table, replacing whatever exists in one transaction.
pub fn ruleset(access: &CountryAccess, fingerprint: &str) -> Nftables<'static> {
    let mut objects = removal().objects.into_owned();
    objects.push(cmd(NfCmd::Add(NfListObject::Table(table()))));
    let addr4 = || SetTypeValue::Single(SetType::Ipv4Addr);
    let addr6 = || SetTypeValue::Single(SetType::Ipv6Addr);
    objects.push(set(FINGERPRINT_SET.into(), addr4(), false));
    let stamp = Elem {
        val: Box::new(text(FINGERPRINT_ELEMENT.into())),
        timeout: None,
        expires: None,
        comment: Some(Cow::Owned(fingerprint.to_string())),
        counter: None,
    };
    objects.extend(elements(FINGERPRINT_SET, vec![Expression::Named(NamedExpression::Elem(stamp))]));
    objects.push(set("pass4".into(), addr4(), true));
    objects.push(set("pass6".into(), addr6(), true));
    objects.push(super::render::prerouting_chain(TABLE, CHAIN, PRIORITY));
    let pass = passing(&access.pass);
    objects.extend(elements("pass4", net_elems(&pass, false)));
    objects.extend(elements("pass6", net_elems(&pass, true)));
    objects.push(rule(
        vec![saddr(false, "pass4", Operator::EQ), Statement::Accept(None)],
        "no country rule".into(),
    ));
    objects.push(rule(
        vec![saddr(true, "pass6", Operator::EQ), Statement::Accept(None)],
        "no country rule".into(),
    ));
    let counter = || Statement::Counter(Counter::Anonymous(None));
    for s in &access.services {
        if s.tcp.is_empty() && s.udp.is_empty() {
            continue;
        }
        let name = s.service.as_str();
        let ports = format!("ports_{name}");
        let port_type =
            SetTypeValue::Concatenated(Cow::Owned(vec![SetType::InetProto, SetType::InetService]));
        objects.push(set(ports.clone(), port_type, false));
        let port_elems = [("tcp", &s.tcp), ("udp", &s.udp)]
            .into_iter()
            .flat_map(|(proto, list)| {
                list.iter().map(move |p| {
                    Expression::Named(NamedExpression::Concat(vec![
                        text(proto.to_string()),
                        Expression::Number(u32::from(*p)),
                    ]))
                })
            })
            .collect();
        objects.extend(elements(&ports, port_elems));
        let mut lists = vec![("deny", &s.deny, Operator::EQ, format!("{name}: never from these countries"))];
        if let Some(only) = &s.only {
            lists.push(("only", only, Operator::NEQ, format!("{name}: only from these countries")));
        }
        for (kind, ranges, op, comment) in lists {
            for (family, v6, elems) in [("4", false, v4_elems(&ranges.v4)), ("6", true, v6_elems(&ranges.v6))]
            {
                let set_name = format!("{kind}{family}_{name}");
                objects.push(set(set_name.clone(), if v6 { addr6() } else { addr4() }, true));
                objects.extend(elements(&set_name, elems));
                let expr =
                    vec![to_service(&ports), saddr(v6, &set_name, op), counter(), Statement::Drop(None)];
                objects.push(rule(expr, comment.clone()));
            }
        }
    }
    Nftables { objects: Cow::Owned(objects) }
}

/// The fingerprint in `nft -j list set inet sipwarden_countries fingerprint`.
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

    #[test]
    fn an_allow_list_becomes_interval_sets_and_drops_the_rest_of_the_services_ports_only() {
        let json = serde_json::to_value(ruleset(&sip(Some(de()), CountryRanges::default()), "fp")).unwrap();
        let text = json.to_string();
        assert!(text.contains(r#"{"range":["1.2.3.0","1.2.3.255"]}"#), "{text}");
        assert!(text.contains(r#""5.5.5.5""#), "a one-address range is an address");
        assert!(text.contains(r#"{"range":["100::","100::ff"]}"#));
        assert!(text.contains(r#"{"concat":["udp",5061]}"#) && text.contains(r#"{"concat":["tcp",5060]}"#));
        assert!(text.contains(r#""op":"!=","right":"@only4_sip""#), "only-list: not in it → drop");
        assert!(text.contains(r#""comment":"fp""#));
        let listed: Nftables = serde_json::from_value(serde_json::json!({"nftables": [{"set": {
            "family": "inet", "name": "fingerprint", "table": TABLE, "type": "ipv4_addr",
            "elem": [{"elem": {"val": "0.0.0.1", "comment": "fp"}}]}}]}))
        .unwrap();
        assert_eq!(fingerprint_of(&listed).as_deref(), Some("fp"), "read back as nft lists it");
        // The office's own networks and private space pass first; 10.1/16 lies in 10/8.
        assert!(text.contains(r#"{"prefix":{"addr":"10.0.0.0","len":8}}"#));
        assert!(!text.contains(r#""addr":"10.1.0.0""#), "overlapping networks merged");
        assert!(text.contains(r#"{"prefix":{"addr":"192.0.2.0","len":24}}"#));
        let without = serde_json::to_value(ruleset(&sip(None, de()), "fp")).unwrap().to_string();
        assert!(!without.contains("only4_sip") && without.contains(r#""op":"==","right":"@deny4_sip""#));
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
