//! The IP → country table of Tor's `geoip` / `geoip6` files (IPFire Location data, as
//! Debian's `tor-geoipdb` ships it): `start,end,CC` lines, IPv4 bounds as integers,
//! IPv6 bounds as addresses; `??` is no country. Pure: text in, lookups out.

use std::net::{IpAddr, Ipv6Addr};

use super::Country;

/// An address as a number: IPv4 or IPv6.
pub trait Key: Copy + Ord + Into<u128> {
    const BITS: u32;

    /// The top [`INDEX_BITS`] bits: which slot of the index the address is in.
    fn slot(self) -> usize {
        (self.into() >> (Self::BITS - INDEX_BITS)) as usize
    }
}

impl Key for u32 {
    const BITS: u32 = 32;
}

impl Key for u128 {
    const BITS: u32 = 128;
}

/// The index has a slot per value of an address's top 16 bits (256 KiB a family).
const INDEX_BITS: u32 = 16;

/// Disjoint ranges sorted by start, one array per field (a lookup touches the starts
/// only until it has its range).
#[derive(Debug, Default)]
pub struct Ranges<T> {
    starts: Vec<T>,
    ends: Vec<T>,
    countries: Vec<Country>,
    /// For each slot, the first range starting in it or after: a lookup searches the
    /// few ranges of its slot rather than all of them. Built by [`Ranges::finish`].
    index: Vec<u32>,
}

impl<T: Key> Ranges<T> {
    fn push(&mut self, start: T, end: T, country: Country) {
        self.starts.push(start);
        self.ends.push(end);
        self.countries.push(country);
    }

    /// Appends a range after the last one, joined to it when it continues it for the
    /// same country (the networks of a MaxMind database come in address order).
    pub(super) fn push_joined(&mut self, start: T, end: T, country: Country) {
        let continues = match (self.ends.last(), self.countries.last()) {
            (Some(&last), Some(&c)) => c == country && last.into().checked_add(1) == Some(start.into()),
            _ => false,
        };
        match self.ends.last_mut() {
            Some(last) if continues => *last = end,
            _ => self.push(start, end, country),
        }
    }

    fn lookup(&self, at: T) -> Option<Country> {
        let slot = at.slot();
        let (first, next) = match (self.index.get(slot), self.index.get(slot + 1)) {
            (Some(&first), Some(&next)) => (first as usize, next as usize),
            _ => (0, self.starts.len()),
        };
        // The last range starting at or before `at`: one of this slot's, or else the
        // last range before it (which may reach into it).
        let i = (first + self.starts[first..next].partition_point(|&s| s <= at)).checked_sub(1)?;
        (at <= self.ends[i]).then(|| self.countries[i])
    }

    /// Sorts by start; an overlapping range (a malformed file) is dropped.
    pub(super) fn finish(&mut self) -> usize {
        let mut order: Vec<usize> = (0..self.starts.len()).collect();
        order.sort_by_key(|&i| self.starts[i]);
        let mut out =
            Ranges { starts: Vec::new(), ends: Vec::new(), countries: Vec::new(), index: Vec::new() };
        let mut dropped = 0;
        for i in order {
            if out.ends.last().is_some_and(|&end| self.starts[i] <= end) {
                dropped += 1;
                continue;
            }
            out.push(self.starts[i], self.ends[i], self.countries[i]);
        }
        let slots = 1usize << INDEX_BITS;
        out.index = (0..=slots)
            .map(|slot| out.starts.partition_point(|s| s.slot() < slot).min(u32::MAX as usize) as u32)
            .collect();
        *self = out;
        dropped
    }

    pub fn len(&self) -> usize {
        self.starts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.starts.is_empty()
    }

