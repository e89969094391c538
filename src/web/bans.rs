//! `/bans`: bans in force with one-click release, bans by hand, and their history.

use std::net::IpAddr;

use askama::Template;
use askama_web::WebTemplate;
use axum::Form;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::auth::redirect;
use super::offenders::{BanView, ban_view};
use super::{CurrentAdmin, WebError, WebState, when};
use crate::actions::{self, ActionError};
use crate::store;

const SHOWN: i64 = 500;

pub struct ActiveBan {
    pub id: i64,
    pub ip: String,
    pub country: String,
    /// The accounts (extensions) it tried most.
    pub accounts: String,
    pub reason: String,
    pub rung: String,
    pub created: String,
    pub until: String,
    pub by: String,
}

/// What the bans page lists.
pub struct BansData {
    active: Vec<ActiveBan>,
    /// The search that narrowed `active`, if any.
    query: String,
    /// All bans in force; the page lists the newest `SHOWN`.
    total: i64,
    history: Vec<(String, BanView)>,
}

#[derive(Template, WebTemplate)]
#[template(path = "bans.html")]
struct BansPage {
    admin: CurrentAdmin,
    data: std::sync::Arc<BansData>,
    message: Option<String>,
}

async fn data(state: &WebState, query: &str) -> Result<BansData, WebError> {
    let now = state.clock.now();
    let mut conn = state.store.acquire().await?;
    let (timed, forever) = store::bans::active_counts(&mut conn, now).await?;
    let country = crate::geo::Country::parse(query).filter(|_| state.geo.is_loaded());
    let rows = match (query, country) {
        ("", _) => store::bans::active_newest(&mut conn, now, SHOWN).await?,
        // A country code: the bans of that country's addresses, by the database in use.
        (_, Some(country)) => store::bans::active_newest(&mut conn, now, i64::MAX)
            .await?
            .into_iter()
            .filter(|b| state.geo.country_of(&b.ip) == Some(country))
            .take(SHOWN as usize)
            .collect(),
        (q, None) => store::bans::active_matching(&mut conn, now, q, SHOWN).await?,
    };
    let ips: Vec<String> = rows.iter().map(|b| b.ip.clone()).collect();
    let accounts = store::offenders::accounts_many(&mut conn, &ips, 3).await?;
    let active = rows
        .into_iter()
        .map(|b| ActiveBan {
            id: b.id,
            country: state.geo.shown(&b.ip),
            accounts: accounts.get(&b.ip).map(|a| a.join(", ")).unwrap_or_default(),
            rung: super::offenders::rule_label(&b),
            reason: b.reason,
            created: when(b.created_at),
            until: b.until_at.map_or("until released".into(), when),
            by: b.created_by.unwrap_or_else(|| match (state.store.is_shared(), b.node.is_empty()) {
                (true, false) => format!("sipwarden on {}", b.node),
                _ => "sipwarden".into(),
            }),
            ip: b.ip,
        })
        .collect();
    let history = store::bans::history(&mut conn, now, 100)
        .await?
        .iter()
        .map(|b| (b.ip.clone(), ban_view(b, now)))
        .collect();
    Ok(BansData { active, query: query.to_string(), total: timed + forever, history })
}

/// The page; shared data when it is only shown, fresh after a change (with `message`)
/// or for a search.
async fn page(
    state: &WebState,
    admin: CurrentAdmin,
    message: Option<String>,
    query: &str,
) -> Result<BansPage, WebError> {
    let data = match (message.as_ref(), query) {
        (None, "") => state.snapshots.get("bans".into(), || data(state, "")).await?,
        _ => std::sync::Arc::new(data(state, query).await?),
    };
    Ok(BansPage { admin, data, message })
}

#[derive(Deserialize)]
pub struct BansQuery {
    /// An address (or part of one), or an extension it tried.
    #[serde(default)]
    q: String,
}

pub async fn list(
    admin: CurrentAdmin,
    State(state): State<WebState>,
    axum::extract::Query(query): axum::extract::Query<BansQuery>,
) -> Result<impl IntoResponse, WebError> {
    let q: String = query.q.trim().chars().take(64).collect();
    page(&state, admin.clone(), None, &q).await
}

pub(super) fn is_htmx(headers: &HeaderMap) -> bool {
    headers.contains_key("hx-request")
}

/// Releases ban `id`; returns what it banned (an address, or an IPv6 prefix).
async fn release_ban(state: &WebState, admin: &CurrentAdmin, id: i64) -> Result<ipnet::IpNet, WebError> {
    let mut conn = state.store.acquire().await?;
    let ban = store::bans::by_id(&mut conn, id).await?.ok_or(WebError::NotFound)?;
    drop(conn);
    let target = crate::domain::network::parse_ban_target(&ban.ip)
        .ok_or_else(|| WebError::BadRequest("stored address unreadable".into()))?;
    match actions::release_target(&state.store, &admin.actor(), &ban.ip, state.clock.now()).await {
        Ok(_) | Err(ActionError::NotBanned(_)) => Ok(target),
        Err(e) => Err(WebError::Internal(e.to_string())),
    }
}

