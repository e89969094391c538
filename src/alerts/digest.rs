//! Messages that gather: new bans at most every few minutes, and a morning summary.
//! Each step is one call a loop makes every minute; when each was last sent is kept
//! in the database, so a restart neither repeats nor skips one.

use chrono::Timelike;

use super::{Alert, AlertKind, Alerts, load};
use crate::domain::{DAY_MS, MINUTE_MS, UnixMs};
use crate::store::{self, Store};

const DIGEST_SENT: &str = "alerts_digest_sent";
const SUMMARY_SENT: &str = "alerts_summary_sent";
/// The summary goes out at the first step after this local hour.
const SUMMARY_HOUR: u32 = 7;
const BANS_LISTED: i64 = 20;

async fn sent_at(store: &Store, key: &str) -> store::Result<Option<UnixMs>> {
    let mut conn = store.acquire().await?;
    Ok(store::settings::get(&mut conn, key).await?.and_then(|v| v.parse().ok()))
}

async fn mark(store: &Store, key: &str, at: UnixMs) -> store::Result<()> {
    let mut conn = store.acquire().await?;
    store::settings::set(&mut conn, key, &at.to_string()).await
}

/// Queues the bans created since the last digest, when it is due and there are any.
pub async fn digest_step(alerts: &Alerts, store: &Store, now: UnixMs) -> store::Result<()> {
    let Some(settings) = load(store).await? else { return Ok(()) };
    if settings.digest_minutes == 0 || !settings.wants(AlertKind::Bans) {
        return Ok(());
    }
    let Some(last) = sent_at(store, DIGEST_SENT).await? else {
        // The first digest covers what comes from now on.
        return mark(store, DIGEST_SENT, now).await;
    };
    if now - last < i64::from(settings.digest_minutes) * MINUTE_MS {
        return Ok(());
    }
    let (bans, total) = {
        let mut conn = store.acquire().await?;
        store::bans::created_since(&mut conn, last, BANS_LISTED).await?
    };
    if total > 0 {
        let mut text = String::new();
        for b in &bans {
            let until = b.until_at.map_or("until released".to_string(), |u| {
                format!("for {}", crate::policy::human_duration(u - b.created_at))
            });
            text.push_str(&format!("{} {until}: {}\n", b.ip, b.reason));
        }
        if total > bans.len() as i64 {
            text.push_str(&format!("… and {} more (see the Bans page)\n", total - bans.len() as i64));
        }
        alerts.raise(Alert {
            kind: AlertKind::Bans,
            subject: format!("{total} address{} banned", if total == 1 { "" } else { "es" }),
            text,
            at: now,
        });
    }
    mark(store, DIGEST_SENT, now).await
}

/// Queues the morning summary of the last day, once a day.
pub async fn summary_step(alerts: &Alerts, store: &Store, now: UnixMs) -> store::Result<()> {
    let Some(settings) = load(store).await? else { return Ok(()) };
    if !settings.wants(AlertKind::DailySummary) {
        return Ok(());
    }
    let Some(local) = chrono::DateTime::from_timestamp_millis(now).map(|d| d.with_timezone(&chrono::Local))
    else {
        return Ok(());
    };
    let last = sent_at(store, SUMMARY_SENT).await?;
    if local.hour() < SUMMARY_HOUR || last.is_some_and(|t| now - t < DAY_MS - 60 * MINUTE_MS) {
        return Ok(());
    }
    let mut conn = store.acquire().await?;
    let failures = store::failures::count_all_since(&mut conn, now - DAY_MS).await?;
    let (_, new_bans) = store::bans::created_since(&mut conn, now - DAY_MS, 0).await?;
    let (timed, forever) = store::bans::active_counts(&mut conn, now).await?;
    let incidents: Vec<_> =
        store::incidents::recent(&mut conn, 50).await?.into_iter().filter(|i| i.at > now - DAY_MS).collect();
    let locked = store::incidents::locking(&mut conn).await?;
    drop(conn);
    let mut text = format!(
        "Last 24 hours: {failures} failed logins, {new_bans} new bans; {} bans in force ({forever} until released).\n",
        timed + forever
    );
    for i in &incidents {
        text.push_str(&format!("Incident: {}\n", crate::alerts::incident_alert(i).subject));
    }
    for l in &locked {
        text.push_str(&format!("Still locked: extension {} (`sipwarden unlock {}`)\n", l.account, l.account));
    }
    alerts.raise(Alert { kind: AlertKind::DailySummary, subject: "Daily summary".into(), text, at: now });
    mark(store, SUMMARY_SENT, now).await
}
