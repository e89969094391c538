//! One alert to each configured channel.

use std::time::Duration;

use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::{Alert, AlertSettings, Security, SmtpSettings};

const TIMEOUT: Duration = Duration::from_secs(10);

/// Sends to every channel; the error names each that failed.
pub async fn deliver(settings: &AlertSettings, alert: &Alert) -> Result<(), String> {
    let mut errors = Vec::new();
    if let Some(url) = &settings.webhook {
        if let Err(e) = webhook(url, alert).await {
            errors.push(format!("webhook: {e}"));
        }
    }
    if let Some(smtp) = &settings.smtp {
        if let Err(e) = mail(smtp, alert).await {
            errors.push(format!("mail to {}: {e}", smtp.to.join(", ")));
        }
    }
    if settings.webhook.is_none() && settings.smtp.is_none() {
        errors.push("no webhook and no mail server set".into());
    }
    if errors.is_empty() { Ok(()) } else { Err(errors.join("; ")) }
}

async fn webhook(url: &str, alert: &Alert) -> Result<(), String> {
    let at = chrono::DateTime::from_timestamp_millis(alert.at).map(|d| d.to_rfc3339()).unwrap_or_default();
    // `text` is what Slack, Teams and Mattermost show; the rest is for scripts.
    let body = serde_json::json!({
        "text": format!("{}\n{}", alert.subject, alert.text),
        "kind": alert.kind.as_str(),
        "subject": alert.subject,
        "body": alert.text,
        "at": at,
    });
    let client = reqwest::Client::builder().timeout(TIMEOUT).build().map_err(|e| e.to_string())?;
    let response = client.post(url).json(&body).send().await.map_err(|e| e.to_string())?;
    if !response.status().is_success() {
        return Err(format!("answered {}", response.status()));
    }
    Ok(())
}

async fn mail(smtp: &SmtpSettings, alert: &Alert) -> Result<(), String> {
    let mut message = Message::builder()
        .from(smtp.from.parse().map_err(|e| format!("from: {e}"))?)
        .subject(format!("[sipwarden] {}", alert.subject));
    for to in &smtp.to {
        message = message.to(to.parse().map_err(|e| format!("to: {e}"))?);
    }
    let message = message.body(alert.text.clone()).map_err(|e| e.to_string())?;
    let builder = match smtp.security {
        Security::Starttls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&smtp.host),
        Security::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&smtp.host),
        Security::None => Ok(AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&smtp.host)),
    }
    .map_err(|e| e.to_string())?;
    let mut builder = builder.port(smtp.port).timeout(Some(TIMEOUT));
    if let (Some(user), Some(password)) = (&smtp.username, &smtp.password) {
        builder = builder.credentials(Credentials::new(user.clone(), password.clone()));
    }
    builder.build().send(message).await.map_err(|e| e.to_string())?;
    Ok(())
}
