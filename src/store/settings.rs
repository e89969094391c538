use crate::domain::ClosableService;

use super::{Conn, Result};

pub async fn get(conn: &mut Conn, name: &str) -> Result<Option<String>> {
    let row: Option<(String,)> = on!(conn, |c| sqlx::query_as("SELECT value FROM settings WHERE name = $1")
        .bind(name)
        .fetch_optional(&mut *c)
        .await)?;
    Ok(row.map(|r| r.0))
}

pub async fn set(conn: &mut Conn, name: &str, value: &str) -> Result<()> {
    on!(conn, |c| sqlx::query(
        "INSERT INTO settings (name, value) VALUES ($1, $2) \
         ON CONFLICT (name) DO UPDATE SET value = excluded.value",
    )
    .bind(name)
    .bind(value)
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(())
}

pub const PROTECTION: &str = "protection";

/// Whether bans are enforced; `default` until an admin has switched it.
pub async fn protection(conn: &mut Conn, default: bool) -> Result<bool> {
    Ok(match get(conn, PROTECTION).await?.as_deref() {
        Some("on") => true,
        Some("off") => false,
        _ => default,
    })
}

pub async fn set_protection(conn: &mut Conn, on: bool) -> Result<()> {
    set(conn, PROTECTION, if on { "on" } else { "off" }).await
}

pub const LADDER: &str = "ladder";

/// The ladder as last saved from the panel, if it was.
pub async fn ladder(conn: &mut Conn) -> Result<Option<crate::domain::Ladder>> {
    match get(conn, LADDER).await? {
        Some(json) => serde_json::from_str(&json)
            .map(Some)
            .map_err(|e| super::StoreError::Corrupt(format!("setting {LADDER}: {e}"))),
        None => Ok(None),
    }
}

pub async fn set_ladder(conn: &mut Conn, ladder: &crate::domain::Ladder) -> Result<()> {
    let json = serde_json::to_string(ladder).map_err(|e| super::StoreError::Corrupt(e.to_string()))?;
    set(conn, LADDER, &json).await
}

pub const CLOSED_SERVICES: &str = "closed_services";

/// Services in closed mode; a name this version does not know is left out.
pub async fn closed_services(conn: &mut Conn) -> Result<Vec<ClosableService>> {
    let names: Vec<String> = match get(conn, CLOSED_SERVICES).await? {
        Some(json) => serde_json::from_str(&json).unwrap_or_default(),
        None => Vec::new(),
    };
    Ok(names.iter().filter_map(|n| ClosableService::parse(n)).collect())
}

pub async fn set_closed_services(conn: &mut Conn, services: &[ClosableService]) -> Result<()> {
    let json = serde_json::to_string(services).map_err(|e| super::StoreError::Corrupt(e.to_string()))?;
    set(conn, CLOSED_SERVICES, &json).await
}

/// The alert settings, as JSON (`alerts::AlertSettings`).
pub const ALERTS: &str = "alerts";

pub const COUNTRY_RULES: &str = "country_rules";

/// Which countries may reach each service; none until an admin sets some.
pub async fn country_rules(conn: &mut Conn) -> Result<crate::domain::CountryRules> {
    match get(conn, COUNTRY_RULES).await? {
        Some(json) => serde_json::from_str(&json)
            .map_err(|e| super::StoreError::Corrupt(format!("setting {COUNTRY_RULES}: {e}"))),
        None => Ok(Default::default()),
    }
}

pub async fn set_country_rules(conn: &mut Conn, rules: &crate::domain::CountryRules) -> Result<()> {
    let json = serde_json::to_string(rules).map_err(|e| super::StoreError::Corrupt(e.to_string()))?;
    set(conn, COUNTRY_RULES, &json).await
}
