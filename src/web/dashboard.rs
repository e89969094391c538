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
use crate::domain::{DAY_MS, HOUR_MS, MINUTE_MS};
use crate::store;

/// What "under attack now" looks at.
const ATTACK_WINDOW_MS: i64 = 10 * MINUTE_MS;
/// Recent failures are counted up to this many: enough to say how bad it is.
const COUNT_CAP: i64 = 100_000;

/// Failures in the last [`ATTACK_WINDOW_MS`], and from whom.
pub struct AttackNow {
    pub failures: String,
    pub per_minute: String,
    pub addresses: i64,
    pub banned: i64,
}

/// One of the top offending addresses, and whether it is banned now.
pub struct TopAddress {
    pub ip: String,
    pub failures: i64,
    /// "until 15:05", "until released", or empty when not banned.
    pub banned: String,
}

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

/// One PBX writing to a shared store, as the nodes card shows it.
pub struct NodeView {
    pub name: String,
    /// The PBX this panel runs on.
    pub this: bool,
    /// Heard from within the last minute.
    pub alive: bool,
    pub last_contact: String,
    pub firewall_ok: bool,
    pub firewall: String,
    pub failures_hour: String,
    /// Bans this PBX decided in the last hour.
    pub bans_hour: String,
}

pub struct Live {
    /// Every PBX sharing the store (shown when there are several).
    pub nodes: Vec<NodeView>,
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
    pub top_addresses: Vec<TopAddress>,
    /// Failures in the last 10 minutes; `None`: none.
    pub attack: Option<AttackNow>,
    pub failures_hour: String,
    pub bans_hour: i64,
    /// No failed login was ever recorded: say how to check the logs are read.
    pub never_failed: bool,
    pub top_accounts: Vec<(String, i64)>,
    /// Countries of the addresses that failed in the last 24 hours, most first;
    /// empty without a country database.
    pub countries: Vec<CountryShare>,
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
    admin: CurrentAdmin,
    live: std::sync::Arc<Live>,
}

#[derive(Template, WebTemplate)]
#[template(path = "partials/dashboard_live.html")]
struct LivePartial {
    live: std::sync::Arc<Live>,
}

/// "12-01 15:00": the hour chart spans two dates.
fn hour_label(ms: i64) -> String {
    when(ms).get(5..16).unwrap_or("").to_string()
}

fn day_label(ms: i64) -> String {
    when(ms).get(5..10).unwrap_or("").to_string()
}

/// A PBX not heard from for this long is shown as silent.
const SILENT_AFTER_MS: i64 = 60_000;

async fn nodes(conn: &mut store::Conn, this: &str, now: i64) -> Result<Vec<NodeView>, WebError> {
    let rows = store::nodes::all(conn).await?;
    if rows.len() < 2 {
        return Ok(Vec::new());
    }
    let health = store::health::every_node(conn).await?;
    let mut out = Vec::with_capacity(rows.len());
    for n in rows {
        let firewall =
            health.iter().find(|h| h.node == n.name && h.component == crate::enforcer::HEALTH_COMPONENT);
        let failures = store::failures::count_on_node_since(conn, &n.name, now - HOUR_MS, COUNT_CAP).await?;
        let bans = store::bans::count_on_node_since(conn, &n.name, now - HOUR_MS, COUNT_CAP).await?;
        out.push(NodeView {
            this: n.name == this,
            alive: n.name == this || now - n.last_contact < SILENT_AFTER_MS,
            last_contact: when(n.last_contact),
            firewall_ok: firewall.is_some_and(|h| h.ok),
            firewall: firewall.map_or("not checked yet".into(), |h| h.detail.clone()),
            failures_hour: count_text(failures),
            bans_hour: count_text(bans),
            name: n.name,
        });
    }
    Ok(out)
}

/// One bar of the attacks-by-country chart.
#[derive(Debug, Clone)]
pub struct CountryShare {
    /// Two letters, or "—" for addresses no country owns.
    pub country: String,
    pub addresses: usize,
    /// The bar's length, in percent of the largest.
    pub width: usize,
}

/// Addresses looked up per dashboard renewal at most (a lookup takes ~0.1 µs).
const COUNTRY_SAMPLE: i64 = 200_000;

