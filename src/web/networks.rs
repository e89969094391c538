//! `/networks`: trusted, extension, trunk and always-deny lists; closed mode; the
//! Asterisk ACLs rendered from them (preview, apply); and the lockout guard: a change
//! that would cut off this browser's address is refused unless confirmed, and a change
//! that narrows access is undone after 60 s unless the admin keeps it.

use std::net::IpAddr;

use askama::Template;
use askama_web::WebTemplate;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::{CurrentAdmin, WebError, WebState, when};
use crate::asterisk::acl::{AclPlan, Tech};
use crate::config;
use crate::domain::UnixMs;
use crate::firewall::SERVICES;
use crate::store::{self, networks::NetworkRow};

pub const KEEP_WITHIN_MS: UnixMs = 60_000;
const PENDING: &str = "pending_change";
const LISTS: [(&str, &str); 4] = [
    ("trusted", "Trusted (never banned, full access)"),
    ("extensions", "Extension networks (where phones may register from)"),
    ("trunk", "Trunk providers"),
    ("deny", "Always deny"),
];

/// A narrowing change waiting to be kept, and what to put back otherwise.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Pending {
    pub deadline: UnixMs,
    pub what: String,
    pub by: String,
    pub rows: Vec<NetworkRow>,
    pub closed: Vec<String>,
}

pub async fn pending(conn: &mut store::Conn) -> Result<Option<Pending>, WebError> {
    Ok(store::settings::get(conn, PENDING).await?.and_then(|j| serde_json::from_str(&j).ok()))
}

/// Undoes the pending change (`by` says who: an admin, or the clock).
pub async fn revert(state: &WebState, by: &str, client_ip: Option<&str>) -> Result<bool, WebError> {
    let mut tx = state.store.begin().await?;
    let Some(p) = pending(&mut tx).await? else { return Ok(false) };
    store::networks::restore(&mut tx, &p.rows).await?;
    store::settings::set_closed_services(&mut tx, &p.closed).await?;
    store::settings::set(&mut tx, PENDING, "null").await?;
    store::audit::record(&mut tx, state.clock.now(), by, client_ip, "reverted", &p.what).await?;
    tx.commit().await?;
    state.poke.notify_one();
    Ok(true)
}

/// Reverts a narrowing change nobody kept in time. Runs once a second in `serve`.
pub async fn revert_when_due(state: &WebState) -> Result<(), WebError> {
    let mut conn = state.store.pool().acquire().await?;
    if let Some(p) = pending(&mut conn).await? {
        if state.clock.now() >= p.deadline {
            drop(conn);
            if revert(state, "sipwarden (not kept in time)", None).await? {
                tracing::warn!(change = %p.what, "firewall change reverted: not kept within 60 s");
            }
        }
    }
    Ok(())
}

pub struct EntryView {
    pub id: i64,
    pub what: String,
    pub trunk: String,
    pub label: String,
    pub expires: String,
    pub added: String,
    pub resolution: String,
}

pub struct ListView {
    pub key: &'static str,
    pub title: &'static str,
    pub entries: Vec<EntryView>,
}

pub struct TargetView {
    pub tech: &'static str,
    pub name: String,
    pub role: String,
    pub trunk: String,
    pub acls: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "networks.html")]