    /// Every range of `country`, as (start, end).
    pub fn of(&self, country: Country) -> impl Iterator<Item = (T, T)> + '_ {
        (0..self.len()).filter(move |&i| self.countries[i] == country).map(|i| (self.starts[i], self.ends[i]))
    }

    fn bytes(&self) -> usize {
        self.len() * (2 * std::mem::size_of::<T>() + std::mem::size_of::<Country>()) + self.index.len() * 4
    }

    /// The ranges of the countries `wanted` picks, adjacent ones joined: the fewest
    /// intervals that cover them, in order.
    pub fn merged(&self, wanted: impl Fn(Country) -> bool) -> Vec<(T, T)> {
        let mut out: Vec<(T, T)> = Vec::new();
        for i in (0..self.len()).filter(|&i| wanted(self.countries[i])) {
            let (start, end) = (self.starts[i], self.ends[i]);
            match out.last_mut() {
                Some(last) if last.1.into().checked_add(1) == Some(start.into()) => last.1 = end,
                _ => out.push((start, end)),
            }
        }
        out
    }

    /// How many ranges the countries `wanted` picks hold, and how many addresses.
    pub fn coverage(&self, wanted: impl Fn(Country) -> bool) -> (usize, u128) {
        (0..self.len()).filter(|&i| wanted(self.countries[i])).fold((0, 0), |(n, addresses), i| {
            (n + 1, addresses.saturating_add(self.ends[i].into() - self.starts[i].into() + 1))
        })
    }

    /// Every country with at least one range.
    pub fn countries(&self) -> impl Iterator<Item = Country> + '_ {
        self.countries.iter().copied()
    }
}

/// Both families of a Tor geoip database.
#[derive(Debug, Default)]
pub struct Table {
    pub v4: Ranges<u32>,
    pub v6: Ranges<u128>,
    /// Lines that could not be read (counted, skipped).
    pub unreadable: usize,
}

impl Table {
    /// Reads the `geoip` (IPv4) and `geoip6` (IPv6) texts; either may be empty.
    pub fn parse(v4: &str, v6: &str) -> Table {
        let mut table = Table::default();
        for line in data_lines(v4) {
            match parse_line(line, |s| s.parse::<u32>().ok()) {
                Some(Some((start, end, cc))) => table.v4.push(start, end, cc),
                Some(None) => {}
                None => table.unreadable += 1,
            }
        }
        for line in data_lines(v6) {
            match parse_line(line, |s| s.parse::<Ipv6Addr>().ok().map(u128::from)) {
                Some(Some((start, end, cc))) => table.v6.push(start, end, cc),
                Some(None) => {}
                None => table.unreadable += 1,
            }
        }
        table.unreadable += table.v4.finish() + table.v6.finish();
        table
    }

    pub fn lookup(&self, ip: IpAddr) -> Option<Country> {
        match ip {
            IpAddr::V4(v4) => self.v4.lookup(u32::from(v4)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => self.v4.lookup(u32::from(v4)),
                None => self.v6.lookup(u128::from(v6)),
            },
        }
    }

    /// Memory the ranges take.
    pub fn bytes(&self) -> usize {
        self.v4.bytes() + self.v6.bytes()
    }
}

fn data_lines(text: &str) -> impl Iterator<Item = &str> {
    text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#'))
}

