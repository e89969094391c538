//! `/registrations`: which extension is registered where now, and which logged in from
//! where; each flagged when that looks wrong.

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
    /// The address's country (`—` unknown).
    pub country: String,
    pub account: String,
    pub ip: String,
    pub since: String,
    pub last: String,
    /// Why it deserves a look, in words; empty when it does not.
    pub flags: Vec<String>,
    /// The PBX the extension is on.
    pub node: String,
}

/// A registration in force: the Contact as the phone gave it (attacker text, escaped
/// by the template like everything else).
pub struct ContactView {
    pub account: String,
    pub uri: String,
    pub user_agent: String,
    pub since: String,
    pub flags: Vec<String>,
    /// The PBX it registered with.
    pub node: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "registrations.html")]
struct RegistrationsPage {
    admin: CurrentAdmin,
    contacts: Vec<ContactView>,
    logins: Vec<LoginView>,
    extension_networks: bool,
    /// The PBXes sharing the store (empty with one), and the one chosen.
    nodes: Vec<String>,
    node: String,
}

/// Why a registration deserves a look, in words.
fn contact_flags(
    c: &store::contacts::ContactRow,
    extensions: &[ipnet::IpNet],
    logins: &[store::incidents::LoginRow],
    failures: &std::collections::HashMap<String, (u32, u32)>,
) -> Vec<String> {
    let (host, claimed) = crate::asterisk::contacts::hosts(&c.uri);
    let mut flags = Vec::new();
    if let Some(claimed) = claimed.filter(|h| host.is_none_or(|ip| ip.to_string() != *h)) {
        flags.push(format!("the phone gave {claimed} as its address"));
    }
    let Some(host) = host else { return flags };
    if !extensions.is_empty() && !extensions.iter().any(|n| n.contains(&host)) {
        flags.push("registered from outside the extension networks".to_string());
    }
    let own: Vec<&str> =
        logins.iter().filter(|l| l.account == c.account && l.node == c.node).map(|l| l.ip.as_str()).collect();
    if !own.is_empty() && !own.contains(&host.to_string().as_str()) {
        flags.push("not an address this extension logged in from".to_string());
    }
    if let Some((_, day)) = failures.get(&host.to_string()).filter(|(_, day)| *day > 0) {
        flags.push(format!("{day} failed login{} from it in 24 h", if *day == 1 { "" } else { "s" }));
    }
    flags
}

pub async fn list(
    admin: CurrentAdmin,
    State(state): State<WebState>,
    axum::extract::Query(f): axum::extract::Query<super::incidents::NodeFilter>,
) -> Result<impl IntoResponse, WebError> {
    let now = state.clock.now();
    let mut conn = state.store.acquire().await?;
    let chosen = Some(f.node.as_str()).filter(|n| !n.is_empty());
    let rows = store::incidents::logins_recent(&mut conn, chosen, now - WITHIN, SHOWN).await?;
    let extensions = store::networks::nets(&mut conn, crate::domain::NetworkList::Extensions, now).await?;
    let registered = store::contacts::current(&mut conn, chosen, now, SHOWN).await?;
    let mut ips: Vec<String> = rows.iter().map(|r| r.ip.clone()).collect();
    ips.extend(
        registered.iter().filter_map(|c| crate::asterisk::contacts::hosts(&c.uri).0).map(|ip| ip.to_string()),
    );
    ips.sort_unstable();
    ips.dedup();
    let failures = store::failures::counts_since_many(&mut conn, &ips, now - HOUR_MS, now - DAY_MS).await?;
    let contacts = registered
        .iter()
        .map(|c| ContactView {
            account: c.account.clone(),
            uri: c.uri.clone(),
            user_agent: c.user_agent.clone().unwrap_or_default(),
            since: when(c.first_at),
            node: c.node.clone(),
            flags: contact_flags(c, &extensions, &rows, &failures),
        })
        .collect();
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
            LoginView {
                since: when(r.first_at),
                last: when(r.last_at),
                account: r.account,
                country: state.geo.shown(&r.ip),
                ip: r.ip,
                node: r.node,
                flags,
            }
        })
        .collect();
    let nodes = super::node_names(&mut conn).await?;
    let extension_networks = !extensions.is_empty();
    Ok(RegistrationsPage { admin, contacts, logins, extension_networks, nodes, node: f.node })
}
