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
use serde::Deserialize;

use super::{CurrentAdmin, WebError, WebState, when};
use crate::actions::networks::{Assignment, Entry, NewEntry};
use crate::actions::{self, ActionError};
use crate::asterisk::acl::{AclPlan, Tech};
use crate::config;
use crate::domain::{ClosableService, NetworkList};
use crate::store;

/// The lists an admin edits, as the page titles them.
fn title(list: NetworkList) -> &'static str {
    match list {
        NetworkList::Trusted => "Trusted (never banned, full access)",
        NetworkList::Extensions => "Extension networks (where phones may register from)",
        NetworkList::Trunk => "Trunk providers",
        NetworkList::Deny => "Always deny",
        NetworkList::Admin => "Admin login addresses (never banned)",
    }
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

/// A change the lockout guard puts back unless the admin keeps it, as the pages show it.
pub struct PendingChange {
    pub what: String,
    /// Seconds until it is put back.
    pub left: i64,
    /// The page Keep and Revert return to (empty: this one).
    pub back: &'static str,
}

pub(super) async fn pending_change(
    conn: &mut crate::store::Conn,
    now: crate::domain::UnixMs,
    back: &'static str,
) -> Result<Option<PendingChange>, WebError> {
    Ok(crate::lockout::pending(conn).await?.map(|p| PendingChange {
        what: p.what,
        left: ((p.deadline - now) / 1000).max(0),
        back,
    }))
}

