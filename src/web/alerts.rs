//! `/alerts`: where alerts go (a webhook, a mail server), which kinds, and a test.

use askama::Template;
use askama_web::WebTemplate;
use axum::Form;
use axum::extract::State;
use axum::response::IntoResponse;
use serde::Deserialize;

use super::{CurrentAdmin, WebError, WebState};
use crate::alerts::{self, AlertKind, AlertSettings, Security};

pub struct KindView {
    pub name: &'static str,
    pub label: &'static str,
    pub on: bool,
}

#[derive(Template, WebTemplate)]
#[template(path = "alerts.html")]
struct AlertsPage {
    admin: CurrentAdmin,
    webhook: String,
    host: String,
    port: String,
    security: &'static str,
    username: String,
    /// A password is stored (never shown).
    password_set: bool,
    from: String,
    to: String,
    digest_minutes: String,
    kinds: Vec<KindView>,
    health: String,
    error: Option<String>,
    message: Option<String>,
}

#[derive(Deserialize, Default)]
pub struct AlertsForm {
    #[serde(default)]
    webhook: String,
    #[serde(default)]
    host: String,
    #[serde(default)]
    port: String,
    #[serde(default)]
    security: String,
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    /// Kinds left on: a checkbox each, named as the kind.
    breach: Option<String>,
    toll_fraud: Option<String>,
    unlocked: Option<String>,
    not_protecting: Option<String>,
    admin_login: Option<String>,
    bans: Option<String>,
    daily_summary: Option<String>,
    #[serde(default)]
    digest_minutes: String,
}

impl AlertsForm {
    fn is_on(&self, kind: AlertKind) -> bool {
        match kind {
            AlertKind::Breach => self.breach.is_some(),
            AlertKind::TollFraud => self.toll_fraud.is_some(),
            AlertKind::Unlocked => self.unlocked.is_some(),
            AlertKind::NotProtecting => self.not_protecting.is_some(),
            AlertKind::AdminLogin => self.admin_login.is_some(),
            AlertKind::Bans => self.bans.is_some(),
            AlertKind::DailySummary => self.daily_summary.is_some(),
            AlertKind::Test => true,
        }
    }
}

fn security_name(s: Security) -> &'static str {
    match s {
        Security::Starttls => "starttls",
        Security::Tls => "tls",
        Security::None => "none",
    }
}

fn page(state: &WebState, admin: CurrentAdmin, s: &AlertSettings) -> AlertsPage {
    let smtp = s.smtp.as_ref();
    let health = match &state.alerts {
        Some(a) => {
            let h = a.health();
            match h.problem {
                Some(p) => format!("{} sent; the last one failed: {p}", h.sent),
                None => format!(
                    "{} sent{}",
                    h.sent,
                    if h.dropped > 0 { format!(", {} dropped", h.dropped) } else { String::new() }
                ),
            }
        }
        None => String::new(),
    };
    AlertsPage {
        admin,
        webhook: s.webhook.clone().unwrap_or_default(),
        host: smtp.map(|m| m.host.clone()).unwrap_or_default(),
        port: smtp.map_or("587".into(), |m| m.port.to_string()),
        security: smtp.map_or("starttls", |m| security_name(m.security)),
        username: smtp.and_then(|m| m.username.clone()).unwrap_or_default(),
        password_set: smtp.is_some_and(|m| m.password.is_some()),
        from: smtp.map(|m| m.from.clone()).unwrap_or_default(),
        to: smtp.map(|m| m.to.join(", ")).unwrap_or_default(),
        digest_minutes: s.digest_minutes.to_string(),
        kinds: AlertKind::CHOSEN
            .iter()
            .map(|k| KindView { name: k.as_str(), label: k.label(), on: s.wants(*k) })
            .collect(),
        health,
        error: None,
        message: None,
    }
}

pub async fn show(admin: CurrentAdmin, State(state): State<WebState>) -> Result<impl IntoResponse, WebError> {
    let settings = alerts::load(&state.store).await?.unwrap_or_default();
    Ok(page(&state, admin.clone(), &settings))
}

/// The form as settings; an empty password keeps the stored one.
fn from_form(form: &AlertsForm, stored: &AlertSettings) -> Result<AlertSettings, String> {
    let off = AlertKind::CHOSEN.iter().filter(|k| !form.is_on(**k)).map(|k| k.as_str().to_owned()).collect();
    let mut settings = alerts::parse_settings(
        &form.webhook,
        &form.host,
        &form.port,
        &form.security,
        &form.username,
        &form.password,
        &form.from,
        &form.to,
        off,
        &form.digest_minutes,
    )?;
    if let (Some(new), Some(old)) = (settings.smtp.as_mut(), stored.smtp.as_ref()) {
        if new.password.is_none() && new.host == old.host && new.username == old.username {
            new.password = old.password.clone();
        }
    }
    Ok(settings)
}

/// Shows the form again as typed, with an error.
fn refused(
    state: &WebState,
    admin: CurrentAdmin,
    form: &AlertsForm,
    stored: &AlertSettings,
    error: String,
) -> AlertsPage {
    let mut p = page(state, admin, stored);
    (p.webhook, p.host, p.port, p.username, p.from, p.to) = (
        form.webhook.clone(),
        form.host.clone(),
        form.port.clone(),
        form.username.clone(),
        form.from.clone(),
        form.to.clone(),
    );
    p.error = Some(error);
    p
}

/// The settings as typed, or the form shown again with what is wrong.
async fn typed(
    state: &WebState,
    admin: &CurrentAdmin,
    form: &AlertsForm,
) -> Result<Result<AlertSettings, AlertsPage>, WebError> {
    let stored = alerts::load(&state.store).await?.unwrap_or_default();
    Ok(from_form(form, &stored).map_err(|e| refused(state, admin.clone(), form, &stored, e)))
}

pub async fn save(
    admin: CurrentAdmin,
    State(state): State<WebState>,
    Form(form): Form<AlertsForm>,
) -> Result<impl IntoResponse, WebError> {
    let settings = match typed(&state, &admin, &form).await? {
        Ok(s) => s,
        Err(refused) => return Ok(refused),
    };
    let json = serde_json::to_string(&settings).map_err(|e| WebError::Internal(e.to_string()))?;
    let detail = format!(
        "alerts: webhook {}, mail {}, off: {}",
        if settings.webhook.is_some() { "on" } else { "off" },
        settings.smtp.as_ref().map_or("off".to_string(), |m| format!("to {}", m.to.join(", "))),
        if settings.off.is_empty() { "none".to_string() } else { settings.off.join(", ") }
    );
    crate::actions::set_alert_settings(&state.store, &admin.actor(), &json, &detail, state.clock.now())
        .await
        .map_err(|e| WebError::Internal(e.to_string()))?;
    let mut p = page(&state, admin.clone(), &settings);
    p.message = Some("Saved.".into());
    Ok(p)
}

/// Sends a test with the settings as typed (saved or not) and says how it went.
pub async fn test(
    admin: CurrentAdmin,
    State(state): State<WebState>,
    Form(form): Form<AlertsForm>,
) -> Result<impl IntoResponse, WebError> {
    let settings = match typed(&state, &admin, &form).await? {
        Ok(s) => s,
        Err(refused) => return Ok(refused),
    };
    let result = alerts::test(&settings, state.clock.now()).await;
    let mut p = page(&state, admin.clone(), &settings);
    match result {
        Ok(()) => p.message = Some("Test sent: it should arrive within a minute.".into()),
        Err(e) => p.error = Some(format!("The test could not be sent: {e}")),
    }
    Ok(p)
}
