use serde::{Deserialize, Serialize};

use super::AlertKind;

/// What the admin set on the Settings page, stored as JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertSettings {
    /// `https://hooks.slack.com/…`, `https://ntfy.sh/topic`: a JSON POST per alert.
    pub webhook: Option<String>,
    pub smtp: Option<SmtpSettings>,
    /// Kinds switched off (`AlertKind::as_str`); every kind is on by default.
    #[serde(default)]
    pub off: Vec<String>,
    /// New bans are told together at most this often; 0: never.
    #[serde(default = "default_digest_minutes")]
    pub digest_minutes: u32,
}

fn default_digest_minutes() -> u32 {
    60
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SmtpSettings {
    pub host: String,
    pub port: u16,
    pub security: Security,
    pub username: Option<String>,
    pub password: Option<String>,
    pub from: String,
    pub to: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Security {
    /// Plain connection upgraded with STARTTLS (port 587).
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
    /// No encryption: only for a relay on this machine or the office LAN.
    None,
}

impl Default for AlertSettings {
    fn default() -> Self {
        AlertSettings { webhook: None, smtp: None, off: Vec::new(), digest_minutes: default_digest_minutes() }
    }
}

impl AlertSettings {
    pub fn wants(&self, kind: AlertKind) -> bool {
        kind == AlertKind::Test || !self.off.iter().any(|k| k == kind.as_str())
    }
}

/// The settings form's fields, checked; each error says which field and why.
#[allow(clippy::too_many_arguments)]
pub fn parse_settings(
    webhook: &str,
    host: &str,
    port: &str,
    security: &str,
    username: &str,
    password: &str,
    from: &str,
    to: &str,
    off: Vec<String>,
    digest_minutes: &str,
) -> Result<AlertSettings, String> {
    let digest_minutes: u32 = match digest_minutes.trim() {
        "" => default_digest_minutes(),
        m => m.parse().map_err(|_| format!("ban digest: {m:?} is not a number of minutes"))?,
    };
    let webhook = webhook.trim();
    let webhook = if webhook.is_empty() {
        None
    } else {
        let url = reqwest::Url::parse(webhook)
            .map_err(|e| format!("webhook: {webhook:?} is not an address ({e})"))?;
        if !matches!(url.scheme(), "https" | "http") || url.host_str().is_none() {
            return Err(format!("webhook: {webhook:?} must start with https:// (or http://)"));
        }
        Some(url.to_string())
    };
    let host = host.trim();
    let smtp = if host.is_empty() {
        None
    } else {
        let port: u16 =
            port.trim().parse().map_err(|_| format!("mail server port: {port:?} is not a port like 587"))?;
        let security = match security {
            "starttls" => Security::Starttls,
            "tls" => Security::Tls,
            "none" => Security::None,
            other => return Err(format!("mail server security: {other:?} is not starttls, tls or none")),
        };
        let mailbox = |field: &str, text: &str| -> Result<String, String> {
            let text = text.trim();
            text.parse::<lettre::message::Mailbox>()
                .map(|_| text.to_owned())
                .map_err(|_| format!("{field}: {text:?} is not an e-mail address"))
        };
        let to: Vec<String> = to
            .split([',', ' ', '\n'])
            .filter(|t| !t.trim().is_empty())
            .map(|t| mailbox("send to", t))
            .collect::<Result<_, _>>()?;
        if to.is_empty() {
            return Err("send to: at least one e-mail address is needed".into());
        }
        let optional = |s: &str| Some(s.trim().to_owned()).filter(|s| !s.is_empty());
        Some(SmtpSettings {
            host: host.to_owned(),
            port,
            security,
            username: optional(username),
            password: optional(password),
            from: mailbox("send from", from)?,
            to,
        })
    };
    let off = off.into_iter().filter(|k| AlertKind::CHOSEN.iter().any(|c| c.as_str() == k)).collect();
    Ok(AlertSettings { webhook, smtp, off, digest_minutes })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_wrong_field_is_named() {
        let ok = |w: &str, h: &str, from: &str, to: &str| {
            parse_settings(w, h, "587", "starttls", "", "", from, to, Vec::new(), "")
        };
        assert!(ok("ftp://x", "", "", "").unwrap_err().starts_with("webhook"));
        assert!(ok("not a url", "", "", "").unwrap_err().starts_with("webhook"));
        assert!(ok("", "mail.example.com", "pbx@example.com", "").unwrap_err().starts_with("send to"));
        assert!(ok("", "mail.example.com", "nobody", "a@example.com").unwrap_err().starts_with("send from"));
        let port =
            parse_settings("", "mail.example.com", "70000", "tls", "", "", "a@b.c", "a@b.c", Vec::new(), "");
        assert!(port.unwrap_err().starts_with("mail server port"));
        let good = ok(
            "https://ntfy.sh/office",
            "mail.example.com",
            "pbx@example.com",
            "a@example.com, b@example.com",
        )
        .unwrap();
        assert_eq!(good.smtp.unwrap().to, ["a@example.com", "b@example.com"]);
        assert_eq!(ok("", "", "", "").unwrap(), AlertSettings::default());
    }
}
