//! The country table: resolved from the rules and the country database, and put in
//! the kernel when its fingerprint differs from what the kernel holds.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ipnet::IpNet;

use super::{EnforceError, Enforcer};
use crate::domain::ClosableService;
use crate::firewall::ServicePorts;
use crate::firewall::countries::{self, CountryAccess, CountryRanges, Generation, ServiceRule};
use crate::geo::Table;
use crate::geo::rules::CountryRules;
use crate::store;

/// The rules as ranges of `table`. A service without rules is left out.
pub fn resolve(rules: &CountryRules, table: &Table, ports: &ServicePorts, pass: Vec<IpNet>) -> CountryAccess {
    let services = ClosableService::ALL
        .into_iter()
        .filter_map(|service| {
            let r = rules.of(service);
            if r.is_empty() {
                return None;
            }
            let ranges = |list: &[crate::geo::Country]| CountryRanges {
                v4: table.v4.merged(|c| list.contains(&c)),
                v6: table.v6.merged(|c| list.contains(&c)),
            };
            let (tcp, udp) = ports.of(service);
            let only = (!r.only.is_empty()).then(|| ranges(&r.only));
            Some(ServiceRule { service, tcp, udp, only, deny: ranges(&r.deny) })
        })
        .collect();
    CountryAccess { pass, services }
}

/// The last resolution, kept while rules, networks and database stay the same (the
/// enforcer checks every few seconds; resolving scans the whole database).
#[derive(Default)]
pub(super) struct Resolved {
    key: Option<(CountryRules, Vec<IpNet>)>,
    /// The database resolved with; held, so a new one never takes its address.
    table: Option<Arc<Table>>,
    value: Option<(Arc<CountryAccess>, String)>,
    /// The last pass found no country table and there are still no rules: nothing to
    /// look at (saves an `nft` run every few seconds on the many PBXes without rules).
    absent: bool,
    /// A table nft refused: its fingerprint, the error, when to try it again and the
    /// delay after that (loading a big table every few seconds would busy a core).
    refused: Option<(String, String, Instant, Duration)>,
}

const FIRST_RETRY: Duration = Duration::from_secs(10);
const LAST_RETRY: Duration = Duration::from_secs(600);

impl Enforcer {
    /// Puts the country table in the kernel as the rules and the database say, or
    /// removes it when there are no rules (or no database to resolve them with).
    pub(super) async fn reconcile_countries(&self) -> Result<(), EnforceError> {
        let now = self.clock.now();
        let (rules, pass) = {
            let mut conn = self.store.acquire().await?;
            let rules = store::settings::country_rules(&mut conn).await?;
            if rules.is_empty() && self.countries.lock().unwrap_or_else(|p| p.into_inner()).absent {
                return Ok(());
            }
            let trusted = self.trusted_now(&mut conn).await?;
            drop(conn);
            (rules, self.access(&trusted, now).await?.allowed)
        };
        let table = self.geo.table().filter(|_| !rules.is_empty());
        if table.is_none() && !rules.is_empty() && self.geo.is_configured() {
            // Not read yet (or unreadable since start): the kernel keeps what it holds.
            return Ok(());
        }
        let wanted = match table {
            Some(table) => {
                let key = (rules, pass);
                let mut cache = self.countries.lock().unwrap_or_else(|p| p.into_inner());
                let same_table = cache.table.as_ref().is_some_and(|t| Arc::ptr_eq(t, &table));
                if cache.key.as_ref() != Some(&key) || !same_table {
                    let access = resolve(&key.0, &table, &self.ports, key.1.clone());
                    let fingerprint = access.fingerprint(&self.owner);
                    cache.value = Some((Arc::new(access), fingerprint));
                    cache.key = Some(key);
                    cache.table = Some(table);
                }
                cache.value.clone()
            }
            None => None,
        };
        let held = self.blocking(|fw| fw.countries_fingerprint()).await?.map(|s| countries::Stamp::parse(&s));
        let settled =
            held.as_ref().map(|s| s.built_from.as_str()) == wanted.as_ref().map(|(_, f)| f.as_str());
        self.countries.lock().unwrap_or_else(|p| p.into_inner()).absent = settled && held.is_none();
        // Counting starts with the first pass; a reload or removal could reset the
        // counters, so what they hold is added in first.
        if held.is_some() && (!settled || !self.drops.started()) {
            let drops = self.drops.clone();
            if let Err(e) = self.blocking(move |_| drops.take()).await {
                tracing::warn!(error = %e, "cannot read the country rules' counters");
            }
        }
        if settled {
            return Ok(());
        }
        let started = Instant::now();
        match wanted {
            Some((access, fingerprint)) => {
                let ranges = access.ranges();
                let retry = {
                    let cache = self.countries.lock().unwrap_or_else(|p| p.into_inner());
                    match &cache.refused {
                        Some((f, e, at, _)) if *f == fingerprint && started < *at => {
                            return Err(EnforceError::CountriesRefused(e.clone()));
                        }
                        Some((f, _, _, delay)) if *f == fingerprint => (*delay * 2).min(LAST_RETRY),
                        _ => FIRST_RETRY,
                    }
                };
                let stamp = fingerprint.clone();
                // The sets the kernel's rules do not use get the new ranges.
                let generation = held.and_then(|s| s.generation).map_or(Generation::A, Generation::other);
                let load = countries::load(&access, &fingerprint, generation);
                let applied = self.blocking(move |fw| fw.load_countries(&load)).await;
                let mut cache = self.countries.lock().unwrap_or_else(|p| p.into_inner());
                if let Err(e) = applied {
                    tracing::error!(error = %e, retry_in = ?retry, "country rules not applied");
                    cache.refused = Some((stamp, e.to_string(), started + retry, retry));
                    return Err(e);
                }
                cache.refused = None;
                let took_ms = started.elapsed().as_millis() as u64;
                tracing::info!(ranges, took_ms, "country rules applied");
            }
            None => {
                self.blocking(|fw| fw.apply(&countries::removal())).await?;
                self.countries.lock().unwrap_or_else(|p| p.into_inner()).absent = true;
                tracing::info!("country rules removed from the firewall");
            }
        }
        Ok(())
    }
}