struct NetworksPage {
    admin: String,
    admin_ip: String,
    admin_status: String,
    lists: Vec<ListView>,
    services: Vec<(&'static str, bool)>,
    pending: Option<(String, i64)>,
    targets: Vec<TargetView>,
    /// Accounts that logged in successfully but are in no configuration file read.
    log_only: Vec<String>,
    asterisk_dir: String,
    discovery_error: Option<String>,
    message: Option<String>,
    error: Option<String>,
    form: AddForm,
    needs_confirm: bool,
}

#[derive(Deserialize, Default, Clone)]
pub struct AddForm {
    #[serde(default)]
    pub list: String,
    #[serde(default)]
    pub address: String,
    #[serde(default)]
    pub trunk: String,
    #[serde(default)]
    pub label: String,
    #[serde(default)]
    pub expires: String,
    #[serde(default)]
    pub confirm: String,
}

/// Where the admin's address stands: allowed, trusted, or cut off by a deny entry.
async fn admin_status(state: &WebState, conn: &mut store::Conn, ip: IpAddr) -> Result<String, WebError> {
    let now = state.clock.now();
    let trusted = state.trusted.with(store::networks::trusted_nets(conn).await?);
    let deny = store::networks::nets(conn, store::networks::DENY, now).await?;
    Ok(if deny.iter().any(|n| n.contains(&ip)) {
        "ALWAYS DENIED: this address is cut off".into()
    } else if trusted.contains(ip) {
        "covered: trusted (never banned, reaches every port)".into()
    } else {
        "not covered by any list".into()
    })
}

async fn page(
    state: &WebState,
    admin: &CurrentAdmin,
    message: Option<String>,
    error: Option<String>,
    form: AddForm,
    needs_confirm: bool,
) -> Result<NetworksPage, WebError> {
    let now = state.clock.now();
    let mut conn = state.store.pool().acquire().await?;
    let rows = store::networks::editable(&mut conn).await?;
    let mut lists = Vec::new();
    for (key, title) in LISTS {
        let mut entries = Vec::new();
        for r in rows.iter().filter(|r| r.list == key) {
            let resolution = match &r.host {
                Some(_) => {
                    let addrs = store::networks::resolution(&mut conn, r.id).await?;
                    let at = r.resolved_at.map_or("never".to_string(), when);
                    format!(
                        "resolved {at}: {}",
                        if addrs.is_empty() { "no address".into() } else { addrs.join(", ") }
                    )
                }
                None => String::new(),
            };
            entries.push(EntryView {
                id: r.id,
                what: r.host.clone().unwrap_or_else(|| r.cidr.clone()),
                trunk: r.trunk.clone(),
                label: r.label.clone(),
                expires: r.expires_at.map_or("never".into(), |e| {
                    if e <= now { format!("expired {}", when(e)) } else { when(e) }
                }),
                added: format!("{} by {}", when(r.created_at), r.created_by),
                resolution,
            });
        }
        lists.push(ListView { key, title, entries });
    }
    let closed = store::settings::closed_services(&mut conn).await?;
    let admin_ip: IpAddr = admin.client_ip.parse().unwrap_or(IpAddr::from([0, 0, 0, 0]));
    let assigned = store::targets::all(&mut conn).await?;
    let (targets, discovery_error) = match &state.pbx {
        Some(pbx) => match pbx.discover() {
            Ok(objects) => (
                objects
                    .into_iter()
                    .map(|o| {
                        let a = assigned.iter().find(|t| t.name == o.name && t.tech == o.tech.as_str());
                        TargetView {
                            tech: o.tech.as_str(),
                            role: a.map_or("ignore".into(), |t| t.role.clone()),
                            trunk: a.map_or(String::new(), |t| t.trunk.clone()),
                            acls: o.acls.into_iter().collect::<Vec<_>>().join(", "),
                            name: o.name,
                        }
                    })
                    .collect(),
                None,
            ),
            Err(e) => (Vec::new(), Some(e.to_string())),
        },
        None => {
            (Vec::new(), Some("no Asterisk configuration directory is set ([asterisk] config_dir)".into()))
        }
    };
    let log_only = store::known_good::accounts(&mut conn)
        .await?
        .into_iter()
        .filter(|a| !targets.iter().any(|t: &TargetView| &t.name == a))
        .collect();
    Ok(NetworksPage {
        log_only,
        admin: admin.username.clone(),
        admin_status: admin_status(state, &mut conn, admin_ip).await?,
        admin_ip: admin.client_ip.clone(),
        lists,
        services: SERVICES.iter().map(|s| (*s, closed.iter().any(|c| c == s))).collect(),
        pending: pending(&mut conn).await?.map(|p| (p.what, ((p.deadline - now) / 1000).max(0))),
        targets,
        asterisk_dir: state.pbx.as_ref().map_or(String::new(), |p| p.config_dir.display().to_string()),
        discovery_error,
        message,
        error,
        form,
        needs_confirm,
    })
}

pub async fn show(admin: CurrentAdmin, State(state): State<WebState>) -> Result<impl IntoResponse, WebError> {
    page(&state, &admin, None, None, AddForm::default(), false).await
}

/// Saves a narrowing change with the snapshot to restore if it is not kept.
async fn remember_for_revert(
    state: &WebState,
    tx: &mut store::Conn,
    what: &str,
    by: &str,
    rows: Vec<NetworkRow>,
    closed: Vec<String>,
) -> Result<(), WebError> {
    // A change already pending keeps its older snapshot: revert goes back to before both.
    if let Some(p) = pending(tx).await? {
        let merged = Pending {
            deadline: state.clock.now() + KEEP_WITHIN_MS,
            what: format!("{}; {what}", p.what),
            ..p
        };
        store::settings::set(tx, PENDING, &serde_json::to_string(&merged).unwrap_or_default()).await?;
        return Ok(());
    }
    let p = Pending {
        deadline: state.clock.now() + KEEP_WITHIN_MS,
        what: what.into(),
        by: by.into(),
        rows,
        closed,
    };
    store::settings::set(tx, PENDING, &serde_json::to_string(&p).unwrap_or_default()).await?;
    Ok(())
}

fn is_host_name(text: &str) -> bool {
    text.len() <= 253
        && text.chars().any(|c| c.is_ascii_alphabetic())
        && text.split('.').all(|l| {
            !l.is_empty() && l.len() <= 63 && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

pub async fn add(
    admin: CurrentAdmin,
    State(state): State<WebState>,
    axum::Form(form): axum::Form<AddForm>,
) -> Result<Response, WebError> {
    let bad = |msg: String| async {
        let p = page(&state, &admin, None, Some(msg), form.clone(), false).await?;
        Ok::<Response, WebError>((axum::http::StatusCode::BAD_REQUEST, p).into_response())
    };
    let list = form.list.as_str();
    if !LISTS.iter().any(|(k, _)| *k == list) {
        return bad("Choose a list.".into()).await;
    }
    let trunk = form.trunk.trim();
    if list == "trunk"
        && (trunk.is_empty() || !trunk.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'))
    {
        return bad("A trunk provider entry needs the trunk's name (letters, digits, - and _).".into()).await;
    }
    let now = state.clock.now();
    let expires_at = match form.expires.trim() {
        "" => None,
        d => match config::duration_ms(d, "expires") {
            Ok(ms) => Some(now + ms),
            Err(e) => return bad(e.to_string()).await,
        },
    };
    let address = form.address.trim();
    let (net, host) = match config::parse_network(address, "address") {
        Ok(n) => (Some(n), None),
        Err(_) if is_host_name(address) => (None, Some(address.to_ascii_lowercase())),
        Err(e) => return bad(format!("{e} (or a host name such as sip.provider.example)")).await,
    };
    let mut tx = state.store.begin().await?;
    let rows = store::networks::editable(&mut tx).await?;
    if let Some(net) = net {
        for r in &rows {
            let Ok(other) = r.cidr.parse::<IpNet>() else { continue };
            let overlap = other.contains(&net.network()) || net.contains(&other.network());
            let contradicts = (list == "deny") != (r.list == "deny");
            if overlap && (r.list == list || contradicts) {
                return bad(format!("{net} overlaps {other} in the {} list.", r.list)).await;
            }
        }
        let admin_ip: Option<IpAddr> = admin.client_ip.parse().ok();
        if list == "deny" && admin_ip.is_some_and(|ip| net.contains(&ip)) && form.confirm != "on" {
            drop(tx);
            let msg = format!(
                "{net} contains your own address {}: you would lose this panel. Tick the box to do it anyway.",
                admin.client_ip
            );
            let p = page(&state, &admin, None, Some(msg), form.clone(), true).await?;
            return Ok((axum::http::StatusCode::CONFLICT, p).into_response());
        }
    }
    let shown = net.map_or_else(|| host.clone().unwrap_or_default(), |n| n.to_string());
    let label = if form.label.trim().is_empty() { shown.clone() } else { form.label.trim().to_string() };
    let entry = store::networks::NewEntry {
        list,
        cidr: net.map_or_else(|| format!("host:{}", host.clone().unwrap_or_default()), |n| n.to_string()),
        label: &label,
        trunk: if list == "trunk" { trunk } else { "" },
        expires_at,
        host: host.as_deref(),
    };
    let closed = store::settings::closed_services(&mut tx).await?;
    if list == "deny" {
        remember_for_revert(&state, &mut tx, &format!("always deny {shown}"), &admin.username, rows, closed)
            .await?;
    }
    if !store::networks::add_entry(&mut tx, &entry, &admin.username, now).await? {
        return bad(format!("{shown} is already in that list.")).await;
    }
    store::audit::record(
        &mut tx,
        now,
        &admin.username,
        Some(&admin.client_ip),
        "network added",
        &format!("{list}: {shown} ({label})"),
    )
    .await?;
    tx.commit().await?;
    if host.is_some() {
        resolve_all(&state).await;
    }
    state.poke.notify_one();
    Ok(Redirect::to("/networks").into_response())
}

pub async fn remove(
    admin: CurrentAdmin,
    State(state): State<WebState>,
    Path(id): Path<i64>,
) -> Result<Response, WebError> {
    let now = state.clock.now();
    let mut tx = state.store.begin().await?;
    let rows = store::networks::editable(&mut tx).await?;
    let closed = store::settings::closed_services(&mut tx).await?;
    let Some(row) = rows.iter().find(|r| r.id == id).cloned() else { return Err(WebError::NotFound) };
    // Taking a network off an allow list narrows access when a service is closed.
    if row.list != "deny" && !closed.is_empty() {
        remember_for_revert(
            &state,
            &mut tx,
            &format!("removed {} from {}", row.cidr, row.list),
            &admin.username,
            rows,
            closed,
        )
        .await?;
    }
    store::networks::remove(&mut tx, id).await?;
    store::audit::record(
        &mut tx,
        now,
        &admin.username,
        Some(&admin.client_ip),
        "network removed",
        &format!("{}: {}", row.list, row.cidr),
    )
    .await?;
    tx.commit().await?;
    state.poke.notify_one();
    Ok(Redirect::to("/networks").into_response())
}

pub async fn set_closed(
    admin: CurrentAdmin,
    State(state): State<WebState>,
    body: Bytes,
) -> Result<Response, WebError> {
    let pairs: Vec<(String, String)> = form_urlencoded::parse(&body).into_owned().collect();
    let wanted: Vec<String> =
        SERVICES.iter().filter(|s| pairs.iter().any(|(k, _)| k == *s)).map(|s| s.to_string()).collect();
    let confirmed = pairs.iter().any(|(k, v)| k == "confirm" && v == "on");
    let now = state.clock.now();
    let mut tx = state.store.begin().await?;
    let before = store::settings::closed_services(&mut tx).await?;
    let admin_ip: Option<IpAddr> = admin.client_ip.parse().ok();
    let trusted = state.trusted.with(store::networks::trusted_nets(&mut tx).await?);
    if wanted.iter().any(|s| s == "panel") && !admin_ip.is_some_and(|ip| trusted.contains(ip)) && !confirmed {
        drop(tx);
        let msg = format!(
            "Closing the panel's port would shut out your address {}. Tick the box to do it anyway.",
            admin.client_ip
        );
        let p = page(&state, &admin, None, Some(msg), AddForm::default(), true).await?;
        return Ok((axum::http::StatusCode::CONFLICT, p).into_response());
    }
    let narrowing: Vec<&String> = wanted.iter().filter(|s| !before.contains(s)).collect();
    if !narrowing.is_empty() {
        let what = format!(
            "closed mode for {}",
            narrowing.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
        );
        let rows = store::networks::editable(&mut tx).await?;
        remember_for_revert(&state, &mut tx, &what, &admin.username, rows, before.clone()).await?;
    }
    store::settings::set_closed_services(&mut tx, &wanted).await?;
    let detail =
        if wanted.is_empty() { "open mode".to_string() } else { format!("closed: {}", wanted.join(", ")) };
    store::audit::record(&mut tx, now, &admin.username, Some(&admin.client_ip), "closed mode", &detail)
        .await?;
    tx.commit().await?;
    state.poke.notify_one();
    Ok(Redirect::to("/networks").into_response())
}

pub async fn keep(admin: CurrentAdmin, State(state): State<WebState>) -> Result<Response, WebError> {
    let mut tx = state.store.begin().await?;
    if let Some(p) = pending(&mut tx).await? {
        store::settings::set(&mut tx, PENDING, "null").await?;
        store::audit::record(
            &mut tx,
            state.clock.now(),
            &admin.username,
            Some(&admin.client_ip),
            "kept",
            &p.what,
        )
        .await?;
    }
    tx.commit().await?;
    Ok(Redirect::to("/networks").into_response())
}

pub async fn revert_now(admin: CurrentAdmin, State(state): State<WebState>) -> Result<Response, WebError> {
    revert(&state, &admin.username, Some(&admin.client_ip)).await?;
    Ok(Redirect::to("/networks").into_response())
}

pub async fn set_targets(
    admin: CurrentAdmin,
    State(state): State<WebState>,
    body: Bytes,
) -> Result<Response, WebError> {
    let pairs: Vec<(String, String)> = form_urlencoded::parse(&body).into_owned().collect();
    let mut tx = state.store.begin().await?;
    for (key, role) in pairs.iter().filter(|(k, _)| k.starts_with("role:")) {
        let mut parts = key.splitn(3, ':').skip(1);
        let (Some(tech), Some(name)) = (parts.next(), parts.next()) else { continue };
        if !["pjsip", "sip"].contains(&tech) || !["extension", "trunk", "ignore"].contains(&role.as_str()) {
            return Err(WebError::BadRequest(format!("unknown role {role:?} for {name}")));
        }
        let trunk =
            pairs.iter().find(|(k, _)| *k == format!("trunk:{tech}:{name}")).map_or("", |(_, v)| v.trim());
        let trunk = if role == "trunk" { if trunk.is_empty() { name } else { trunk } } else { "" };
        store::targets::set(&mut tx, name, tech, role, trunk).await?;
    }
    store::audit::record(
        &mut tx,
        state.clock.now(),
        &admin.username,
        Some(&admin.client_ip),
        "acl targets",
        "extensions and trunks assigned",
    )
    .await?;
    tx.commit().await?;
    Ok(Redirect::to("/networks").into_response())
}

/// The ACL plan from the lists and the assignments.
async fn acl_plan(state: &WebState) -> Result<AclPlan, WebError> {
    let now = state.clock.now();
    let mut conn = state.store.pool().acquire().await?;
    let mut extension_networks = store::networks::nets(&mut conn, store::networks::EXTENSIONS, now).await?;
    // Trusted means full access: they may register as extensions too.
    extension_networks.extend(store::networks::nets(&mut conn, store::networks::TRUSTED, now).await?);
    extension_networks.extend(state.trusted.networks());
    extension_networks.sort();
    extension_networks.dedup();
    let mut plan = AclPlan {
        extension_networks,
        always_deny: store::networks::nets(&mut conn, store::networks::DENY, now).await?,
        ..AclPlan::default()
    };
    for (trunk, net) in store::networks::trunk_nets(&mut conn, now).await? {
        plan.trunk_networks.entry(trunk).or_default().push(net);
    }
    for t in store::targets::all(&mut conn).await? {
        let tech = if t.tech == "sip" { Tech::Sip } else { Tech::Pjsip };
        match t.role.as_str() {
            "extension" => plan.extensions.push((tech, t.name)),
            "trunk" => plan.trunks.push((tech, t.name, t.trunk)),
            _ => {}
        }
    }
    Ok(plan)
}

#[derive(Template, WebTemplate)]
#[template(path = "acl_preview.html")]
struct PreviewPage {
    admin: String,
    diffs: Vec<(String, String)>,
    error: Option<String>,
    applied: Option<String>,
}

pub async fn preview(
    admin: CurrentAdmin,
    State(state): State<WebState>,
) -> Result<impl IntoResponse, WebError> {
    let pbx = state
        .pbx
        .clone()
        .ok_or_else(|| WebError::BadRequest("no Asterisk configuration directory is set".into()))?;
    let plan = acl_plan(&state).await?;
    let (diffs, error) = match tokio::task::spawn_blocking(move || pbx.preview(&plan))
        .await
        .map_err(|e| WebError::Internal(e.to_string()))?
    {
        Ok(changes) => (changes.iter().map(|c| (c.name.clone(), c.diff())).collect(), None),
        Err(e) => (Vec::new(), Some(e.to_string())),
    };
    Ok(PreviewPage { admin: admin.username, diffs, error, applied: None })
}

pub async fn apply(admin: CurrentAdmin, State(state): State<WebState>) -> Result<Response, WebError> {
    let pbx = state
        .pbx
        .clone()
        .ok_or_else(|| WebError::BadRequest("no Asterisk configuration directory is set".into()))?;
    let plan = acl_plan(&state).await?;
    let stamp = chrono::Local::now().format("%Y%m%d-%H%M%S").to_string();
    let outcome = tokio::task::spawn_blocking(move || {
        let changes = pbx.preview(&plan)?;
        let names: Vec<String> = changes.iter().map(|c| c.name.clone()).collect();
        pbx.apply(&plan, &changes, &stamp).map(|backups| (names, backups))
    })
    .await
    .map_err(|e| WebError::Internal(e.to_string()))?;
    let mut conn = state.store.pool().acquire().await?;
    let (applied, error) = match outcome {
        Ok((names, backups)) => {
            let detail = if names.is_empty() {
                "nothing to change".to_string()
            } else {
                format!("wrote {}; {} backups", names.join(", "), backups.len())
            };
            store::audit::record(
                &mut conn,
                state.clock.now(),
                &admin.username,
                Some(&admin.client_ip),
                "asterisk acl applied",
                &detail,
            )
            .await?;
            (Some(detail), None)
        }
        Err(e) => {
            store::audit::record(
                &mut conn,
                state.clock.now(),
                &admin.username,
                Some(&admin.client_ip),
                "asterisk acl failed",
                &e.to_string(),
            )
            .await?;
            (None, Some(e.to_string()))
        }
    };
    let status =
        if error.is_some() { axum::http::StatusCode::BAD_GATEWAY } else { axum::http::StatusCode::OK };
    Ok((status, PreviewPage { admin: admin.username, diffs: Vec::new(), error, applied }).into_response())
}

/// Resolves every host-name entry now.
pub async fn resolve_all(state: &WebState) {
    let Ok(mut conn) = state.store.pool().acquire().await else { return };
    let Ok(hosts) = store::networks::hosts(&mut conn).await else { return };
    drop(conn);
    for (id, host) in hosts {
        let addresses: Vec<String> = match tokio::time::timeout(
            std::time::Duration::from_secs(5),
            tokio::net::lookup_host((host.as_str(), 0)),
        )
        .await
        {
            Ok(Ok(found)) => {
                let mut a: Vec<String> =
                    found.map(|s| crate::domain::network::canonical_ip(s.ip()).to_string()).collect();
                a.sort();
                a.dedup();
                a
            }
            _ => {
                tracing::warn!(%host, "host name did not resolve; keeping its last addresses");
                continue;
            }
        };
        if let Ok(mut conn) = state.store.pool().acquire().await {
            let _ = store::networks::set_resolution(&mut conn, id, &addresses, state.clock.now()).await;
        }
    }
    state.poke.notify_one();
}
