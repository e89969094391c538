//! Telling the admin: e-mail over SMTP and a webhook (a JSON POST Slack, Teams or ntfy
//! take), one message per incident. Alerts wait in a bounded queue and are sent with
//! retries by one task, so a mail server that is down never holds up detection.

mod digest;
mod send;
mod settings;

pub use digest::{digest_step, summary_step};

pub use settings::{AlertSettings, Security, SmtpSettings, parse_settings};

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::domain::UnixMs;
use crate::store::{self, Store};

/// Alerts waiting to be sent at most; more are counted and dropped.
const QUEUE: usize = 256;
/// Pauses before the second and third tries.
const RETRY_AFTER: [Duration; 2] = [Duration::from_secs(5), Duration::from_secs(30)];

/// What an alert is about; each can be switched off in the panel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    Breach,
    TollFraud,
    Unlocked,
    NotProtecting,
    AdminLogin,
    /// New bans, told together.
    Bans,
    /// Once a day: what happened.
    DailySummary,
    Test,
}

impl AlertKind {
    pub const CHOSEN: [AlertKind; 7] = [
        AlertKind::Breach,
        AlertKind::TollFraud,
        AlertKind::Unlocked,
        AlertKind::NotProtecting,
        AlertKind::AdminLogin,
        AlertKind::Bans,
        AlertKind::DailySummary,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::Breach => "breach",
            AlertKind::TollFraud => "toll_fraud",
            AlertKind::Unlocked => "unlocked",
            AlertKind::NotProtecting => "not_protecting",
            AlertKind::AdminLogin => "admin_login",
            AlertKind::Bans => "bans",
            AlertKind::DailySummary => "daily_summary",
            AlertKind::Test => "test",
        }
    }

    /// As the settings page names it.
    pub fn label(self) -> &'static str {
        match self {
            AlertKind::Breach => "a password guessed (breach)",
            AlertKind::TollFraud => "toll fraud: an extension stopped",
            AlertKind::Unlocked => "an extension unlocked",
            AlertKind::NotProtecting => "not protecting: firewall or logs",
            AlertKind::AdminLogin => "an admin logged in from a new address",
            AlertKind::Bans => "new bans, together (see below how often)",
            AlertKind::DailySummary => "a summary every morning",
            AlertKind::Test => "test",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Alert {
    pub kind: AlertKind,
    pub subject: String,
    pub text: String,
    pub at: UnixMs,
}

/// How sending goes, for the dashboard and `/healthz`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AlertHealth {
    pub sent: u64,
    /// The last failure, until a later alert goes out.
    pub problem: Option<String>,
    pub dropped: u64,
}

/// The way into the queue; cheap to clone.
#[derive(Clone)]
pub struct Alerts {
    queue: mpsc::Sender<Alert>,
    health: Arc<Mutex<AlertHealth>>,
}

impl Alerts {
    /// The sender and the receiving end its task runs on.
    pub fn new() -> (Alerts, mpsc::Receiver<Alert>) {
        let (queue, rx) = mpsc::channel(QUEUE);
        (Alerts { queue, health: Default::default() }, rx)
    }

    /// Queues an alert; never waits.
    pub fn raise(&self, alert: Alert) {
        if self.queue.try_send(alert).is_err() {
            self.with(|h| h.dropped += 1);
        }
    }

    pub fn health(&self) -> AlertHealth {
        self.with(|h| h.clone())
    }

    fn with<T>(&self, f: impl FnOnce(&mut AlertHealth) -> T) -> T {
        f(&mut self.health.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Sends queued alerts until `stop`, each with the settings stored at that moment.
    pub async fn run(self, mut rx: mpsc::Receiver<Alert>, store: Store, stop: CancellationToken) {
        loop {
            let alert = tokio::select! {
                a = rx.recv() => match a {
                    Some(a) => a,
                    None => return,
                },
                _ = stop.cancelled() => return,
            };
            let settings = match load(&store).await {
                Ok(Some(s)) if s.wants(alert.kind) => s,
                Ok(_) => continue,
                Err(e) => {
                    self.with(|h| h.problem = Some(format!("alert settings unreadable: {e}")));
                    continue;
                }
            };
            let mut result = send::deliver(&settings, &alert).await;
            for pause in RETRY_AFTER {
                let Err(e) = &result else { break };
                self.with(|h| h.problem = Some(format!("{e} (trying again)")));
                tokio::select! {
                    _ = tokio::time::sleep(pause) => {}
                    _ = stop.cancelled() => return,
                }
                result = send::deliver(&settings, &alert).await;
            }
            match result {
                Ok(()) => self.with(|h| (h.sent, h.problem) = (h.sent + 1, None)),
                Err(e) => {
                    tracing::warn!(kind = alert.kind.as_str(), error = %e, "alert not sent");
                    self.with(|h| h.problem = Some(e));
                }
            }
        }
    }
}

/// The settings an admin saved, if any.
pub async fn load(store: &Store) -> store::Result<Option<AlertSettings>> {
    let mut conn = store.acquire().await?;
    Ok(store::settings::get(&mut conn, store::settings::ALERTS)
        .await?
        .and_then(|t| serde_json::from_str(&t).ok()))
}

/// Sends one test message now with `settings`, for the panel's "Send a test".
pub async fn test(settings: &AlertSettings, at: UnixMs) -> Result<(), String> {
    let alert = Alert {
        kind: AlertKind::Test,
        subject: "sipwarden test message".into(),
        text: "This is a test from sipwarden's panel: alerts reach you here.".into(),
        at,
    };
    send::deliver(settings, &alert).await
}

/// The message for an incident: what happened, from where, what was done.
pub fn incident_alert(i: &store::incidents::IncidentRow) -> Alert {
    let from = i.ip.as_deref().map(|ip| format!(" from {ip}")).unwrap_or_default();
    let (kind, what) = match i.kind.as_str() {
        "toll_fraud" => (AlertKind::TollFraud, "calls like toll fraud"),
        _ => (AlertKind::Breach, "password guessed"),
    };
    let subject = if i.is_locking() {
        format!("Extension {} locked: {what}{from}", i.account)
    } else {
        format!("{} {}: {what} on extension {}{from}", i.severity, i.kind.replace('_', " "), i.account)
    };
    let mut text = format!("{}.\n", i.reason);
    if !i.numbers.is_empty() {
        text.push_str(&format!("Numbers dialled: {}\n", i.numbers));
    }
    if !i.actions.is_empty() {
        text.push_str(&format!("Done:\n{}\n", i.actions));
    }
    if i.is_locking() {
        text.push_str(&format!(
            "Change the extension's SIP password, then unlock it on the Incidents page or with `sipwarden unlock {}`.",
            i.account
        ));
    }
    Alert { kind, subject, text, at: i.at }
}