/// One click: the ban ends in the database, the enforcer removes the element at once,
/// and htmx replaces the row with nothing.
pub async fn release(
    admin: CurrentAdmin,
    State(state): State<WebState>,
    Path(id): Path<i64>,
    headers: HeaderMap,
) -> Result<Response, WebError> {
    release_ban(&state, &admin, id).await?;
    state.poke.notify_one();
    if is_htmx(&headers) {
        return Ok("".into_response());
    }
    Ok(redirect(false, "/bans"))
}

pub async fn release_and_trust(
    admin: CurrentAdmin,
    State(state): State<WebState>,
    Path(id): Path<i64>,
    headers: HeaderMap,
) -> Result<Response, WebError> {
    let mut conn = state.store.acquire().await?;
    let ban = store::bans::by_id(&mut conn, id).await?.ok_or(WebError::NotFound)?;
    drop(conn);
    actions::networks::release_and_trust(&state.store, &admin.actor(), &ban.ip, state.clock.now()).await?;
    state.poke.notify_one();
    if is_htmx(&headers) {
        return Ok("".into_response());
    }
    Ok(redirect(false, "/bans"))
}

/// Several at once: `id=1&id=2...` from the checkboxes.
pub async fn release_many(
    admin: CurrentAdmin,
    State(state): State<WebState>,
    body: Bytes,
) -> Result<Response, WebError> {
    let ids: Vec<i64> = form_urlencoded::parse(&body)
        .filter(|(k, _)| k == "id")
        .filter_map(|(_, v)| v.parse().ok())
        .collect();
    if ids.is_empty() {
        return Ok(page(&state, admin.clone(), Some("Tick the bans to release first.".into()), "")
            .await?
            .into_response());
    }
    for id in &ids {
        release_ban(&state, &admin, *id).await?;
    }
    state.poke.notify_one();
    let message = format!("Released {} ban{}.", ids.len(), if ids.len() == 1 { "" } else { "s" });
    Ok(page(&state, admin.clone(), Some(message), "").await?.into_response())
}

/// A ban by hand: the Bans page names the address, an offender's page is its own.
#[derive(Deserialize)]
pub struct BanForm {
    #[serde(default)]
    ip: String,
    pub(super) duration: String,
    #[serde(default)]
    pub(super) reason: String,
}

pub async fn ban(
    admin: CurrentAdmin,
    State(state): State<WebState>,
    Form(form): Form<BanForm>,
) -> Result<Response, WebError> {
    let ip: IpAddr = match form.ip.trim().parse() {
        Ok(ip) => ip,
        Err(_) => {
            let msg = format!("{:?} is not an IPv4 or IPv6 address.", form.ip.trim());
            return Ok((
                axum::http::StatusCode::BAD_REQUEST,
                page(&state, admin.clone(), Some(msg), "").await?,
            )
                .into_response());
        }
    };
    let message = match ban_by_hand(&state, &admin, ip, &form.duration, &form.reason).await? {
        Ok(()) => format!("{ip} banned."),
        // A trusted address is an answer, not a mistake in the form.
        Err((status, refused)) => {
            let status = if status == StatusCode::CONFLICT { StatusCode::OK } else { status };
            return Ok((status, page(&state, admin.clone(), Some(refused), "").await?).into_response());
        }
    };
    Ok(page(&state, admin.clone(), Some(message), "").await?.into_response())
}

/// A ban an admin asked for (`duration`: `1h`, `24h`, … or `until-released`); the
/// enforcer is poked. `Ok(Err(why))`: refused, in words for the admin (a bad form is
/// `BAD_REQUEST`, a trusted address `CONFLICT`).
pub(super) async fn ban_by_hand(
    state: &WebState,
    admin: &CurrentAdmin,
    ip: IpAddr,
    duration: &str,
    reason: &str,
) -> Result<Result<(), (StatusCode, String)>, WebError> {
    let now = state.clock.now();
    let until = match duration.trim() {
        "until-released" | "" => None,
        d => match crate::config::duration_ms(d, "duration") {
            Ok(ms) => Some(now + ms),
            Err(e) => return Ok(Err((StatusCode::BAD_REQUEST, e.to_string()))),
        },
    };
    let mut conn = state.store.acquire().await?;
    let trusted = state.trusted.with(store::networks::trusted_nets(&mut conn).await?);
    drop(conn);
    let reason = match reason.trim() {
        "" => "banned from the panel",
        r => r,
    };
    match actions::ban(&state.store, &trusted, &admin.actor(), ip, until, reason, now).await {
        Ok(_) => {
            state.poke.notify_one();
            Ok(Ok(()))
        }
        Err(ActionError::Trusted(ip)) => Ok(Err((
            StatusCode::CONFLICT,
            format!("{ip} is trusted (or an admin address) and is never banned."),
        ))),
        Err(e) => Err(WebError::Internal(e.to_string())),
    }
}
