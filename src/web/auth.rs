//! First start, login, logout, password change; `CurrentAdmin` guards every page.

use std::net::{IpAddr, SocketAddr};

use argon2::Argon2;
use argon2::password_hash::{PasswordHasher, PasswordVerifier, phc::PasswordHash};
use askama::Template;
use askama_web::WebTemplate;
use axum::Form;
use axum::extract::{ConnectInfo, FromRequestParts, Query, State};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use tower_sessions::Session;

use super::{WebError, WebState};
use crate::actions::{self, Actor};
use crate::domain::Role;
use crate::store;

const SESSION_ADMIN: &str = "admin_id";
/// The admin's `password_changed_at` when the session logged in: a password change
/// ends every session but the one that made it.
const SESSION_PASSWORD_AT: &str = "password_at";
pub(super) const MIN_PASSWORD: usize = 10;
const VIEWER_REFUSAL: &str =
    "This is a viewer account: it can look at everything but change nothing. Ask an admin.";

/// The logged-in admin. Pages take it as an argument; without a session the
/// request is sent to the login page.
#[derive(Debug, Clone)]
pub struct CurrentAdmin {
    pub id: i64,
    pub username: String,
    pub client_ip: String,
    pub role: Role,
}

impl CurrentAdmin {
    pub fn actor(&self) -> Actor<'_> {
        Actor { name: &self.username, client_ip: Some(&self.client_ip) }
    }

    /// For the templates: a viewer sees no buttons that change anything.
    pub fn is_viewer(&self) -> bool {
        !self.role.can_change()
    }
}

// Pages show the account by its name.
impl std::fmt::Display for CurrentAdmin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.username)
    }
}

/// What a viewer may still post: its own session and password.
const VIEWER_MAY_POST: [&str; 2] = ["/logout", "/password"];

/// Every change goes through a handler that takes `CurrentAdmin`, so refusing a
/// viewer's change here refuses it everywhere.
fn viewer_refused(parts: &Parts, role: Role) -> bool {
    let changes = !matches!(parts.method, axum::http::Method::GET | axum::http::Method::HEAD);
    changes && !role.can_change() && !VIEWER_MAY_POST.contains(&parts.uri.path())
}

/// Sends the browser to `to`; htmx requests get `HX-Redirect` so the whole page moves.
pub fn redirect(parts_is_htmx: bool, to: &str) -> Response {
    if parts_is_htmx { ([("HX-Redirect", to)], "").into_response() } else { Redirect::to(to).into_response() }
}

pub fn client_ip(parts: &Parts) -> String {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| canonical(c.0.ip()).to_string())
        .unwrap_or_else(|| "unknown".into())
}

fn canonical(ip: IpAddr) -> IpAddr {
    crate::domain::network::canonical_ip(ip)
}

/// Asked for by an open page on its own (the dashboard every 5 s): not a sign that
/// someone is there, so it does not keep the session alive.
const REFRESHED_BY_THE_PAGE: [&str; 1] = ["/dashboard/live"];

/// When the session was last saved, in Unix seconds.
const SESSION_SAVED: &str = "saved";

/// Idle expiry counts from the session's last save, and a session is only saved when
/// changed: one in use is saved again (at most once a second) so it does not expire
/// under an admin at work.
async fn keep_alive(session: &Session) -> Result<(), WebError> {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let saved: Option<i64> = session.get(SESSION_SAVED).await?;
    if saved != Some(now) {
        session.insert(SESSION_SAVED, now).await?;
    }
    Ok(())
}

impl FromRequestParts<WebState> for CurrentAdmin {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &WebState) -> Result<Self, Self::Rejection> {
        let htmx = parts.headers.contains_key("hx-request");
        let session = Session::from_request_parts(parts, state).await.map_err(|e| e.into_response())?;
        let id: Option<i64> =
            session.get(SESSION_ADMIN).await.map_err(|e| WebError::from(e).into_response())?;
        if id.is_some() && !REFRESHED_BY_THE_PAGE.contains(&parts.uri.path()) {
            keep_alive(&session).await.map_err(|e| e.into_response())?;
        }
        let Some(id) = id else {
            let mut conn = state.store.acquire().await.map_err(|e| WebError::from(e).into_response())?;
            let none =
                store::admins::count(&mut conn).await.map_err(|e| WebError::from(e).into_response())? == 0;
            return Err(redirect(htmx, if none { "/setup" } else { "/login" }));
        };
        let mut conn = state.store.acquire().await.map_err(|e| WebError::from(e).into_response())?;
        let admin =
            store::admins::by_id(&mut conn, id).await.map_err(|e| WebError::from(e).into_response())?;
        let password_at: Option<i64> =
            session.get(SESSION_PASSWORD_AT).await.map_err(|e| WebError::from(e).into_response())?;
        match admin {
            Some(a) if password_at == Some(a.password_changed_at) => {
                if viewer_refused(parts, a.role) {
                    tracing::warn!(user = %a.username, path = %parts.uri.path(), "a viewer account tried a change");
                    return Err(WebError::Forbidden(VIEWER_REFUSAL.into()).into_response());
                }
                Ok(CurrentAdmin { id: a.id, username: a.username, client_ip: client_ip(parts), role: a.role })
            }
            _ => {
                session.flush().await.map_err(|e| WebError::from(e).into_response())?;
                Err(redirect(htmx, "/login"))
            }
        }
    }
}

