//! `/countries`: which countries may reach each service. A preview says what a change
//! drops and admits before it is saved; the lockout guard covers the panel (the
//! admin's own address and country) and undoes a narrowing change unless kept.

use std::net::IpAddr;

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Form, State};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::dashboard::grouped;
use super::{CurrentAdmin, WebError, WebState};
use crate::actions::{self, ActionError};
use crate::domain::ClosableService;
use crate::geo::rules::{self, ServiceCountries};
use crate::store;

pub struct ServiceView {
    pub key: &'static str,
    pub ports: String,
    pub only: String,
    pub deny: String,
    pub now: String,
    /// What its rules dropped on this PBX (see `dropped_text`); empty without rules.
    pub dropped: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "countries.html")]
struct CountriesPage {
    admin: CurrentAdmin,
    admin_ip: String,
    admin_country: String,
    /// Where the admin's address stands against the panel's rules.
    admin_status: String,
    database: String,
    loaded: bool,
    services: Vec<ServiceView>,
    pending: Option<super::networks::PendingChange>,
    error: Option<String>,
    /// The service the error or confirmation is about.
    failed: String,
    needs_confirm: bool,
}

#[derive(Deserialize, Default, Clone)]
pub struct RulesForm {
    #[serde(default)]
    pub service: String,
    #[serde(default)]
    pub only: String,
    #[serde(default)]
    pub deny: String,
    #[serde(default)]
    pub confirm: String,
}

fn codes(list: &[crate::geo::Country]) -> String {
    list.iter().map(|c| c.as_str()).collect::<Vec<_>>().join(" ")
}

/// "1,204 packets dropped since 2026-12-03 09:41 (1,200 from other countries, 4 from
/// denied ones)", or "nothing dropped since …".
fn dropped_text(t: &crate::enforcer::drops::Tally, s: ClosableService, only: bool, deny: bool) -> String {
    let (outside, denied) = (t.of(s, true), t.of(s, false));
    let since = super::when(t.since);
    let since = since.get(..16).unwrap_or(&since);
    if outside + denied == 0 {
        return format!("nothing dropped since {since}");
    }
    let mut parts = Vec::new();
    if only {
        parts.push(format!("{} from other countries", grouped(u128::from(outside))));
    }
    if deny {
        parts.push(format!("{} from denied ones", grouped(u128::from(denied))));
    }
    let total = grouped(u128::from(outside + denied));
    let plural = if outside + denied == 1 { "" } else { "s" };
    format!("{total} packet{plural} dropped since {since} ({})", parts.join(", "))
}

async fn page(
    state: &WebState,
    admin: &CurrentAdmin,
    error: Option<String>,
    form: &RulesForm,
    needs_confirm: bool,
) -> Result<CountriesPage, WebError> {
    let now = state.clock.now();
    let mut conn = state.store.acquire().await?;
    let current = store::settings::country_rules(&mut conn).await?;
    let tally = match &state.country_drops {
        // A dry run drops nothing: better no figure than a zero.
        Some(drops) if !current.is_empty() && state.firewall_enforces => {
            let drops = drops.clone();
            match tokio::task::spawn_blocking(move || drops.take()).await {
                Ok(Ok(tally)) => Some(tally),
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "cannot read the country rules' counters");
                    None
                }
                Err(_) => None,
            }
        }
        _ => None,
    };
    let services = ClosableService::ALL
        .into_iter()
        .map(|s| {
            let r = current.of(s);
            let dropped = match &tally {
                Some(t) if !r.is_empty() => dropped_text(t, s, !r.only.is_empty(), !r.deny.is_empty()),
                _ => String::new(),
            };
            let mine = error.is_some() && form.service == s.as_str();
            ServiceView {
                key: s.as_str(),
                ports: super::networks::ports_text(&state.closed_ports, s),
                only: if mine { form.only.clone() } else { codes(&r.only) },
                deny: if mine { form.deny.clone() } else { codes(&r.deny) },
                now: r.describe(),
                dropped,
            }
        })
        .collect();
    let ip: Option<IpAddr> = admin.client_ip.parse().ok();
    let country = ip.and_then(|ip| state.geo.country(ip));
    let passes = match ip {
        Some(ip) => actions::countries::passing(&mut conn, &state.trusted, now)
            .await
            .map_err(WebError::from)?
            .iter()
            .any(|n| n.contains(&ip)),
        None => false,
    };
    let admin_status = if passes {
        "in a trusted, extension or trunk network (or private): no country rule drops it".into()
    } else if current.of(ClosableService::Panel).blocks(country) {
        "DROPPED by the panel's country rules".into()
    } else {
        "the panel's country rules let it through".into()
    };
    let database = match (state.geo.table(), state.geo.is_configured()) {
        (Some(t), _) => {
            format!(
                "{} IPv4 and {} IPv6 ranges loaded",
                grouped(t.v4.len() as u128),
                grouped(t.v6.len() as u128)
            )
        }
        (None, true) => "configured but not loaded (see the sipwarden log): rules are not enforced".into(),
        (None, false) => "none configured (set `geoip`): country rules cannot be set".into(),
    };
    Ok(CountriesPage {
        admin: admin.clone(),
        admin_ip: admin.client_ip.clone(),
        admin_country: country.map_or_else(|| "—".into(), |c| c.to_string()),
        admin_status,
        database,
        loaded: state.geo.is_loaded(),
        services,
        pending: super::networks::pending_change(&mut conn, now, "countries").await?,
        error,
        failed: form.service.clone(),
        needs_confirm,
    })
}

