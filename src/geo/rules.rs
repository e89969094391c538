//! What a change of the country rules admits or drops, counted in the database.
//! Pure; the rules themselves are `domain::CountryRules`.

pub use crate::domain::{CountryRules, ServiceCountries};

use super::{Country, Table};

/// Ranges and addresses of a part of the database.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Coverage {
    pub ranges: usize,
    pub ipv4_addresses: u128,
}

/// What changing one service's rules from `before` to `after` does.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Effect {
    pub dropped: Coverage,
    pub admitted: Coverage,
    /// Countries newly dropped and newly admitted.
    pub dropped_countries: usize,
    pub admitted_countries: usize,
    /// Addresses the database places in no country: dropped (`Some(true)`) or admitted
    /// (`Some(false)`) by the change.
    pub unplaced: Option<bool>,
}

pub fn effect(table: &Table, before: &ServiceCountries, after: &ServiceCountries) -> Effect {
    let count = |pick: &dyn Fn(Country) -> bool| {
        let (r4, a4) = table.v4.coverage(pick);
        let (r6, _) = table.v6.coverage(pick);
        Coverage { ranges: r4 + r6, ipv4_addresses: a4 }
    };
    let dropping = |c: Country| !before.blocks(Some(c)) && after.blocks(Some(c));
    let admitting = |c: Country| before.blocks(Some(c)) && !after.blocks(Some(c));
    let mut countries: Vec<Country> = table.v4.countries().chain(table.v6.countries()).collect();
    countries.sort();
    countries.dedup();
    let (was, is) = (before.blocks(None), after.blocks(None));
    Effect {
        dropped: count(&dropping),
        admitted: count(&admitting),
        dropped_countries: countries.iter().filter(|c| dropping(**c)).count(),
        admitted_countries: countries.iter().filter(|c| admitting(**c)).count(),
        unplaced: (was != is).then_some(is),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_effect_counts_the_ranges_and_addresses_a_change_drops_and_admits() {
        let t = Table::parse("0,255,DE\n256,511,FR\n512,1023,CN\n1024,1279,DE\n", "::1,::2,CN\n");
        let none = ServiceCountries::default();
        let de = ServiceCountries::parse("DE", "").unwrap();
        let e = effect(&t, &none, &de);
        assert_eq!(e.dropped, Coverage { ranges: 3, ipv4_addresses: 256 + 512 });
        assert_eq!((e.dropped_countries, e.admitted_countries), (2, 0));
        assert_eq!(e.admitted, Coverage::default());
        assert_eq!(e.unplaced, Some(true));
        let back = effect(&t, &de, &ServiceCountries::parse("", "CN").unwrap());
        assert_eq!(back.admitted, Coverage { ranges: 1, ipv4_addresses: 256 });
        assert_eq!(back.dropped, Coverage::default(), "CN was dropped already");
        assert_eq!(back.unplaced, Some(false));
    }
}
