//! `/`: protection state and switch, health, charts, top offenders and accounts.

use askama::Template;
use askama_web::WebTemplate;
use axum::Form;
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::auth::redirect;
use super::chart::{self, Chart};
use super::protecting::Protecting;
use super::{CurrentAdmin, WebError, WebState, when};
use crate::actions;
use crate::domain::{DAY_MS, HOUR_MS};
use crate::store;

pub struct SourceView {
    pub path: String,
    pub kind: String,
    pub last_line: String,
    pub lines_read: i64,
    pub unreadable: i64,
    pub tampered: i64,
    /// How much of the file is read, e.g. "100 %" or "37 % (importing)".
    pub read: String,
}

pub struct Live {
    /// Why the last alert could not be sent, while it could not.
    pub alert_problem: Option<String>,
    /// The manager interface link: (up, in words), when configured.
    pub manager: Option<(bool, String)>,
    /// Extensions locked by an incident: (incident id, extension, what happened).
    pub locked: Vec<(i64, String, String)>,
    pub protection: bool,
    pub firewall: String,
    pub firewall_ok: bool,
    pub firewall_detail: String,
    pub sources: Vec<SourceView>,
    pub hourly: Chart,
    pub daily: Chart,
    pub top_addresses: Vec<(String, i64)>,
    pub top_accounts: Vec<(String, i64)>,
    pub bans_timed: i64,
    pub bans_forever: i64,
    pub failures_day: i64,
    /// Why log records cannot be stored right now (disk full, read-only, locked).
    pub ingest_problem: Option<String>,
    /// Why attackers are not being stopped now, each with its fix; empty when they are.
    pub not_protecting: Vec<String>,
    /// Watching on purpose without blocking: why.
    pub monitor_only: Option<String>,
}

#[derive(Template, WebTemplate)]
#[template(path = "dashboard.html")]
struct DashboardPage {
    admin: String,
    live: std::sync::Arc<Live>,
}

#[derive(Template, WebTemplate)]
#[template(path = "partials/dashboard_live.html")]
struct LivePartial {
    live: std::sync::Arc<Live>,
}

fn hour_label(ms: i64) -> String {
    when(ms).get(11..16).unwrap_or("").to_string()
}

fn day_label(ms: i64) -> String {
    when(ms).get(5..10).unwrap_or("").to_string()
}

async fn gather(state: &WebState) -> Result<Live, WebError> {
    let now = state.clock.now();
    let mut conn = state.store.pool().acquire().await?;
    let hour_start = now - now % HOUR_MS - 23 * HOUR_MS;
    let day_start = now - now % DAY_MS - 29 * DAY_MS;
    // From the running hourly totals: the dashboard never scans the failures.
    let hours = store::offenders::hours_since(&mut conn, day_start).await?;
    let bucket = |start: i64, size: i64| -> Vec<(i64, i64)> {
        hours.iter().filter(|(h, _)| *h >= start).map(|(h, n)| ((h - start) / size, *n)).collect()
    };
    let hourly = bucket(hour_start, HOUR_MS);
    let daily = bucket(day_start, DAY_MS);
    let failures_day: i64 = hours.iter().filter(|(h, _)| *h > now - DAY_MS - HOUR_MS).map(|(_, n)| n).sum();
    let health = store::health::all(&mut conn).await?;
    let firewall = health.iter().find(|h| h.component == crate::enforcer::HEALTH_COMPONENT);
    let (bans_timed, bans_forever) = store::bans::active_counts(&mut conn, now).await?;
    let top = store::offenders::page(
        &mut conn,
        &store::offenders::Filter::All,
        store::offenders::Sort::Failures,
        10,
        0,
    )
    .await?;
    let ingest_problem = state.ingest.problem().map(|p| {
        format!(
            "since {}: {} ({} attempts, retrying; nothing is lost, the logs are read again from where storing stopped)",
            when(p.since),
            p.detail,
            p.attempts
        )
    });
    let (not_protecting, monitor_only) = match super::protecting::now(state, &mut conn).await? {
        Protecting::Yes => (Vec::new(), None),
        Protecting::MonitorOnly(why) => (Vec::new(), Some(why)),
        Protecting::No(why) => (why, None),
    };
    let locked = store::incidents::locking(&mut conn)
        .await?
        .iter()
        .map(|i| (i.id, i.account.clone(), super::incidents::headline(i)))
        .collect();
    Ok(Live {
        alert_problem: state.alerts.as_ref().and_then(|a| a.health().problem),
        manager: state.manager.as_ref().map(|m| manager_line(&m.state())),
        locked,
        not_protecting,
        monitor_only,
        ingest_problem,
        protection: store::settings::protection(&mut conn, state.protection_default).await?,
        firewall: state.firewall_name.clone(),
        firewall_ok: firewall.is_some_and(|h| h.ok),
        firewall_detail: firewall
            .map_or("not checked yet".into(), |h| format!("{} (at {})", h.detail, when(h.updated_at))),
        sources: store::sources::all(&mut conn)
            .await?
            .into_iter()
            .map(|s| SourceView {
                read: read_share(&s.path, s.read_offset),
                path: s.path,
                kind: s.kind,
                last_line: s.last_line_at.map_or("never".into(), when),
                lines_read: s.lines_read,
                unreadable: s.unreadable_lines,
                tampered: s.tampered_records,
            })
            .collect(),
        hourly: chart::bars(&hourly, 24, hour_start, HOUR_MS, hour_label),
        daily: chart::bars(&daily, 30, day_start, DAY_MS, day_label),
        top_addresses: top.into_iter().map(|o| (o.ip, o.failures)).collect(),
        top_accounts: store::offenders::top_accounts(&mut conn, 10).await?,
        bans_timed,
        bans_forever,
        failures_day,
    })
}