#[derive(Template, WebTemplate)]
#[template(path = "networks.html")]
struct NetworksPage {
    admin: CurrentAdmin,
    admin_ip: String,
    admin_status: String,
    lists: Vec<ListView>,
    /// (service, closed, its ports in words).
    services: Vec<(&'static str, bool, String)>,
    pending: Option<PendingChange>,
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
    let deny = store::networks::nets(conn, crate::domain::NetworkList::Deny, now).await?;
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
    let mut conn = state.store.acquire().await?;
    let rows = store::networks::editable(&mut conn).await?;
    let mut lists = Vec::new();
    for list in NetworkList::EDITABLE {
        let mut entries = Vec::new();
        for r in rows.iter().filter(|r| r.list == list) {
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
        lists.push(ListView { key: list.as_str(), title: title(list), entries });
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
        admin: admin.clone(),
        admin_status: admin_status(state, &mut conn, admin_ip).await?,
        admin_ip: admin.client_ip.clone(),
        lists,
        services: ClosableService::ALL
            .iter()
            .map(|s| (s.as_str(), closed.contains(s), ports_text(&state.closed_ports, *s)))
            .collect(),
        pending: pending_change(&mut conn, now, "").await?,
        targets,
        asterisk_dir: state.pbx.as_ref().map_or(String::new(), |p| p.config_dir.display().to_string()),
        discovery_error,
        message,
        error,
        form,
        needs_confirm,
    })
}

/// "UDP 5060, 5160; TCP 5060, 5061": the ports closing `service` closes.
pub(super) fn ports_text(ports: &crate::firewall::ServicePorts, service: ClosableService) -> String {
    let (tcp, udp) = ports.closed(&[service]);
    let list = |proto: &str, ports: Vec<u16>| {
        (!ports.is_empty())
            .then(|| format!("{proto} {}", ports.iter().map(u16::to_string).collect::<Vec<_>>().join(", ")))
    };
    [list("UDP", udp), list("TCP", tcp)].into_iter().flatten().collect::<Vec<_>>().join("; ")
}

pub async fn show(admin: CurrentAdmin, State(state): State<WebState>) -> Result<impl IntoResponse, WebError> {
    page(&state, &admin, None, None, AddForm::default(), false).await
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
    let Some(list) = NetworkList::parse(&form.list).filter(|l| NetworkList::EDITABLE.contains(l)) else {
        return bad("Choose a list.".into()).await;
    };
    let trunk = form.trunk.trim();
    if list == NetworkList::Trunk
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
    let entry = match config::parse_network(address, "address") {
        Ok(n) => Entry::Network(n),
        Err(_) if is_host_name(address) => Entry::Host(address.to_ascii_lowercase()),
        Err(e) => return bad(format!("{e} (or a host name such as sip.provider.example)")).await,
    };
    let is_host = matches!(entry, Entry::Host(_));
    let new =
        NewEntry { list, entry, label: &form.label, trunk, expires_at, confirmed: form.confirm == "on" };
    match actions::networks::add(&state.store, &admin.actor(), &new, now).await {
        Ok(()) => {}
        Err(ActionError::Refused(msg)) => return bad(msg).await,
        Err(ActionError::NeedsConfirmation(msg)) => {
            let p = page(&state, &admin, None, Some(msg), form.clone(), true).await?;
            return Ok((axum::http::StatusCode::CONFLICT, p).into_response());
        }
        Err(e) => return Err(e.into()),
    }
    if is_host {
        resolve_all(&state).await;
    }
    state.poke.notify_one();
    Ok(Redirect::to("/networks").into_response())
}

/// Resolves the host-name entries now (the enforcer is told).
async fn resolve_all(state: &WebState) {
    crate::resolver::resolve_all(&state.store, &*state.clock, &state.poke).await;
}

pub async fn remove(
    admin: CurrentAdmin,
    State(state): State<WebState>,
    Path(id): Path<i64>,
) -> Result<Response, WebError> {
    actions::networks::remove(&state.store, &admin.actor(), id, state.clock.now()).await?;
    state.poke.notify_one();
    Ok(Redirect::to("/networks").into_response())
}

pub async fn set_closed(
    admin: CurrentAdmin,
    State(state): State<WebState>,
    body: Bytes,
) -> Result<Response, WebError> {
    let pairs: Vec<(String, String)> = form_urlencoded::parse(&body).into_owned().collect();
    let wanted: Vec<ClosableService> =
        ClosableService::ALL.into_iter().filter(|s| pairs.iter().any(|(k, _)| k == s.as_str())).collect();
    let confirmed = pairs.iter().any(|(k, v)| k == "confirm" && v == "on");
    let now = state.clock.now();
    match actions::networks::set_closed(&state.store, &admin.actor(), &state.trusted, &wanted, confirmed, now)
        .await
    {
        Ok(()) => {}
        Err(ActionError::NeedsConfirmation(msg)) => {
            let p = page(&state, &admin, None, Some(msg), AddForm::default(), true).await?;
            return Ok((axum::http::StatusCode::CONFLICT, p).into_response());
        }
        Err(e) => return Err(e.into()),
    }
    state.poke.notify_one();
    Ok(Redirect::to("/networks").into_response())
}

/// Back to the page the lockout banner was on.
fn back(body: &[u8]) -> Redirect {
    let countries = form_urlencoded::parse(body).any(|(k, v)| k == "back" && v == "countries");
    Redirect::to(if countries { "/countries" } else { "/networks" })
}

pub async fn keep(
    admin: CurrentAdmin,
    State(state): State<WebState>,
    body: Bytes,
) -> Result<Response, WebError> {
    actions::networks::keep(&state.store, &admin.actor(), state.clock.now()).await?;
    Ok(back(&body).into_response())
}

pub async fn revert_now(
    admin: CurrentAdmin,
    State(state): State<WebState>,
    body: Bytes,
) -> Result<Response, WebError> {
    if actions::networks::revert(&state.store, &admin.actor(), state.clock.now()).await? {
        state.poke.notify_one();
    }
    Ok(back(&body).into_response())
}

pub async fn set_targets(
    admin: CurrentAdmin,
    State(state): State<WebState>,
    body: Bytes,
) -> Result<Response, WebError> {
    let pairs: Vec<(String, String)> = form_urlencoded::parse(&body).into_owned().collect();
    let assignments: Vec<Assignment<'_>> = pairs
        .iter()
        .filter_map(|(key, role)| {
            let mut parts = key.strip_prefix("role:")?.splitn(2, ':');
            let (tech, name) = (parts.next()?, parts.next()?);
            let trunk = pairs
                .iter()
                .find(|(k, _)| *k == format!("trunk:{tech}:{name}"))
                .map_or("", |(_, v)| v.as_str());
            Some(Assignment { tech, name, role, trunk })
        })
        .collect();
    actions::networks::set_targets(&state.store, &admin.actor(), &assignments, state.clock.now()).await?;
    Ok(Redirect::to("/networks").into_response())
}

/// The ACL plan from the lists and the assignments.
async fn acl_plan(state: &WebState) -> Result<AclPlan, WebError> {
    let now = state.clock.now();
    let mut conn = state.store.acquire().await?;
    let mut extension_networks =
        store::networks::nets(&mut conn, crate::domain::NetworkList::Extensions, now).await?;
    // Trusted means full access: they may register as extensions too.
    extension_networks
        .extend(store::networks::nets(&mut conn, crate::domain::NetworkList::Trusted, now).await?);
    extension_networks.extend(state.trusted.networks());
    extension_networks.sort();
    extension_networks.dedup();
    let mut plan = AclPlan {
        extension_networks,
        always_deny: store::networks::nets(&mut conn, crate::domain::NetworkList::Deny, now).await?,
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
    admin: CurrentAdmin,
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
    Ok(PreviewPage { admin, diffs, error, applied: None })
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
    let (applied, error) = match outcome {
        Ok((names, _)) if names.is_empty() => (Some("nothing to change".to_string()), None),
        Ok((names, backups)) => {
            (Some(format!("wrote {}; {} backups", names.join(", "), backups.len())), None)
        }
        Err(e) => (None, Some(e.to_string())),
    };
    let outcome = applied.as_deref().ok_or(error.as_deref().unwrap_or_default());
    actions::networks::acl_applied(&state.store, &admin.actor(), outcome, state.clock.now()).await?;
    let status =
        if error.is_some() { axum::http::StatusCode::BAD_GATEWAY } else { axum::http::StatusCode::OK };
    Ok((status, PreviewPage { admin, diffs: Vec::new(), error, applied }).into_response())
}