/// Hashes off the async threads: argon2 is slow on purpose.
pub(super) async fn hash(password: String) -> Result<String, WebError> {
    tokio::task::spawn_blocking(move || actions::admins::hash_password(&password))
        .await
        .map_err(|e| WebError::Internal(e.to_string()))?
        .map_err(|e| WebError::Internal(e.to_string()))
}

async fn verify(password: String, stored: String) -> bool {
    tokio::task::spawn_blocking(move || {
        PasswordHash::new(&stored)
            .is_ok_and(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
    })
    .await
    .unwrap_or(false)
}

/// Verified against for unknown user names, so they take as long as known ones.
static DUMMY_HASH: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    Argon2::default()
        .hash_password(b"no such admin, no such password")
        .map(|h| h.to_string())
        .unwrap_or_default()
});

#[derive(Template, WebTemplate)]
#[template(path = "login.html")]
struct LoginPage {
    error: Option<String>,
    username: String,
}

#[derive(Deserialize)]
pub struct LoginForm {
    username: String,
    password: String,
}

pub async fn login_form(State(state): State<WebState>) -> Result<Response, WebError> {
    let mut conn = state.store.acquire().await?;
    if store::admins::count(&mut conn).await? == 0 {
        return Ok(Redirect::to("/setup").into_response());
    }
    Ok(LoginPage { error: None, username: String::new() }.into_response())
}

pub async fn login(
    State(state): State<WebState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    session: Session,
    Form(form): Form<LoginForm>,
) -> Result<Response, WebError> {
    let ip = canonical(peer.ip());
    let ip_text = ip.to_string();
    let username = form.username.trim().to_string();
    let mut conn = state.store.acquire().await?;
    // Guessers spread over many addresses exhaust a user's quota; the admin at an
    // address they logged in from before still gets in (its own address limit holds).
    let limited = state.login_per_ip.check_key(&ip).is_err()
        || (state.login_per_user.check_key(&username).is_err()
            && !store::audit::logged_in_before(&mut conn, &username, &ip_text).await?.1);
    if limited {
        tracing::warn!("sipwarden: panel login rate-limited client_ip={ip}");
        return Err(WebError::TooManyRequests);
    }
    let admin = store::admins::by_username(&mut conn, &username).await?;
    let stored = match admin.as_ref() {
        Some(a) => a.password_hash.clone(),
        None => tokio::task::spawn_blocking(|| DUMMY_HASH.clone()).await.unwrap_or_default(),
    };
    let ok = verify(form.password, stored).await && admin.is_some();
    let now = state.clock.now();
    let Some(admin) = admin.filter(|_| ok) else {
        // One stable line a log watcher (even fail2ban) can read.
        tracing::warn!("sipwarden: panel login failed client_ip={ip} user={username:?}");
        let tried = Actor { name: &username, client_ip: Some(&ip_text) };
        actions::admins::login_failed(&state.store, &tried, now).await?;
        // Counted by the ban rules like a wrong SIP password; never waits.
        if let Some(failures) = &state.panel_failures {
            let _ = failures.try_send(crate::ingest::panel::failure(now, ip, &username));
        }
        let page = LoginPage { error: Some("Wrong user name or password.".into()), username };
        return Ok((axum::http::StatusCode::UNAUTHORIZED, page).into_response());
    };
    // A new session id at login: a planted cookie never becomes a logged-in one.
    session.cycle_id().await?;
    session.insert(SESSION_ADMIN, admin.id).await?;
    session.insert(SESSION_PASSWORD_AT, admin.password_changed_at).await?;
    let (before, from_here) = store::audit::logged_in_before(&mut conn, &admin.username, &ip_text).await?;
    if before && !from_here {
        if let Some(alerts) = &state.alerts {
            alerts.raise(crate::alerts::Alert {
                kind: crate::alerts::AlertKind::AdminLogin,
                subject: format!("Panel login by {} from a new address, {ip_text}", admin.username),
                text: format!(
                    "{} logged in to sipwarden's panel from {ip_text}, an address not used before. If that was not you, change the password and look at the audit log.",
                    admin.username
                ),
                at: now,
            });
        }
    }
    drop(conn);
    let actor = Actor { name: &admin.username, client_ip: Some(&ip_text) };
    if actions::admins::logged_in(&state.store, &actor, ip, now).await? {
        state.poke.notify_one();
    }
    Ok(Redirect::to("/").into_response())
}

pub async fn logout(
    admin: CurrentAdmin,
    State(state): State<WebState>,
    session: Session,
) -> Result<Response, WebError> {
    actions::admins::logged_out(&state.store, &admin.actor(), state.clock.now()).await?;
    session.flush().await?;
    Ok(Redirect::to("/login").into_response())
}

