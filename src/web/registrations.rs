//! `/registrations`: which extension logged in from where, flagged when that looks wrong.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::State;
use axum::response::IntoResponse;

use super::{CurrentAdmin, WebError, WebState, when};
use crate::domain::{DAY_MS, HOUR_MS};
use crate::store;

const SHOWN: i64 = 500;
const WITHIN: i64 = 30 * DAY_MS;

pub struct LoginView {
    pub account: String,
    pub ip: String,
    pub since: String,
    pub last: String,
    /// Why it deserves a look, in words; empty when it does not.
    pub flags: Vec<String>,
}

#[derive(Template, WebTemplate)]
#[template(path = "registrations.html")]
struct RegistrationsPage {
    admin: String,
    logins: Vec<LoginView>,
    extension_networks: bool,
}

pub async fn list(admin: CurrentAdmin, State(state): State<WebState>) -> Result<impl IntoResponse, WebError> {
    let now = state.clock.now();
    let mut conn = state.store.pool().acquire().await?;
    let rows = store::incidents::logins_recent(&mut conn, now - WITHIN, SHOWN).await?;
    let extensions = store::networks::nets(&mut conn, store::networks::EXTENSIONS, now).await?;
    let mut ips: Vec<String> = rows.iter().map(|r| r.ip.clone()).collect();
    ips.sort_unstable();
    ips.dedup();
    let failures = store::failures::counts_since_many(&mut conn, &ips, now - HOUR_MS, now - DAY_MS).await?;
    let logins = rows
        .into_iter()
        .map(|r| {
            let mut flags = Vec::new();
            let inside =
                r.ip.parse::<std::net::IpAddr>().is_ok_and(|ip| extensions.iter().any(|n| n.contains(&ip)));
            if !extensions.is_empty() && !inside {
                flags.push("outside the extension networks".to_string());
            }
            if r.first_at > r.account_first_at && now - r.first_at < DAY_MS {
                flags.push("new address for this extension".to_string());
            }
            if let Some((_, day)) = failures.get(&r.ip).filter(|(_, day)| *day > 0) {
                flags.push(format!("{day} failed login{} from it in 24 h", if *day == 1 { "" } else { "s" }));
            }
            LoginView { since: when(r.first_at), last: when(r.last_at), account: r.account, ip: r.ip, flags }
        })
        .collect();
    Ok(RegistrationsPage { admin: admin.username, logins, extension_networks: !extensions.is_empty() })
}
