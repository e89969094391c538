//! `/settings`: the ban ladder and trusted networks, validated before anything is saved.

use askama::Template;
use askama_web::WebTemplate;
use axum::Form;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::{CurrentAdmin, WebError, WebState, when};
use crate::config;
use crate::policy::{Ladder, Rung, human_duration};
use crate::store;

pub struct RungView {
    pub failures: String,
    pub within: String,
    pub ban: String,
}

pub struct NetworkView {
    pub id: i64,
    pub cidr: String,
    pub label: String,
    pub added: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "settings.html")]
struct SettingsPage {
    admin: CurrentAdmin,
    rungs: Vec<RungView>,
    known_good_failures: String,
    known_good_for: String,
    repeat_within: String,
    repeat_ban: String,
    config_trusted: Vec<String>,
    trusted: Vec<NetworkView>,
    admin_addresses: Vec<NetworkView>,
    sources: Vec<(String, String)>,
    error: Option<String>,
    saved: Option<String>,
    new_cidr: String,
    new_label: String,
}

const RUNG_ROWS: usize = 4;

fn rung_views(ladder: &Ladder) -> Vec<RungView> {
    let mut rows: Vec<RungView> = ladder
        .rungs
        .iter()
        .map(|r| RungView {
            failures: r.failures.to_string(),
            within: human_duration(r.within_ms),
            ban: r.ban_ms.map_or("until-released".into(), human_duration),
        })
        .collect();
    while rows.len() < RUNG_ROWS {
        rows.push(RungView { failures: String::new(), within: String::new(), ban: String::new() });
    }
    rows
}

async fn page(
    state: &WebState,
    admin: CurrentAdmin,
    form: Option<(&LadderForm, String)>,
) -> Result<SettingsPage, WebError> {
    let mut conn = state.store.acquire().await?;
    let ladder = store::settings::ladder(&mut conn).await?.unwrap_or_else(|| state.ladder.clone());
    let nets = |rows: Vec<store::networks::NetworkRow>| {
        rows.into_iter()
            .map(|n| NetworkView {
                id: n.id,
                cidr: n.cidr,
                label: n.label,
                added: format!("{} by {}", when(n.created_at), n.created_by),
            })
            .collect::<Vec<_>>()
    };
    let mut p = SettingsPage {
        admin,
        rungs: rung_views(&ladder),
        known_good_failures: ladder.known_good_failures.to_string(),
        known_good_for: human_duration(ladder.known_good_for_ms),
        repeat_within: human_duration(ladder.repeat_within_ms),
        repeat_ban: human_duration(ladder.repeat_ban_ms),
        config_trusted: state.trusted.networks().iter().map(|n| n.to_string()).collect(),
        trusted: nets(store::networks::in_list(&mut conn, crate::domain::NetworkList::Trusted).await?),
        admin_addresses: nets(store::networks::in_list(&mut conn, crate::domain::NetworkList::Admin).await?),
        sources: store::sources::all(&mut conn).await?.into_iter().map(|s| (s.path, s.kind)).collect(),
        error: None,
        saved: None,
        new_cidr: String::new(),
        new_label: String::new(),
    };
    if let Some((form, error)) = form {
        // Show what was typed, with the message, so nothing has to be typed again.
        p.rungs =
            form.rungs().into_iter().map(|(f, w, b)| RungView { failures: f, within: w, ban: b }).collect();
        p.known_good_failures = form.known_good_failures.clone();
        p.known_good_for = form.known_good_for.clone();
        p.repeat_within = form.repeat_within.clone();
        p.repeat_ban = form.repeat_ban.clone();
        p.error = Some(error);
    }
    Ok(p)
}

pub async fn show(admin: CurrentAdmin, State(state): State<WebState>) -> Result<impl IntoResponse, WebError> {
    page(&state, admin.clone(), None).await
}

#[derive(Deserialize)]
pub struct LadderForm {
    #[serde(default)]
    r1_failures: String,
    #[serde(default)]
    r1_within: String,
    #[serde(default)]
    r1_ban: String,
    #[serde(default)]
    r2_failures: String,
    #[serde(default)]
    r2_within: String,
    #[serde(default)]
    r2_ban: String,
    #[serde(default)]
    r3_failures: String,
    #[serde(default)]
    r3_within: String,
    #[serde(default)]
    r3_ban: String,
    #[serde(default)]
    r4_failures: String,
    #[serde(default)]
    r4_within: String,
    #[serde(default)]
    r4_ban: String,
    known_good_failures: String,
    known_good_for: String,
    repeat_within: String,
    repeat_ban: String,
}