pub async fn show(admin: CurrentAdmin, State(state): State<WebState>) -> Result<impl IntoResponse, WebError> {
    page(&state, &admin, None, &RulesForm::default(), false).await
}

fn service_of(form: &RulesForm) -> Result<ClosableService, WebError> {
    ClosableService::parse(&form.service).ok_or_else(|| WebError::BadRequest("unknown service".into()))
}

/// "drops 12,345 ranges of 180 countries (1,234,567 IPv4 addresses)".
fn effect_text(e: &rules::Effect) -> String {
    let part = |verb: &str, c: &rules::Coverage, countries: usize, unplaced: bool| {
        let mut t = match countries {
            0 => String::new(),
            n => format!(
                "{verb} {} {} of {n} {} ({} IPv4 addresses)",
                grouped(c.ranges as u128),
                if c.ranges == 1 { "range" } else { "ranges" },
                if n == 1 { "country" } else { "countries" },
                grouped(c.ipv4_addresses)
            ),
        };
        if unplaced {
            let sep = if t.is_empty() { format!("{verb} ") } else { " and ".into() };
            t.push_str(&format!("{sep}every address the database places in no country"));
        }
        t
    };
    let dropped = part("drops", &e.dropped, e.dropped_countries, e.unplaced == Some(true));
    let admitted = part("admits", &e.admitted, e.admitted_countries, e.unplaced == Some(false));
    match (dropped.is_empty(), admitted.is_empty()) {
        (true, true) => "changes nothing".into(),
        (false, true) => dropped,
        (true, false) => admitted,
        (false, false) => format!("{dropped}; {admitted}"),
    }
}

/// The htmx preview: what saving the form would drop and admit, and the admin's fate.
pub async fn preview(
    admin: CurrentAdmin,
    State(state): State<WebState>,
    Form(form): Form<RulesForm>,
) -> Result<Response, WebError> {
    let service = service_of(&form)?;
    let after = match ServiceCountries::parse(&form.only, &form.deny) {
        Ok(r) => r,
        Err(e) => return Ok(Preview { class: "error", text: e }.into_response()),
    };
    let Some(table) = state.geo.table() else {
        let text = "No country database is loaded.".into();
        return Ok(Preview { class: "error", text }.into_response());
    };
    let before = {
        let mut conn = state.store.acquire().await?;
        store::settings::country_rules(&mut conn).await?.of(service)
    };
    let mut text = format!("Saving {}", effect_text(&rules::effect(&table, &before, &after)));
    text.push('.');
    if service == ClosableService::Panel {
        let country = admin.client_ip.parse().ok().and_then(|ip| state.geo.country(ip));
        if after.blocks(country) {
            text.push_str(&format!(
                " Your address {} ({}) is dropped unless a trusted, extension or trunk network holds it.",
                admin.client_ip,
                country.map_or_else(|| "—".into(), |c| c.to_string())
            ));
        }
    }
    Ok(Preview { class: "preview", text }.into_response())
}

#[derive(Template, WebTemplate)]
#[template(path = "partials/country_preview.html")]
struct Preview {
    class: &'static str,
    text: String,
}

pub async fn save(
    admin: CurrentAdmin,
    State(state): State<WebState>,
    Form(form): Form<RulesForm>,
) -> Result<Response, WebError> {
    let service = service_of(&form)?;
    let outcome = match ServiceCountries::parse(&form.only, &form.deny) {
        Ok(rules) => {
            let confirmed = form.confirm == "on";
            let (now, actor) = (state.clock.now(), admin.actor());
            actions::countries::set(
                &state.store,
                &actor,
                &state.trusted,
                &state.geo,
                service,
                rules,
                confirmed,
                now,
            )
            .await
        }
        Err(e) => Err(ActionError::Refused(e)),
    };
    let (message, confirm) = match outcome {
        Ok(()) => {
            state.poke.notify_one();
            return Ok(Redirect::to("/countries").into_response());
        }
        Err(ActionError::NeedsConfirmation(msg)) => (msg, true),
        Err(ActionError::Refused(msg)) => (msg, false),
        Err(e) => return Err(e.into()),
    };
    let status = if confirm { axum::http::StatusCode::CONFLICT } else { axum::http::StatusCode::BAD_REQUEST };
    Ok((status, page(&state, &admin, Some(message), &form, confirm).await?).into_response())
}
