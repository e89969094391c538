//! `/offenders`: every address with failures, searchable; `/offenders/{ip}` explains one.

use std::net::IpAddr;

use askama::Template;
use askama_web::WebTemplate;
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use ipnet::IpNet;
use serde::Deserialize;

use super::{CurrentAdmin, WebError, WebState, when};
use crate::actions;
use crate::domain::{BanReason, DAY_MS, HOUR_MS};
use crate::store::{self, offenders::Filter, offenders::Sort};

pub const PAGE: i64 = 50;

pub struct OffenderView {
    pub ip: String,
    /// From the country database; `—` when unknown.
    pub country: String,
    pub first_seen: String,
    pub last_seen: String,
    pub hour: u32,
    pub day: u32,
    pub total: i64,
    pub services: String,
    pub accounts: String,
    pub verdict: String,
}

/// One page of the list.
pub struct OffendersData {
    rows: Vec<OffenderView>,
    total: i64,
    has_next: bool,
}

#[derive(Template, WebTemplate)]
#[template(path = "offenders.html")]
struct OffendersPage {
    admin: CurrentAdmin,
    q: String,
    sort: String,
    page: i64,
    data: std::sync::Arc<OffendersData>,
}

#[derive(Deserialize, Default)]
pub struct ListQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    sort: String,
    #[serde(default)]
    page: i64,
}

/// Text prefix that every address of `net` starts with (whole IPv4 octets only).
fn text_prefix(net: &IpNet) -> String {
    match net {
        IpNet::V4(v4) => {
            let octets = v4.network().octets();
            let whole = usize::from(v4.prefix_len() / 8);
            octets[..whole].iter().map(|o| format!("{o}.")).collect()
        }
        IpNet::V6(_) => String::new(),
    }
}

pub async fn list(
    admin: CurrentAdmin,
    State(state): State<WebState>,
    Query(q): Query<ListQuery>,
) -> Result<impl axum::response::IntoResponse, WebError> {
    let page = q.page.max(0);
    let term = q.q.trim().to_string();
    let key = format!("offenders {} {page} {term}", q.sort);
    let data = state.snapshots.get(key, || gather(&state, &term, &q.sort, page)).await?;
    Ok(OffendersPage { admin, q: term, sort: q.sort, page, data })
}

