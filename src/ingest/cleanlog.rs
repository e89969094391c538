//! sipwarden's own failed-authentication log: one line per counted failure, with
//! nothing else, for the admin, the provider or the police.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Mutex;

use chrono::{DateTime, SecondsFormat, Utc};

use crate::domain::{Service, UnixMs};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CleanLogLine {
    pub at: UnixMs,
    pub ip: IpAddr,
    pub service: Service,
    pub account: Option<String>,
    pub kind: &'static str,
    pub verdict: String,
}

impl CleanLogLine {
    /// `2026-11-24T21:04:50.544Z ip=198.51.100.7 service=PJSIP user="1001" kind=wrong_password verdict=watch`.
    /// The user name is attacker text: quoted with every control character escaped,
    /// so it can neither break the line nor forge another.
    pub fn render(&self) -> String {
        let time = DateTime::<Utc>::from_timestamp_millis(self.at)
            .map(|d| d.to_rfc3339_opts(SecondsFormat::Millis, true))
            .unwrap_or_else(|| self.at.to_string());
        let user = self.account.as_deref().unwrap_or("");
        format!(
            "{time} ip={} service={} user={:?} kind={} verdict={:?}",
            self.ip,
            self.service.as_str(),
            user,
            self.kind,
            self.verdict
        )
    }
}

pub struct CleanLog {
    path: PathBuf,
    file: Mutex<Option<File>>,
}

impl CleanLog {
    pub fn new(path: PathBuf) -> Self {
        CleanLog { path, file: Mutex::new(None) }
    }

    pub fn append(&self, lines: &[CleanLogLine]) -> io::Result<()> {
        if lines.is_empty() {
            return Ok(());
        }
        let mut text = String::new();
        for l in lines {
            text.push_str(&l.render());
            text.push('\n');
        }
        let mut guard = self.file.lock().unwrap_or_else(|p| p.into_inner());
        if guard.is_none() {
            *guard = Some(OpenOptions::new().create(true).append(true).open(&self.path)?);
        }
        let result = guard.as_mut().map_or(Ok(()), |f| f.write_all(text.as_bytes()));
        if result.is_err() {
            // Reopen next time: the file may have been rotated or the disk freed.
            *guard = None;
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attacker_user_names_cannot_break_the_line() {
        let line = CleanLogLine {
            at: 1_795_554_290_544,
            ip: "198.51.100.7".parse().unwrap(),
            service: Service::Pjsip,
            account: Some("x\"\n2026-01-01T00:00:00Z ip=6.6.6.6".into()),
            kind: "wrong_password",
            verdict: "watch".into(),
        };
        let text = line.render();
        assert!(!text.contains('\n'));
        assert!(
            text.starts_with("2026-11-24T21:04:50.544Z ip=198.51.100.7 service=PJSIP user=\"x\\\"\\n2026")
        );
    }
}
