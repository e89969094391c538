//! `/audit`: every admin action, who, when, from where; failed panel logins on a view
//! of their own (`?show=failed-logins`), so guesses cannot push the actions away; one
//! account's rows with `?who=NAME`.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Query, State};
use axum::response::IntoResponse;

use super::{CurrentAdmin, WebError, WebState, when};
use crate::store;

pub struct Entry {
    pub at: String,
    pub actor: String,
    pub client_ip: String,
    pub action: String,
    pub detail: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "audit.html")]
struct AuditPage {
    admin: CurrentAdmin,
    entries: Vec<Entry>,
    failed_logins: bool,
    /// The account whose rows are shown, when one is.
    who: Option<String>,
}

#[derive(serde::Deserialize, Default)]
pub struct AuditQuery {
    #[serde(default)]
    show: String,
    #[serde(default)]
    who: String,
}

pub async fn list(
    admin: CurrentAdmin,
    State(state): State<WebState>,
    Query(q): Query<AuditQuery>,
) -> Result<impl IntoResponse, WebError> {
    let mut conn = state.store.acquire().await?;
    let failed_logins = q.show == "failed-logins";
    let who = Some(q.who).filter(|w| !w.is_empty());
    let rows = match &who {
        Some(name) => store::audit::recent_by(&mut conn, name, 500).await?,
        None => store::audit::recent_of(&mut conn, failed_logins, 500).await?,
    };
    let entries = rows
        .into_iter()
        .map(|a| Entry {
            at: when(a.at),
            actor: a.actor,
            client_ip: a.client_ip.unwrap_or_default(),
            action: a.action,
            detail: a.detail,
        })
        .collect();
    Ok(AuditPage { admin, entries, failed_logins: failed_logins && who.is_none(), who })
}