/// The countries the addresses of the last 24 hours come from, top ten.
async fn by_country(
    state: &WebState,
    conn: &mut store::Conn,
    now: i64,
) -> Result<Vec<CountryShare>, WebError> {
    if !state.geo.is_loaded() {
        return Ok(Vec::new());
    }
    let mut counts = std::collections::HashMap::<String, usize>::new();
    for ip in store::offenders::seen_since(conn, now - DAY_MS, COUNTRY_SAMPLE).await? {
        *counts.entry(state.geo.shown(&ip)).or_default() += 1;
    }
    let mut top: Vec<(String, usize)> = counts.into_iter().collect();
    top.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    top.truncate(10);
    let most = top.first().map_or(1, |t| t.1.max(1));
    Ok(top
        .into_iter()
        .map(|(country, addresses)| CountryShare {
            country,
            addresses,
            width: (addresses * 100).div_ceil(most),
        })
        .collect())
}

async fn gather(state: &WebState) -> Result<Live, WebError> {
    let now = state.clock.now();
    let mut conn = state.store.acquire().await?;
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
    let mut top_addresses = Vec::with_capacity(top.len());
    for o in top {
        let banned = match store::bans::active_for(&mut conn, &o.ip, now).await? {
            Some(b) => b.until_at.map_or("until released".to_string(), |u| format!("until {}", when(u))),
            None => String::new(),
        };
        top_addresses.push(TopAddress { ip: o.ip, failures: o.failures, banned });
    }
    let (addresses, banned) = store::offenders::active_since(&mut conn, now - ATTACK_WINDOW_MS, now).await?;
    let recent = store::failures::count_since(&mut conn, now - ATTACK_WINDOW_MS, COUNT_CAP).await?;
    let attack = (recent > 0).then(|| AttackNow {
        failures: count_text(recent),
        per_minute: per_minute(recent, ATTACK_WINDOW_MS),
        addresses,
        banned,
    });
    let failures_hour = count_text(store::failures::count_since(&mut conn, now - HOUR_MS, COUNT_CAP).await?);
    let (_, bans_hour) = store::bans::created_since(&mut conn, now - HOUR_MS, 0).await?;
    let never_failed = hours.is_empty() && top_addresses.is_empty();
    let countries = by_country(state, &mut conn, now).await?;
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
    let nodes = nodes(&mut conn, state.store.node(), now).await?;
    Ok(Live {
        nodes,
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
        top_addresses,
        attack,
        failures_hour,
        bans_hour,
        never_failed,
        top_accounts: store::offenders::top_accounts(&mut conn, 10).await?,
        countries,
        bans_timed,
        bans_forever,
        failures_day,
    })
}

/// `12345` → "12,345".
pub(super) fn grouped(n: u128) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `12345` → "12,345"; at the cap, "100,000+".
fn count_text(n: i64) -> String {
    let mut out = grouped(n.max(0) as u128);
    if n >= COUNT_CAP {
        out.push('+');
    }
    out
}

/// The rate of `n` failures over `window_ms`, per minute, in words.
fn per_minute(n: i64, window_ms: i64) -> String {
    let rate = n as f64 * MINUTE_MS as f64 / window_ms as f64;
    let more = if n >= COUNT_CAP { "+" } else { "" };
    if rate >= 10.0 {
        format!("{}{more} a minute", count_text(rate.round() as i64))
    } else {
        format!("{rate:.1}{more} a minute")
    }
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
    Ok(DashboardPage { admin, live: shared_live(&state).await? })
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
pub async fn healthz(State(state): State<WebState>) -> Result<axum::response::Response, WebError> {
    let mut conn = match state.store.acquire().await {
        Ok(conn) => conn,
        // The kernel keeps what it holds; nothing new is decided until it is back.
        Err(e) => {
            let why = super::store_away::explain(&state, &e);
            let body = serde_json::json!({ "status": "store_unreachable", "problems": [why] });
            return Ok((StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response());
        }
    };
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
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_rates_read_as_an_admin_writes_them() {
        assert_eq!(count_text(0), "0");
        assert_eq!(count_text(999), "999");
        assert_eq!(count_text(12_345), "12,345");
        assert_eq!(count_text(COUNT_CAP), "100,000+");
        assert_eq!(per_minute(3, ATTACK_WINDOW_MS), "0.3 a minute");
        assert_eq!(per_minute(25_000, ATTACK_WINDOW_MS), "2,500 a minute");
        assert_eq!(per_minute(COUNT_CAP, ATTACK_WINDOW_MS), "10,000+ a minute");
    }
}
