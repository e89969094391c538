//! `/incidents`: breaches and toll-fraud trips, what was done about each, and Unlock.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Path, Query, State};
use axum::response::IntoResponse;

use super::{CurrentAdmin, WebError, WebState, when};
use crate::actions::{self, ActionError};
use crate::store::{self, incidents::IncidentRow};

const SHOWN: i64 = 200;

/// One incident as the page shows it.
pub struct IncidentView {
    pub id: i64,
    pub at: String,
    pub kind: &'static str,
    pub severity: String,
    pub account: String,
    pub address: String,
    /// The address's country (`—` unknown).
    pub country: String,
    pub reason: String,
    pub calls: String,
    pub numbers: String,
    pub actions: Vec<String>,
    pub locking: bool,
    pub unlocked: String,
    /// The PBX whose extension it was.
    pub node: String,
}

/// The sentence the dashboard banner and the page lead with.
pub fn headline(i: &IncidentRow) -> String {
    let what = match i.kind.as_str() {
        "toll_fraud" => {
            format!("{}, calls to {}", i.reason, if i.numbers.is_empty() { "?" } else { &i.numbers })
        }
        _ => i.reason.clone(),
    };
    let from = i.ip.as_deref().map(|ip| format!(" from {ip}")).unwrap_or_default();
    format!("{}{from}: {what}", i.account)
}

pub fn view(i: IncidentRow, geo: &crate::geo::Geo) -> IncidentView {
    IncidentView {
        id: i.id,
        at: when(i.at),
        kind: if i.kind == "toll_fraud" { "toll fraud" } else { "breach" },
        severity: i.severity.clone(),
        account: i.account.clone(),
        address: i.ip.clone().unwrap_or_default(),
        country: i.ip.as_deref().map_or_else(String::new, |ip| geo.shown(ip)),
        calls: i.calls.map(|c| c.to_string()).unwrap_or_default(),
        numbers: i.numbers.clone(),
        actions: i.actions.lines().map(str::to_owned).collect(),
        locking: i.is_locking(),
        unlocked: match (&i.unlocked_at, &i.unlocked_by) {
            (Some(at), Some(by)) => format!("unlocked by {by} at {}", when(*at)),
            _ => String::new(),
        },
        node: i.node,
        reason: i.reason,
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "incidents.html")]
struct IncidentsPage {
    admin: CurrentAdmin,
    incidents: Vec<IncidentView>,
    message: Option<String>,
    /// The PBXes sharing the store (empty with one), and the one chosen.
    nodes: Vec<String>,
    node: String,
}

/// `?node=`: one PBX's incidents.
#[derive(serde::Deserialize, Default)]
pub struct NodeFilter {
    #[serde(default)]
    pub node: String,
}

async fn page(
    state: &WebState,
    admin: CurrentAdmin,
    message: Option<String>,
    node: String,
) -> Result<IncidentsPage, WebError> {
    let mut conn = state.store.acquire().await?;
    let chosen = Some(node.as_str()).filter(|n| !n.is_empty());
    let incidents = store::incidents::recent_of(&mut conn, chosen, SHOWN)
        .await?
        .into_iter()
        .map(|i| view(i, &state.geo))
        .collect();
    let nodes = super::node_names(&mut conn).await?;
    Ok(IncidentsPage { admin, incidents, message, nodes, node })
}

pub async fn list(
    admin: CurrentAdmin,
    State(state): State<WebState>,
    Query(f): Query<NodeFilter>,
) -> Result<impl IntoResponse, WebError> {
    page(&state, admin.clone(), None, f.node).await
}

/// Unlocks the extension incident `id` locked, and tells Asterisk.
pub async fn unlock(
    admin: CurrentAdmin,
    State(state): State<WebState>,
    Path(id): Path<i64>,
) -> Result<impl IntoResponse, WebError> {
    let mut conn = state.store.acquire().await?;
    let Some(incident) = store::incidents::by_id(&mut conn, id).await? else {
        return Err(WebError::NotFound);
    };
    drop(conn);
    let account = incident.account;
    let message = match actions::unlock(&state.store, &admin.actor(), &account, state.clock.now()).await {
        Ok(_) => {
            let told = match &state.pbx_control {
                Some(pbx) => {
                    let (pbx, name) = (pbx.clone(), account.clone());
                    match tokio::task::spawn_blocking(move || pbx.set_locked(&name, false)).await {
                        Ok(Ok(())) => String::new(),
                        Ok(Err(e)) => format!(
                            " Asterisk could not be told ({e}): run `asterisk -rx 'database del sipwarden-locked {account}'`."
                        ),
                        Err(e) => format!(" Asterisk could not be told: {e}."),
                    }
                }
                None => String::new(),
            };
            if let Some(alerts) = &state.alerts {
                alerts.raise(crate::alerts::Alert {
                    kind: crate::alerts::AlertKind::Unlocked,
                    subject: format!("Extension {account} unlocked by {}", admin.username),
                    text: format!(
                        "{} unlocked extension {account} from {}.",
                        admin.username, admin.client_ip
                    ),
                    at: state.clock.now(),
                });
            }
            format!("Extension {account} is unlocked. Change its SIP password now if it was guessed.{told}")
        }
        Err(ActionError::NotLocked(a)) => format!("Extension {a} was not locked."),
        Err(ActionError::Store(e)) => return Err(e.into()),
        Err(e) => return Err(WebError::BadRequest(e.to_string())),
    };
    page(&state, admin.clone(), Some(message), String::new()).await
}