/// `Some(None)`: a range of no country (`??`); `None`: not a range line.
#[allow(clippy::option_option)]
fn parse_line<T: Ord>(line: &str, bound: impl Fn(&str) -> Option<T>) -> Option<Option<(T, T, Country)>> {
    let mut fields = line.split(',');
    let (start, end, cc) = (fields.next()?, fields.next()?, fields.next()?);
    if fields.next().is_some() {
        return None;
    }
    let (start, end) = (bound(start.trim())?, bound(end.trim())?);
    if start > end {
        return None;
    }
    match cc.trim() {
        "??" => Some(None),
        cc => Some(Some((start, end, Country::parse(cc)?))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const V4: &str = "# converted from the IPFire Location database\n\
                      16777216,16777471,AU\n16777472,16778239,CN\n15726992,15726999,??\n\
                      3405803776,3405804031,AU\nnot,a,line\n";
    const V6: &str = "2001::,2001:0:ffff:ffff:ffff:ffff:ffff:ffff,??\n\
                      2001:4:112::,2001:4:112:ffff:ffff:ffff:ffff:ffff,US\n";

    fn at(table: &Table, ip: &str) -> Option<String> {
        table.lookup(ip.parse().unwrap()).map(|c| c.to_string())
    }

    #[test]
    fn addresses_get_the_country_of_their_range_and_gaps_none() {
        let t = Table::parse(V4, V6);
        assert_eq!(at(&t, "1.0.0.0").as_deref(), Some("AU"), "16777216 is 1.0.0.0");
        assert_eq!(at(&t, "1.0.0.255").as_deref(), Some("AU"));
        assert_eq!(at(&t, "1.0.1.0").as_deref(), Some("CN"));
        assert_eq!(at(&t, "1.0.4.0"), None, "past the last CN range");
        assert_eq!(at(&t, "0.239.251.144"), None, "?? is no country");
        assert_eq!(at(&t, "2001:4:112::1").as_deref(), Some("US"));
        assert_eq!(at(&t, "::ffff:1.0.1.9").as_deref(), Some("CN"), "a v4-mapped address is its v4 one");
        assert_eq!(at(&t, "2001::1"), None);
        assert_eq!(t.unreadable, 1);
        assert_eq!(t.v4.of(Country::parse("AU").unwrap()).count(), 2);
    }

    #[test]
    fn a_countrys_adjacent_ranges_become_one_interval_and_others_split_them() {
        let t = Table::parse("10,19,DE\n20,29,DE\n30,39,FR\n40,49,DE\n60,69,AT\n", "");
        assert_eq!(t.v4.merged(|c| c.as_str() == "DE"), [(10, 29), (40, 49)]);
        assert_eq!(t.v4.merged(|c| c.as_str() != "FR"), [(10, 29), (40, 49), (60, 69)]);
        assert_eq!(t.v4.merged(|c| c.as_str() != "AT"), [(10, 49)]);
        assert_eq!(t.v4.coverage(|c| c.as_str() == "DE"), (3, 30));
        assert!(t.v4.merged(|_| false).is_empty());
    }

    #[test]
    fn overlapping_and_reversed_ranges_are_refused_not_trusted() {
        let t = Table::parse("100,200,FR\n150,300,DE\n400,350,IT\n", "");
        assert_eq!(t.v4.len(), 1);
        assert_eq!(t.unreadable, 2);
        assert_eq!(at(&t, "0.0.0.250"), None);
    }

    proptest::proptest! {
        /// The index only narrows the search: every address gets what a scan of all
        /// ranges gives, at slot edges and for ranges across many slots too.
        #[test]
        fn the_index_finds_what_a_scan_of_every_range_finds(
            bounds in proptest::collection::vec((0u32..=u32::MAX, 0u32..(1 << 20)), 1..200),
            probes in proptest::collection::vec(0u32..=u32::MAX, 50),
        ) {
            let text: String = bounds
                .iter()
                .enumerate()
                .map(|(i, (start, len))| format!("{start},{},{}\n", start.saturating_add(*len), ["DE", "FR", "CN"][i % 3]))
                .collect();
            let t = Table::parse(&text, "");
            let edges = bounds.iter().flat_map(|(s, l)| [*s, s.saturating_add(*l), s.saturating_add(l + 1), s.wrapping_sub(1)]);
            let slot_edges = probes.iter().flat_map(|p| [p & 0xffff_0000, p | 0xffff]);
            for ip in probes.iter().copied().chain(edges).chain(slot_edges) {
                let scanned = (0..t.v4.len()).find(|&i| t.v4.starts[i] <= ip && ip <= t.v4.ends[i]).map(|i| t.v4.countries[i]);
                proptest::prop_assert_eq!(t.v4.lookup(ip), scanned, "{}", std::net::Ipv4Addr::from(ip));
            }
        }
    }
}