async fn gather(state: &WebState, term: &str, sort: &str, page: i64) -> Result<OffendersData, WebError> {
    let now = state.clock.now();
    let sort = match sort {
        "failures" => Sort::Failures,
        "first" => Sort::FirstSeen,
        _ => Sort::LastSeen,
    };
    let mut conn = state.store.acquire().await?;
    let rows = if term.is_empty() {
        store::offenders::page(&mut conn, &Filter::All, sort, PAGE + 1, page * PAGE).await?
    } else if let Ok(ip) = term.parse::<IpAddr>() {
        store::offenders::get(&mut conn, &crate::domain::network::canonical_ip(ip).to_string())
            .await?
            .into_iter()
            .collect()
    } else if let Ok(net) = term.parse::<IpNet>() {
        // Narrow by text in SQL, then exactly by network here.
        let candidates =
            store::offenders::page(&mut conn, &Filter::Prefix(text_prefix(&net)), sort, i64::MAX, 0).await?;
        candidates
            .into_iter()
            .filter(|o| o.ip.parse::<IpAddr>().is_ok_and(|ip| net.contains(&ip)))
            .skip((page * PAGE) as usize)
            .take(PAGE as usize + 1)
            .collect()
    } else if let Some(country) = crate::geo::Country::parse(term).filter(|_| state.geo.is_loaded()) {
        // A country code: the addresses of that country, by the database in use.
        let all = store::offenders::page(&mut conn, &Filter::All, sort, i64::MAX, 0).await?;
        all.into_iter()
            .filter(|o| state.geo.country_of(&o.ip) == Some(country))
            .skip((page * PAGE) as usize)
            .take(PAGE as usize + 1)
            .collect()
    } else if store::nodes::all(&mut conn).await?.iter().any(|n| n.name == term) {
        // A PBX's name: the addresses it saw fail.
        store::offenders::page(&mut conn, &Filter::Node(term.to_string()), sort, PAGE + 1, page * PAGE)
            .await?
    } else {
        store::offenders::page(&mut conn, &Filter::Account(term.to_string()), sort, PAGE + 1, page * PAGE)
            .await?
    };
    let has_next = rows.len() as i64 > PAGE;
    let rows: Vec<_> = rows.into_iter().take(PAGE as usize).collect();
    // A few statements for the whole page, not a few per row.
    let ips: Vec<String> = rows.iter().map(|o| o.ip.clone()).collect();
    let counts = store::failures::counts_since_many(&mut conn, &ips, now - HOUR_MS, now - DAY_MS).await?;
    let mut accounts = store::offenders::accounts_many(&mut conn, &ips, 4).await?;
    let bans = store::bans::in_force_many(&mut conn, &ips, now).await?;
    let trusted = state.trusted.with(store::networks::trusted_nets(&mut conn).await?);
    let views = rows
        .into_iter()
        .map(|o| {
            let (hour, day) = counts.get(&o.ip).copied().unwrap_or((0, 0));
            let is_trusted = o.ip.parse::<IpAddr>().is_ok_and(|a| trusted.contains(a));
            let verdict = verdict_text(is_trusted, bans.get(&o.ip).copied());
            OffenderView {
                country: state.geo.shown(&o.ip),
                first_seen: when(o.first_seen),
                last_seen: when(o.last_seen),
                hour,
                day,
                total: o.failures,
                services: match (state.store.is_shared(), o.nodes.is_empty()) {
                    (true, false) => {
                        format!("{} on {}", o.services.replace(',', ", "), o.nodes.replace(',', ", "))
                    }
                    _ => o.services.replace(',', ", "),
                },
                accounts: accounts.remove(&o.ip).unwrap_or_default().join(", "),
                verdict,
                ip: o.ip,
            }
        })
        .collect();
    Ok(OffendersData { rows: views, total: store::offenders::count(&mut conn).await?, has_next })
}

/// What sipwarden does with an address: trusted, banned (until when) or not banned.
fn verdict_text(trusted: bool, ban_until: Option<Option<i64>>) -> String {
    match (trusted, ban_until) {
        (true, _) => "trusted".into(),
        (false, Some(None)) => "banned until released".into(),
        (false, Some(Some(until))) => format!("banned until {}", when(until)),
        (false, None) => "not banned".into(),
    }
}

/// Why a ban is in force, in one sentence an admin reads without knowing the rules:
/// "2 failed logins for 1003 within 1h → blocked until 2026-12-02 14:05:00".
pub fn why(ban: &store::bans::BanRow, accounts: &[String]) -> String {
    let until = match ban.until_at {
        Some(t) => format!("blocked until {}", when(t)),
        None => "blocked until an admin releases it".into(),
    };
    let tried = match accounts {
        [] => String::new(),
        [one] => format!(" for {one}"),
        many => format!(" for {}", many.join(", ")),
    };
    let what = match BanReason::read(&ban.reason) {
        BanReason::Manual(text) => {
            format!("banned by hand by {}: {text}", ban.created_by.as_deref().unwrap_or("an admin"))
        }
        BanReason::Breach(text) | BanReason::Other(text) => text.to_string(),
        BanReason::Rule { failures, within, repeat } => {
            format!(
                "{failures} failed logins{tried} within {within}{}",
                if repeat { ", banned before" } else { "" }
            )
        }
    };
    format!("{what} → {until}")
}

/// The verdict in words, whether the address is trusted, and whether a ban is in force.
async fn verdict(
    conn: &mut store::Conn,
    state: &WebState,
    ip: &str,
    now: i64,
) -> Result<(String, bool, Option<store::bans::BanRow>), WebError> {
    let trusted = state.trusted.with(store::networks::trusted_nets(conn).await?);
    let is_trusted = ip.parse::<IpAddr>().is_ok_and(|a| trusted.contains(a));
    let ban = store::bans::active_for(conn, ip, now).await?;
    Ok((verdict_text(is_trusted, ban.as_ref().map(|b| b.until_at)), is_trusted, ban))
}

