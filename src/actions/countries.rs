//! Country rules per service: checked against the country database, the admin's own
//! address and the lockout guard, saved with their audit row in one transaction.

use std::net::IpAddr;

use ipnet::IpNet;

use super::{ActionError, Actor};
use crate::domain::{ClosableService, NetworkList, TrustedNetworks, UnixMs};
use crate::geo::Geo;
use crate::geo::rules::ServiceCountries;
use crate::store::{self, Store};

/// Networks the country rules never drop: trusted, extension and trunk networks, and
/// addresses without a country (`firewall::countries::NO_COUNTRY`).
pub async fn passing(
    conn: &mut store::Conn,
    configured: &TrustedNetworks,
    now: UnixMs,
) -> Result<Vec<IpNet>, ActionError> {
    let mut nets: Vec<IpNet> =
        configured.with(store::networks::trusted_nets(conn).await?).networks().to_vec();
    nets.extend(store::networks::nets(conn, NetworkList::Extensions, now).await?);
    nets.extend(store::networks::trunk_nets(conn, now).await?.into_iter().map(|(_, n)| n));
    nets.extend(crate::firewall::countries::NO_COUNTRY.iter().filter_map(|n| n.parse::<IpNet>().ok()));
    Ok(nets)
}

/// A code the database has no address for (`UK` for `GB`, a typo) is refused.
fn check_known(geo: &Geo, rules: &ServiceCountries) -> Result<(), ActionError> {
    let Some(table) = geo.table() else {
        return Err(ActionError::Refused(
            "No country database is loaded: set `geoip` in the configuration (see the README, Countries) first."
                .into(),
        ));
    };
    let mut known: Vec<_> = table.v4.countries().chain(table.v6.countries()).collect();
    known.sort();
    known.dedup();
    for c in rules.only.iter().chain(&rules.deny) {
        if known.binary_search(c).is_err() {
            let hint = if c.as_str() == "UK" { " (the United Kingdom is GB)" } else { "" };
            return Err(ActionError::Refused(format!("The country database has no address in {c}{hint}.")));
        }
    }
    Ok(())
}

/// Sets one service's country rules. Dropping the panel for the admin's own address
/// needs confirming; any change that drops addresses is put back after 60 s unless kept.
#[allow(clippy::too_many_arguments)]
pub async fn set(
    store: &Store,
    actor: &Actor<'_>,
    configured: &TrustedNetworks,
    geo: &Geo,
    service: ClosableService,
    rules: ServiceCountries,
    confirmed: bool,
    now: UnixMs,
) -> Result<(), ActionError> {
    if !rules.is_empty() {
        check_known(geo, &rules)?;
    }
    let mut tx = store.begin().await?;
    let before = store::settings::country_rules(&mut tx).await?;
    let mut after = before.clone();
    after.set(service, rules.clone());
    if after == before {
        return Ok(());
    }
    let own: Option<IpAddr> = actor.client_ip.and_then(|ip| ip.parse().ok());
    if let Some(own) = own.filter(|_| service == ClosableService::Panel && !confirmed) {
        let passes = passing(&mut tx, configured, now).await?.iter().any(|n| n.contains(&own));
        let country = geo.country(own);
        if !passes && rules.blocks(country) {
            let from = country.map_or_else(|| "no country the database knows".to_string(), |c| c.to_string());
            return Err(ActionError::NeedsConfirmation(format!(
                "Your address {own} ({from}) would be dropped from the panel. Tick the box to do it anyway."
            )));
        }
    }
    let detail = format!("{service}: {}", rules.describe());
    if after.narrowed(&before).contains(&service) {
        let rows = store::networks::editable(&mut tx).await?;
        let closed = store::settings::closed_services(&mut tx).await?;
        crate::lockout::remember(&mut tx, now, &format!("countries for {detail}"), actor.name, rows, closed)
            .await?;
    }
    store::settings::set_country_rules(&mut tx, &after).await?;
    store::changes::record(&mut tx, store::changes::kind::ACCESS, "countries", now).await?;
    store::audit::record(&mut tx, now, actor.name, actor.client_ip, "country rules", &detail).await?;
    tx.commit().await?;
    Ok(())
}
