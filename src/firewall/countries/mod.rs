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

mod load;
#[cfg(test)]
mod tests;

use std::borrow::Cow;
use std::hash::{BuildHasher, Hash, Hasher};

use ipnet::IpNet;
use nftables::expr::{Expression, NamedExpression};
use nftables::schema::{NfCmd, NfListObject, NfObject, Nftables, Table};
use nftables::types::NfFamily;

use crate::domain::ClosableService;

pub use load::{Load, load};

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

/// Packets one service's country rules dropped: the rules of both families count into
/// one named counter per list, which the enforcer reads and resets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dropped {
    pub service: ClosableService,
    /// The only-list's rules (`false`: the never-list's).
    pub only: bool,
    pub packets: u64,
}

/// The named counter of a service's only-list or never-list.
pub fn drops_counter(service: ClosableService, only: bool) -> String {
    format!("dropped_{}_{}", service.as_str(), if only { "only" } else { "never" })
}

/// The counters in what `nft -j reset counters table inet sipwarden_countries` printed.
pub fn dropped_of(json: &str) -> Result<Vec<Dropped>, String> {
    let listing: serde_json::Value = serde_json::from_str(json).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for item in listing["nftables"].as_array().into_iter().flatten() {
        let Some(counter) = item.get("counter").filter(|c| c["table"] == TABLE) else {
            continue;
        };
        let name = counter["name"].as_str().unwrap_or_default();
        let which = ClosableService::ALL
            .into_iter()
            .flat_map(|s| [(s, true), (s, false)])
            .find(|(s, only)| drops_counter(*s, *only) == name);
        if let (Some((service, only)), Some(packets)) = (which, counter["packets"].as_u64()) {
            out.push(Dropped { service, only, packets });
        }
    }
    Ok(out)
}

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

impl ServiceRule {
    /// A service without ports (none configured) gets no rules.
    pub(super) fn has_ports(&self) -> bool {
        !self.tcp.is_empty() || !self.udp.is_empty()
    }
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
        let (built_from, generation) = match comment.rsplit_once(GENERATION_MARK) {
            Some((from, "a")) => (from, Some(Generation::A)),
            Some((from, "b")) => (from, Some(Generation::B)),
            _ => (comment, None),
        };
        Stamp { built_from: built_from.to_string(), generation }
    }

    pub(super) fn text(&self) -> String {
        match self.generation {
            Some(g) => format!("{}{GENERATION_MARK}{}", self.built_from, g.suffix()),
            None => self.built_from.clone(),
        }
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