pub struct FailureView {
    pub at: String,
    pub service: String,
    pub account: String,
    pub kind: String,
    pub verdict: String,
    pub tampered: bool,
    pub raw: String,
}

pub struct BanView {
    pub reason: String,
    pub rung: String,
    pub created: String,
    pub until: String,
    pub ended: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "offender.html")]
struct ExplainPage {
    admin: CurrentAdmin,
    ip: String,
    verdict: String,
    /// What the admin can do here: release (and trust) a ban in force, or ban.
    banned: bool,
    /// The ban in force, in plain words.
    why: Option<String>,
    trusted: bool,
    message: Option<String>,
    total: i64,
    accounts: Vec<(String, i64)>,
    success: Option<String>,
    bans: Vec<BanView>,
    failures: Vec<FailureView>,
}

/// Which rule made a ban: a numbered ban rule, an admin, or the breach detector
/// (which bans without a rule number or an admin's name).
pub fn rule_label(b: &store::bans::BanRow) -> String {
    match (b.rung, &b.created_by) {
        (0, Some(_)) => "by hand".into(),
        (0, None) => "breach".into(),
        (n, _) => format!("rule {n}"),
    }
}

pub fn ban_view(b: &store::bans::BanRow, now: i64) -> BanView {
    let ended = match (&b.released_at, b.until_at) {
        (Some(at), _) => format!("released {} by {}", when(*at), b.released_by.as_deref().unwrap_or("?")),
        (None, Some(u)) if u <= now => format!("expired {}", when(u)),
        _ => "in force".into(),
    };
    BanView {
        reason: b.reason.clone(),
        rung: rule_label(b),
        created: when(b.created_at),
        until: b.until_at.map_or("until released".into(), when),
        ended,
    }
}

/// Why an address is (or is not) banned: the log lines, the rung, the accounts tried,
/// and whether it ever authenticated.
pub async fn explain(
    admin: CurrentAdmin,
    State(state): State<WebState>,
    Path(ip): Path<String>,
    Query(query): Query<Done>,
) -> Result<impl axum::response::IntoResponse, WebError> {
    let ip: IpAddr = ip.parse().map_err(|_| WebError::BadRequest("not an address".into()))?;
    let ip = crate::domain::network::canonical_ip(ip).to_string();
    let now = state.clock.now();
    let mut conn = state.store.acquire().await?;
    let offender = store::offenders::get(&mut conn, &ip).await?;
    let bans = store::bans::for_ip(&mut conn, &ip).await?;
    if offender.is_none() && bans.is_empty() {
        return Err(WebError::NotFound);
    }
    let search = store::failures::Search { ip: Some(ip.clone()), limit: 200, ..Default::default() };
    let failures = store::failures::search(&mut conn, &search).await?;
    let (verdict, trusted, ban) = verdict(&mut conn, &state, &ip, now).await?;
    let accounts = store::offenders::accounts(&mut conn, &ip, 50).await?;
    let tried: Vec<String> = accounts.iter().take(3).map(|(a, _)| a.clone()).collect();
    Ok(ExplainPage {
        admin,
        verdict,
        trusted,
        banned: ban.is_some(),
        why: ban.map(|b| why(&b, &tried)),
        message: query.done,
        total: offender.map_or(0, |o| o.failures),
        accounts,
        success: store::known_good::last_success(&mut conn, &ip)
            .await?
            .map(|(account, at)| format!("{} as {}", when(at), account.unwrap_or_else(|| "?".into()))),
        bans: bans.iter().map(|b| ban_view(b, now)).collect(),
        failures: failures
            .into_iter()
            .map(|f| FailureView {
                at: when(f.at),
                service: f.service,
                account: f.account.unwrap_or_default(),
                kind: f.kind,
                verdict: f.verdict,
                tampered: f.tampered,
                raw: f.raw,
            })
            .collect(),
        ip,
    })
}