#[derive(Template, WebTemplate)]
#[template(path = "setup.html")]
struct SetupPage {
    token: String,
    error: Option<String>,
    username: String,
}

#[derive(Deserialize)]
pub struct SetupQuery {
    #[serde(default)]
    token: String,
}

#[derive(Deserialize)]
pub struct SetupForm {
    token: String,
    username: String,
    password: String,
    confirm: String,
}

fn token_matches(state: &WebState, token: &str) -> bool {
    let guard = state.setup_token.lock().unwrap_or_else(|p| p.into_inner());
    guard.as_deref().is_some_and(|t| !token.is_empty() && constant_time_eq(t.as_bytes(), token.as_bytes()))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

pub async fn setup_form(
    State(state): State<WebState>,
    Query(q): Query<SetupQuery>,
) -> Result<Response, WebError> {
    let mut conn = state.store.acquire().await?;
    if store::admins::count(&mut conn).await? > 0 {
        return Ok(Redirect::to("/login").into_response());
    }
    if !token_matches(&state, &q.token) {
        return Err(WebError::BadRequest(
            "Open the setup address printed by `sipwarden serve` (also in setup-url in the data directory)."
                .into(),
        ));
    }
    Ok(SetupPage { token: q.token, error: None, username: "admin".into() }.into_response())
}

pub async fn setup(
    State(state): State<WebState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    session: Session,
    Form(form): Form<SetupForm>,
) -> Result<Response, WebError> {
    let mut conn = state.store.acquire().await?;
    if store::admins::count(&mut conn).await? > 0 || !token_matches(&state, &form.token) {
        return Err(WebError::BadRequest("This setup link is no longer valid.".into()));
    }
    let username = form.username.trim().to_string();
    let problem = if username.is_empty() || username.len() > 64 {
        Some("Choose a user name of 1 to 64 characters.".to_string())
    } else {
        password_problem(&form.password, &form.confirm)
    };
    if let Some(error) = problem {
        let page = SetupPage { token: form.token, error: Some(error), username };
        return Ok((axum::http::StatusCode::BAD_REQUEST, page).into_response());
    }
    let hashed = hash(form.password).await?;
    let now = state.clock.now();
    let ip = canonical(peer.ip()).to_string();
    drop(conn);
    // Another setup request may have won while the password was hashed.
    let actor = Actor { name: &username, client_ip: Some(&ip) };
    let Some(id) = actions::admins::create_first(&state.store, &actor, &hashed, now).await? else {
        return Err(WebError::BadRequest("This setup link is no longer valid.".into()));
    };
    *state.setup_token.lock().unwrap_or_else(|p| p.into_inner()) = None;
    session.cycle_id().await?;
    session.insert(SESSION_ADMIN, id).await?;
    session.insert(SESSION_PASSWORD_AT, now).await?;
    if actions::admins::remember_address(&state.store, &username, canonical(peer.ip()), now).await? {
        state.poke.notify_one();
    }
    Ok(Redirect::to("/").into_response())
}

/// The address an admin logged in from is never banned (and, if banned, released).
pub(super) fn password_problem(password: &str, confirm: &str) -> Option<String> {
    if password.chars().count() < MIN_PASSWORD {
        Some(format!("The password needs at least {MIN_PASSWORD} characters."))
    } else if password != confirm {
        Some("The two passwords differ.".into())
    } else {
        None
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "password.html")]
struct PasswordPage {
    admin: CurrentAdmin,
    error: Option<String>,
    done: bool,
}

#[derive(Deserialize)]
pub struct PasswordForm {
    current: String,
    password: String,
    confirm: String,
}

pub async fn password_form(admin: CurrentAdmin) -> impl IntoResponse {
    PasswordPage { admin, error: None, done: false }
}

pub async fn change_password(
    admin: CurrentAdmin,
    State(state): State<WebState>,
    session: Session,
    Form(form): Form<PasswordForm>,
) -> Result<Response, WebError> {
    let mut conn = state.store.acquire().await?;
    let row = store::admins::by_id(&mut conn, admin.id).await?.ok_or(WebError::NotFound)?;
    let error = if !verify(form.current, row.password_hash).await {
        Some("The current password is wrong.".to_string())
    } else {
        password_problem(&form.password, &form.confirm)
    };
    if let Some(error) = error {
        let page = PasswordPage { admin, error: Some(error), done: false };
        return Ok((axum::http::StatusCode::BAD_REQUEST, page).into_response());
    }
    let hashed = hash(form.password).await?;
    let now = state.clock.now();
    drop(conn);
    let changed_at =
        actions::admins::change_password(&state.store, &admin.actor(), admin.id, &hashed, now).await?;
    session.cycle_id().await?;
    // This session goes on; every other one of this admin ends.
    session.insert(SESSION_PASSWORD_AT, changed_at).await?;
    Ok(PasswordPage { admin, error: None, done: true }.into_response())
}
