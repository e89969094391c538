//! `/audit`: every admin action, who, when, from where.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::State;
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
    admin: String,
    entries: Vec<Entry>,
}

pub async fn list(admin: CurrentAdmin, State(state): State<WebState>) -> Result<impl IntoResponse, WebError> {
    let mut conn = state.store.pool().acquire().await?;
    let entries = store::audit::recent(&mut conn, 500)
        .await?
        .into_iter()
        .map(|a| Entry {
            at: when(a.at),
            actor: a.actor,
            client_ip: a.client_ip.unwrap_or_default(),
            action: a.action,
            detail: a.detail,
        })
        .collect();
    Ok(AuditPage { admin: admin.username, entries })
}