/// What an action on the page did, shown when it comes back (`?done=released`).
#[derive(Deserialize, Default)]
pub struct Done {
    #[serde(default, deserialize_with = "said")]
    done: Option<String>,
}

/// Only the page's own words come back: nothing a link could put on the page.
fn said<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let word: String = Deserialize::deserialize(d)?;
    Ok(match word.as_str() {
        "released" => Some("Released: the firewall lets it in again.".into()),
        "trusted" => Some("Released and trusted: it is never banned from now on.".into()),
        "banned" => Some("Banned: the firewall drops it.".into()),
        _ => None,
    })
}

/// Back to the offender's page, saying what was done (htmx follows `HX-Redirect`);
/// `ip` is a parsed address, so it needs no escaping in the path.
fn back(headers: &HeaderMap, ip: &str, done: &str) -> Response {
    super::auth::redirect(super::bans::is_htmx(headers), &format!("/offenders/{ip}?done={done}"))
}

fn address(ip: &str) -> Result<IpAddr, WebError> {
    let ip: IpAddr = ip.parse().map_err(|_| WebError::BadRequest("not an address".into()))?;
    Ok(crate::domain::network::canonical_ip(ip))
}

/// Release from the offender's page: every ban of the address ends.
pub async fn release(
    admin: CurrentAdmin,
    State(state): State<WebState>,
    Path(ip): Path<String>,
    headers: HeaderMap,
) -> Result<Response, WebError> {
    let ip = address(&ip)?;
    actions::release(&state.store, &admin.actor(), ip, state.clock.now()).await?;
    state.poke.notify_one();
    Ok(back(&headers, &ip.to_string(), "released"))
}

pub async fn release_and_trust(
    admin: CurrentAdmin,
    State(state): State<WebState>,
    Path(ip): Path<String>,
    headers: HeaderMap,
) -> Result<Response, WebError> {
    let ip = address(&ip)?.to_string();
    actions::networks::release_and_trust(&state.store, &admin.actor(), &ip, state.clock.now()).await?;
    state.poke.notify_one();
    Ok(back(&headers, &ip, "trusted"))
}

pub async fn ban(
    admin: CurrentAdmin,
    State(state): State<WebState>,
    Path(ip): Path<String>,
    headers: HeaderMap,
    Form(form): Form<super::bans::BanForm>,
) -> Result<Response, WebError> {
    let ip = address(&ip)?;
    super::bans::ban_by_hand(&state, &admin, ip, &form.duration, &form.reason)
        .await?
        .map_err(|(_, why)| WebError::BadRequest(why))?;
    Ok(back(&headers, &ip.to_string(), "banned"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ban(reason: &str, until_at: Option<i64>, created_by: Option<&str>) -> store::bans::BanRow {
        store::bans::BanRow {
            id: 1,
            ip: "203.0.113.9".into(),
            reason: reason.into(),
            rung: 1,
            created_at: 0,
            until_at,
            released_at: None,
            released_by: None,
            created_by: created_by.map(String::from),
            node: "pbx-a".into(),
        }
    }

    #[test]
    fn a_ban_reads_as_one_plain_sentence() {
        let accounts = ["1003".to_string(), "1004".to_string()];
        let rule = why(&ban("2 failures within 1h, repeat offender", None, None), &accounts);
        assert_eq!(
            rule,
            "2 failed logins for 1003, 1004 within 1h, banned before → blocked until an admin releases it"
        );
        let until = 1_800_000_000_000;
        let by_hand = why(&ban("manual: seen in the CDRs", Some(until), Some("maria")), &[]);
        assert_eq!(
            by_hand,
            format!("banned by hand by maria: seen in the CDRs → blocked until {}", when(until))
        );
        let breach =
            why(&ban("breach: logged into 2001 after guessing (3 failures within 2 s)", None, None), &[]);
        assert!(breach.starts_with("logged into 2001 after guessing"), "{breach}");
    }
}
