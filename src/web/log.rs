//! `/log`: the failed-authentication log, filterable; `/log.csv` exports it.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::IntoResponse;
use chrono::{Local, NaiveDateTime, TimeZone};
use serde::Deserialize;

use super::{CurrentAdmin, WebError, WebState, when};
use crate::domain::UnixMs;
use crate::store::{self, failures::FailureRow};

const PAGE: i64 = 100;
const EXPORT_LIMIT: i64 = 1_000_000;

#[derive(Deserialize, Default, Clone)]
pub struct Filters {
    #[serde(default)]
    since: String,
    #[serde(default)]
    until: String,
    #[serde(default)]
    ip: String,
    #[serde(default)]
    user: String,
    #[serde(default)]
    service: String,
    /// The PBX whose logs held it (several share a store).
    #[serde(default)]
    node: String,
    /// A country code: the addresses the country database places there.
    #[serde(default)]
    country: String,
    #[serde(default)]
    before: Option<i64>,
}

/// `2026-11-24T21:04` from a datetime-local field, in the server's local time.
fn local_ms(text: &str, name: &str) -> Result<Option<i64>, WebError> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let naive = NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M")
        .or_else(|_| NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M"))
        .map_err(|_| {
            WebError::BadRequest(format!("{name}: {text:?} is not a date and time like 2026-11-24T21:04"))
        })?;
    Ok(Local.from_local_datetime(&naive).earliest().map(|d| d.timestamp_millis()))
}

/// The addresses that failed and that the database in use places in the country
/// `text` names (`None`: no country asked for).
async fn country_addresses(
    conn: &mut store::Conn,
    geo: &crate::geo::Geo,
    text: &str,
) -> Result<Option<Vec<String>>, WebError> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let Some(country) = crate::geo::Country::parse(text) else {
        return Err(WebError::BadRequest(format!(
            "country: {text:?} is not a two-letter country code like FR"
        )));
    };
    if !geo.is_loaded() {
        return Err(WebError::BadRequest(
            "country: no country database is loaded (geoip in the configuration)".into(),
        ));
    }
    // Every address that failed has a summary row: far fewer than failures.
    let all = store::offenders::seen_since(conn, UnixMs::MIN, i64::MAX).await?;
    Ok(Some(all.into_iter().filter(|ip| geo.country_of(ip) == Some(country)).collect()))
}

async fn search(
    f: &Filters,
    limit: i64,
    conn: &mut store::Conn,
    geo: &crate::geo::Geo,
) -> Result<store::failures::Search, WebError> {
    let opt = |s: &str| (!s.trim().is_empty()).then(|| s.trim().to_string());
    Ok(store::failures::Search {
        ips: country_addresses(conn, geo, &f.country).await?,
        since: local_ms(&f.since, "from")?,
        until: local_ms(&f.until, "to")?,
        ip: opt(&f.ip),
        account: opt(&f.user),
        service: opt(&f.service).map(|s| s.to_uppercase()),
        node: opt(&f.node),
        before_id: f.before,
        limit,
    })
}

pub struct Row {
    pub at: String,
    pub ip: String,
    pub country: String,
    pub service: String,
    pub account: String,
    pub kind: String,
    pub verdict: String,
    pub tampered: bool,
    pub node: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "log.html")]
struct LogPage {
    admin: CurrentAdmin,
    f: Filters,
    rows: Vec<Row>,
    next_before: Option<i64>,
    export_query: String,
    /// The PBXes sharing the store; empty with one.
    nodes: Vec<String>,
    /// A country database is loaded: the country filter is offered.
    countries: bool,
}

pub async fn list(
    admin: CurrentAdmin,
    State(state): State<WebState>,
    Query(f): Query<Filters>,
) -> Result<impl IntoResponse, WebError> {
    let mut conn = state.store.acquire().await?;
    let search = search(&f, PAGE + 1, &mut conn, &state.geo).await?;
    let rows = store::failures::search(&mut conn, &search).await?;
    let next_before = (rows.len() as i64 > PAGE).then(|| rows[PAGE as usize - 1].id);
    let export_query = form_urlencoded::Serializer::new(String::new())
        .append_pair("since", &f.since)
        .append_pair("until", &f.until)
        .append_pair("ip", &f.ip)
        .append_pair("user", &f.user)
        .append_pair("service", &f.service)
        .append_pair("node", &f.node)
        .append_pair("country", &f.country)
        .finish();
    let nodes = super::node_names(&mut conn).await?;
    Ok(LogPage {
        admin,
        rows: rows
            .into_iter()
            .take(PAGE as usize)
            .map(|r| Row {
                at: when(r.at),
                country: r.ip.as_deref().map_or_else(|| "—".into(), |ip| state.geo.shown(ip)),
                ip: r.ip.unwrap_or_else(|| "(unattributed)".into()),
                service: r.service,
                account: r.account.unwrap_or_default(),
                kind: r.kind,
                verdict: r.verdict,
                tampered: r.tampered,
                node: r.node,
            })
            .collect(),
        next_before,
        export_query,
        nodes,
        countries: state.geo.is_loaded(),
        f,
    })
}

/// One CSV field: quoted, quotes doubled, and a leading `= + - @` defused so a
/// spreadsheet never runs attacker text as a formula.
fn csv_field(text: &str) -> String {
    let guarded = if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text.to_string()
    };
    format!("\"{}\"", guarded.replace('"', "\"\""))
}

/// The rows as CSV, each address's country as the database in use places it.
pub fn csv(rows: &[FailureRow], geo: &crate::geo::Geo) -> String {
    let mut out =
        String::from("time_utc,ip,country,service,user,kind,verdict,tampered,source,log_line,node\r\n");
    for r in rows {
        let time = chrono::DateTime::from_timestamp_millis(r.at).map(|d| d.to_rfc3339()).unwrap_or_default();
        let fields = [
            time,
            r.ip.clone().unwrap_or_default(),
            r.ip.as_deref().and_then(|ip| geo.country_of(ip)).map(|c| c.to_string()).unwrap_or_default(),
            r.service.clone(),
            r.account.clone().unwrap_or_default(),
            r.kind.clone(),
            r.verdict.clone(),
            r.tampered.to_string(),
            r.source.clone(),
            r.raw.clone(),
            r.node.clone(),
        ];
        out.push_str(&fields.iter().map(|f| csv_field(f)).collect::<Vec<_>>().join(","));
        out.push_str("\r\n");
    }
    out
}

pub async fn export(
    _admin: CurrentAdmin,
    State(state): State<WebState>,
    Query(f): Query<Filters>,
) -> Result<impl IntoResponse, WebError> {
    let mut conn = state.store.acquire().await?;
    let search = search(&f, EXPORT_LIMIT, &mut conn, &state.geo).await?;
    let rows = store::failures::search(&mut conn, &search).await?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (header::CONTENT_DISPOSITION, "attachment; filename=\"sipwarden-failed-auth.csv\""),
        ],
        csv(&rows, &state.geo),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_and_defuses_attacker_text() {
        assert_eq!(csv_field("a\"b"), "\"a\"\"b\"");
        assert_eq!(csv_field("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(csv_field("1001"), "\"1001\"");
    }
}
