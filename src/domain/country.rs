//! Countries as ISO codes, and who may reach each service by country: the admin's
//! rules (`CountryRules`), stored as they are, rendered by the firewall, judged here.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::ClosableService;

/// An ISO 3166 two-letter code, upper case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Country([u8; 2]);

impl TryFrom<String> for Country {
    type Error = String;
    fn try_from(text: String) -> Result<Country, String> {
        Country::parse(&text).ok_or_else(|| format!("{text:?} is no country code"))
    }
}

impl From<Country> for String {
    fn from(c: Country) -> String {
        c.to_string()
    }
}

impl Country {
    /// `de` or `DE` → `DE`; anything but two ASCII letters → `None`.
    pub fn parse(text: &str) -> Option<Country> {
        match text.as_bytes() {
            [a, b] if a.is_ascii_alphabetic() && b.is_ascii_alphabetic() => {
                Some(Country([a.to_ascii_uppercase(), b.to_ascii_uppercase()]))
            }
            _ => None,
        }
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or("??")
    }
}

impl std::fmt::Display for Country {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The country rules of one service.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceCountries {
    /// Not empty: only these countries may reach the service.
    #[serde(default)]
    pub only: Vec<Country>,
    /// Never these countries.
    #[serde(default)]
    pub deny: Vec<Country>,
}

impl ServiceCountries {
    /// Reads the two lists as typed in the panel: codes separated by spaces or commas.
    pub fn parse(only: &str, deny: &str) -> Result<ServiceCountries, String> {
        let rules = ServiceCountries { only: codes(only)?, deny: codes(deny)? };
        if let Some(both) = rules.only.iter().find(|c| rules.deny.contains(c)) {
            return Err(format!(
                "{both} is in both lists: it cannot be the only country allowed and denied."
            ));
        }
        Ok(rules)
    }

    pub fn is_empty(&self) -> bool {
        self.only.is_empty() && self.deny.is_empty()
    }

    /// Whether an address of `country` (`None`: the database names none) is dropped.
    pub fn blocks(&self, country: Option<Country>) -> bool {
        match country {
            Some(c) if self.deny.contains(&c) => true,
            c => !self.only.is_empty() && !c.is_some_and(|c| self.only.contains(&c)),
        }
    }

    /// Whether these rules drop some address `before` let through.
    pub fn narrows(&self, before: &ServiceCountries) -> bool {
        self.deny.iter().any(|c| !before.deny.contains(c))
            || (!self.only.is_empty()
                && (before.only.is_empty() || before.only.iter().any(|c| !self.only.contains(c))))
    }

    /// `only DE, AT; never CN` for the audit log and the panel.
    pub fn describe(&self) -> String {
        let list = |v: &[Country]| v.iter().map(|c| c.as_str()).collect::<Vec<_>>().join(", ");
        match (self.only.is_empty(), self.deny.is_empty()) {
            (true, true) => "every country".into(),
            (false, true) => format!("only {}", list(&self.only)),
            (true, false) => format!("never {}", list(&self.deny)),
            (false, false) => format!("only {}; never {}", list(&self.only), list(&self.deny)),
        }
    }
}

fn codes(text: &str) -> Result<Vec<Country>, String> {
    let mut out = Vec::new();
    for word in text.split(|c: char| c == ',' || c.is_whitespace()).filter(|w| !w.is_empty()) {
        let c = Country::parse(word)
            .ok_or_else(|| format!("{word:?} is no country code: two letters, as DE or BR."))?;
        if !out.contains(&c) {
            out.push(c);
        }
    }
    out.sort();
    Ok(out)
}

/// The rules of every service; a service not named lets every country through.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CountryRules(pub BTreeMap<ClosableService, ServiceCountries>);

impl CountryRules {
    pub fn of(&self, service: ClosableService) -> ServiceCountries {
        self.0.get(&service).cloned().unwrap_or_default()
    }

    pub fn set(&mut self, service: ClosableService, rules: ServiceCountries) {
        if rules.is_empty() {
            self.0.remove(&service);
        } else {
            self.0.insert(service, rules);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.values().all(ServiceCountries::is_empty)
    }

    /// The services whose new rules drop addresses the old ones let through.
    pub fn narrowed(&self, before: &CountryRules) -> Vec<ClosableService> {
        ClosableService::ALL.into_iter().filter(|s| self.of(*s).narrows(&before.of(*s))).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(code: &str) -> Country {
        Country::parse(code).unwrap()
    }

    #[test]
    fn lists_are_read_as_typed_and_bad_codes_refused_with_the_word() {
        let r = ServiceCountries::parse("de, at  fr,de", "cn").unwrap();
        assert_eq!(r.only, [c("AT"), c("DE"), c("FR")]);
        assert_eq!(r.deny, [c("CN")]);
        assert!(ServiceCountries::parse("", "").unwrap().is_empty());
        let e = ServiceCountries::parse("DE Germany", "").unwrap_err();
        assert!(e.contains("\"Germany\""), "{e}");
        assert!(ServiceCountries::parse("DE", "de").unwrap_err().contains("DE is in both"));
    }

    #[test]
    fn only_lists_drop_every_other_country_and_unplaced_addresses_deny_lists_just_theirs() {
        let only = ServiceCountries::parse("DE AT", "").unwrap();
        assert!(!only.blocks(Some(c("DE"))));
        assert!(only.blocks(Some(c("CN"))));
        assert!(only.blocks(None));
        let deny = ServiceCountries::parse("", "CN").unwrap();
        assert!(deny.blocks(Some(c("CN"))));
        assert!(!deny.blocks(Some(c("DE"))) && !deny.blocks(None));
        assert!(!ServiceCountries::default().blocks(None));
    }

    #[test]
    fn narrowing_is_any_address_dropped_that_was_let_through() {
        let none = ServiceCountries::default();
        let de_at = ServiceCountries::parse("DE AT", "").unwrap();
        let de = ServiceCountries::parse("DE", "").unwrap();
        assert!(de_at.narrows(&none));
        assert!(de.narrows(&de_at), "AT dropped");
        assert!(!de_at.narrows(&de), "AT admitted only");
        assert!(!none.narrows(&de));
        assert!(ServiceCountries::parse("", "CN").unwrap().narrows(&none));
        let mut before = CountryRules::default();
        before.set(ClosableService::Sip, de_at.clone());
        let mut after = before.clone();
        after.set(ClosableService::Panel, de.clone());
        after.set(ClosableService::Sip, ServiceCountries::parse("DE AT FR", "").unwrap());
        assert_eq!(after.narrowed(&before), [ClosableService::Panel]);
        after.set(ClosableService::Panel, ServiceCountries::default());
        assert!(!after.0.contains_key(&ClosableService::Panel), "an empty rule is no rule");
    }
}