fn manager_line(s: &crate::ami::AmiState) -> (bool, String) {
    let since = s.since.map(|t| format!(" since {}", when(t))).unwrap_or_default();
    let text = if s.connected {
        format!("connected{since}: {} events read, {} blocks not believed", s.events, s.malformed)
    } else {
        format!("down{since}: {}", s.problem.as_deref().unwrap_or("connecting"))
    };
    (s.connected, text)
}

fn read_share(path: &str, offset: i64) -> String {
    let size = std::fs::metadata(path).map(|m| m.len() as i64).unwrap_or(0);
    if size == 0 || offset >= size {
        return "100 %".into();
    }
    let pct = offset * 100 / size;
    // More than a batch behind: the first import of an existing log is running.
    if size - offset > 4 * 1024 * 1024 { format!("{pct} % (importing)") } else { format!("{pct} %") }
}

async fn shared_live(state: &WebState) -> Result<std::sync::Arc<Live>, WebError> {
    state.snapshots.get("dashboard".into(), || gather(state)).await
}

pub async fn show(
    admin: CurrentAdmin,
    State(state): State<WebState>,
) -> Result<impl axum::response::IntoResponse, WebError> {
    Ok(DashboardPage { admin: admin.username, live: shared_live(&state).await? })
}

pub async fn live(
    _admin: CurrentAdmin,
    State(state): State<WebState>,
) -> Result<impl axum::response::IntoResponse, WebError> {
    Ok(LivePartial { live: shared_live(&state).await? })
}

#[derive(Deserialize)]
pub struct SwitchForm {
    on: String,
}

pub async fn switch_protection(
    admin: CurrentAdmin,
    State(state): State<WebState>,
    headers: HeaderMap,
    Form(form): Form<SwitchForm>,
) -> Result<Response, WebError> {
    let on = match form.on.as_str() {
        "true" => true,
        "false" => false,
        _ => return Err(WebError::BadRequest("on must be true or false".into())),
    };
    actions::set_protection(&state.store, &admin.actor(), on, state.clock.now())
        .await
        .map_err(|e| WebError::Internal(e.to_string()))?;
    state.poke.notify_one();
    Ok(redirect(headers.contains_key("hx-request"), "/"))
}

#[derive(serde::Serialize)]
pub struct Health {
    /// `ok`; `monitor_only` (watching on purpose, nothing blocked); or `not_protecting`
    /// (answered with 503), with `problems` saying why and how to fix each.
    status: &'static str,
    problems: Vec<String>,
    ingest_ok: bool,
    protection: bool,
    firewall_ok: bool,
    log_sources: usize,
    /// The manager interface link, when configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    manager: Option<ManagerHealth>,
    /// Alerts sent, and why the last one failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    alerts: Option<AlertsHealth>,
}

#[derive(serde::Serialize)]
pub struct AlertsHealth {
    sent: u64,
    problem: Option<String>,
    dropped: u64,
}

#[derive(serde::Serialize)]
pub struct ManagerHealth {
    connected: bool,
    problem: Option<String>,
    events: u64,
}

/// Unauthenticated liveness for monitors and container health checks: no secrets.
pub async fn healthz(State(state): State<WebState>) -> Result<impl IntoResponse, WebError> {
    let mut conn = state.store.pool().acquire().await?;
    let health = store::health::all(&mut conn).await?;
    let ingest_ok = state.ingest.problem().is_none();
    let (status, problems) = match super::protecting::now(&state, &mut conn).await? {
        Protecting::Yes => ("ok", Vec::new()),
        Protecting::MonitorOnly(why) => ("monitor_only", vec![why]),
        Protecting::No(why) => ("not_protecting", why),
    };
    let code = if status == "not_protecting" { StatusCode::SERVICE_UNAVAILABLE } else { StatusCode::OK };
    Ok((
        code,
        Json(Health {
            status,
            problems,
            ingest_ok,
            protection: store::settings::protection(&mut conn, state.protection_default).await?,
            firewall_ok: health.iter().any(|h| h.component == crate::enforcer::HEALTH_COMPONENT && h.ok),
            log_sources: store::sources::all(&mut conn).await?.len(),
            manager: state.manager.as_ref().map(|m| {
                let s = m.state();
                ManagerHealth { connected: s.connected, problem: s.problem, events: s.events }
            }),
            alerts: state.alerts.as_ref().map(|a| {
                let h = a.health();
                AlertsHealth { sent: h.sent, problem: h.problem, dropped: h.dropped }
            }),
        }),
    ))
}
