//! `/accounts`: the panel's accounts. Admins add, remove, reset and change the role of
//! the others; each row links to that account's part of the audit log.

use askama::Template;
use askama_web::WebTemplate;
use axum::Form;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::auth::{MIN_PASSWORD, hash, password_problem};
use super::{CurrentAdmin, WebError, WebState, when};
use crate::actions::{self, ActionError};
use crate::domain::Role;
use crate::store;

pub struct AccountView {
    pub id: i64,
    pub username: String,
    pub role: Role,
    pub created: String,
    pub last_login: String,
    pub password_changed: String,
    pub is_you: bool,
    /// The audit log of this account.
    pub audit_link: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "accounts.html")]
struct AccountsPage {
    admin: CurrentAdmin,
    accounts: Vec<AccountView>,
    roles: [Role; 2],
    min_password: usize,
    error: Option<String>,
    done: Option<String>,
    /// The add form as typed, shown again after an error.
    new_username: String,
    new_role: Role,
}

async fn page(
    state: &WebState,
    admin: CurrentAdmin,
    error: Option<String>,
    done: Option<String>,
) -> Result<AccountsPage, WebError> {
    let mut conn = state.store.acquire().await?;
    let accounts = store::admins::list(&mut conn)
        .await?
        .into_iter()
        .map(|a| AccountView {
            is_you: a.id == admin.id,
            audit_link: format!(
                "/audit?{}",
                form_urlencoded::Serializer::new(String::new()).append_pair("who", &a.username).finish()
            ),
            id: a.id,
            username: a.username,
            role: a.role,
            created: when(a.created_at),
            last_login: a.last_login.map_or("never".into(), when),
            password_changed: when(a.password_changed_at),
        })
        .collect();
    Ok(AccountsPage {
        admin,
        accounts,
        roles: Role::ALL,
        min_password: MIN_PASSWORD,
        error,
        done,
        new_username: String::new(),
        new_role: Role::Viewer,
    })
}

pub async fn list(admin: CurrentAdmin, State(state): State<WebState>) -> Result<impl IntoResponse, WebError> {
    page(&state, admin, None, None).await
}

/// The page again with what went wrong; nothing was changed.
async fn refused(state: &WebState, admin: CurrentAdmin, error: String) -> Result<Response, WebError> {
    let page = page(state, admin, Some(format!("{error} Nothing was changed.")), None).await?;
    Ok((StatusCode::BAD_REQUEST, page).into_response())
}

async fn finished(
    state: &WebState,
    admin: CurrentAdmin,
    result: Result<String, ActionError>,
) -> Result<Response, WebError> {
    match result {
        Ok(done) => Ok(page(state, admin, None, Some(done)).await?.into_response()),
        Err(ActionError::Refused(why)) => refused(state, admin, why).await,
        Err(e) => Err(e.into()),
    }
}

#[derive(Deserialize)]
pub struct AddForm {
    username: String,
    role: String,
    password: String,
    confirm: String,
}

/// A user name an admin can type and read back: 1 to 64 characters, no control
/// characters, no spaces at either end.
fn username_problem(name: &str) -> Option<String> {
    let ok = !name.is_empty() && name.chars().count() <= 64 && !name.chars().any(char::is_control);
    (!ok).then(|| "Choose a user name of 1 to 64 characters, without control characters.".into())
}

pub async fn add(
    admin: CurrentAdmin,
    State(state): State<WebState>,
    Form(form): Form<AddForm>,
) -> Result<Response, WebError> {
    let username = form.username.trim().to_string();
    let Some(role) = Role::parse(&form.role) else {
        return refused(&state, admin, format!("Unknown role {:?}.", form.role)).await;
    };
    let problem = username_problem(&username).or_else(|| password_problem(&form.password, &form.confirm));
    if let Some(problem) = problem {
        let mut p = page(&state, admin, Some(format!("{problem} Nothing was changed.")), None).await?;
        (p.new_username, p.new_role) = (username, role);
        return Ok((StatusCode::BAD_REQUEST, p).into_response());
    }
    let hashed = hash(form.password).await?;
    let now = state.clock.now();
    let result = actions::admins::add_account(&state.store, &admin.actor(), &username, &hashed, role, now)
        .await
        .map(|_| format!("Account {username} added as {role}."));
    finished(&state, admin, result).await
}

#[derive(Deserialize)]
pub struct RoleForm {
    role: String,
}

pub async fn set_role(
    admin: CurrentAdmin,
    State(state): State<WebState>,
    Path(id): Path<i64>,
    Form(form): Form<RoleForm>,
) -> Result<Response, WebError> {
    let Some(role) = Role::parse(&form.role) else {
        return refused(&state, admin, format!("Unknown role {:?}.", form.role)).await;
    };
    let now = state.clock.now();
    let result = actions::admins::set_role(&state.store, &admin.actor(), id, role, now)
        .await
        .map(|_| format!("Role changed to {role}."));
    finished(&state, admin, result).await
}

#[derive(Deserialize)]
pub struct ResetForm {
    password: String,
    confirm: String,
}

pub async fn reset_password(
    admin: CurrentAdmin,
    State(state): State<WebState>,
    Path(id): Path<i64>,
    Form(form): Form<ResetForm>,
) -> Result<Response, WebError> {
    if id == admin.id {
        return refused(&state, admin, "Change your own password on your password page.".into()).await;
    }
    if let Some(problem) = password_problem(&form.password, &form.confirm) {
        return refused(&state, admin, problem).await;
    }
    let hashed = hash(form.password).await?;
    let now = state.clock.now();
    let result = actions::admins::reset_password(&state.store, &admin.actor(), id, &hashed, now)
        .await
        .map(|name| format!("Password of {name} set; {name} is logged out everywhere."));
    finished(&state, admin, result).await
}

pub async fn remove(
    admin: CurrentAdmin,
    State(state): State<WebState>,
    Path(id): Path<i64>,
) -> Result<Response, WebError> {
    let now = state.clock.now();
    let result = actions::admins::remove_account(&state.store, &admin.actor(), id, now)
        .await
        .map(|_| "Account removed; its sessions have ended.".to_string());
    finished(&state, admin, result).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_names_are_refused_when_unreadable() {
        assert!(username_problem("maria").is_none());
        assert!(username_problem("").is_some());
        assert!(username_problem("a\nb").is_some());
        assert!(username_problem(&"x".repeat(65)).is_some());
    }
}