impl LadderForm {
    fn rungs(&self) -> Vec<(String, String, String)> {
        [
            (&self.r1_failures, &self.r1_within, &self.r1_ban),
            (&self.r2_failures, &self.r2_within, &self.r2_ban),
            (&self.r3_failures, &self.r3_within, &self.r3_ban),
            (&self.r4_failures, &self.r4_within, &self.r4_ban),
        ]
        .into_iter()
        .map(|(f, w, b)| (f.trim().to_string(), w.trim().to_string(), b.trim().to_string()))
        .collect()
    }

    fn ladder(&self) -> Result<Ladder, String> {
        let mut rungs = Vec::new();
        for (i, (f, w, b)) in self.rungs().into_iter().enumerate() {
            if f.is_empty() && w.is_empty() && b.is_empty() {
                continue;
            }
            let n = i + 1;
            let failures: u32 = f
                .parse()
                .ok()
                .filter(|v| *v >= 1)
                .ok_or(format!("Rung {n}: failures must be a whole number of at least 1."))?;
            let within_ms = config::duration_ms(&w, "within").map_err(|e| format!("Rung {n}: {e}"))?;
            let ban_ms = match b.as_str() {
                "until-released" | "forever" => None,
                other => Some(config::duration_ms(other, "ban").map_err(|e| format!("Rung {n}: {e}"))?),
            };
            rungs.push(Rung { failures, within_ms, ban_ms });
        }
        if rungs.is_empty() {
            return Err("At least one rung is needed.".into());
        }
        let known_good_failures = self
            .known_good_failures
            .trim()
            .parse()
            .ok()
            .filter(|v: &u32| *v >= 1)
            .ok_or("Known phones: failures must be a whole number of at least 1.")?;
        let d = |t: &str, k: &'static str| config::duration_ms(t, k).map_err(|e| e.to_string());
        Ok(Ladder {
            rungs,
            known_good_failures,
            known_good_for_ms: d(&self.known_good_for, "known phones for")?,
            repeat_within_ms: d(&self.repeat_within, "repeat within")?,
            repeat_ban_ms: d(&self.repeat_ban, "repeat ban")?,
        })
    }
}

pub async fn save_ladder(
    admin: CurrentAdmin,
    State(state): State<WebState>,
    Form(form): Form<LadderForm>,
) -> Result<Response, WebError> {
    let ladder = match form.ladder() {
        Ok(l) => l,
        Err(error) => {
            let p = page(&state, admin.clone(), Some((&form, error))).await?;
            return Ok((axum::http::StatusCode::BAD_REQUEST, p).into_response());
        }
    };
    let summary: Vec<String> = ladder
        .rungs
        .iter()
        .map(|r| {
            format!(
                "{} in {} -> {}",
                r.failures,
                human_duration(r.within_ms),
                r.ban_ms.map_or("until released".into(), human_duration)
            )
        })
        .collect();
    crate::actions::set_ladder(&state.store, &admin.actor(), &ladder, &summary.join("; "), state.clock.now())
        .await?;
    let mut p = page(&state, admin.clone(), None).await?;
    p.saved = Some("Ladder saved; it applies to the next failure.".into());
    Ok(p.into_response())
}

#[derive(Deserialize)]
pub struct TrustedForm {
    cidr: String,
    #[serde(default)]
    label: String,
}

pub async fn add_trusted(
    admin: CurrentAdmin,
    State(state): State<WebState>,
    Form(form): Form<TrustedForm>,
) -> Result<Response, WebError> {
    let net = match config::parse_network(&form.cidr, "network") {
        Ok(n) => n,
        Err(e) => {
            let mut p = page(&state, admin.clone(), None).await?;
            p.error = Some(e.to_string());
            p.new_cidr = form.cidr;
            p.new_label = form.label;
            return Ok((axum::http::StatusCode::BAD_REQUEST, p).into_response());
        }
    };
    let now = state.clock.now();
    let label = if form.label.trim().is_empty() {
        "trusted from the panel".to_string()
    } else {
        form.label.trim().to_string()
    };
    crate::actions::networks::trust(&state.store, &admin.actor(), net, &label, now).await?;
    state.poke.notify_one();
    Ok(Redirect::to("/settings").into_response())
}

pub async fn remove_trusted(
    admin: CurrentAdmin,
    State(state): State<WebState>,
    Path(id): Path<i64>,
) -> Result<Response, WebError> {
    crate::actions::networks::untrust(&state.store, &admin.actor(), id, state.clock.now()).await?;
    state.poke.notify_one();
    Ok(Redirect::to("/settings").into_response())
}
