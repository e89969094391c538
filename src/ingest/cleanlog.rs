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
    /// Rotate past this size (`failed-auth.log` → `.1` → `.2` …), keeping `keep` old files.
    max_bytes: u64,
    keep: u32,
}

impl CleanLog {
    pub fn new(path: PathBuf) -> Self {
        CleanLog { path, file: Mutex::new(None), max_bytes: u64::MAX, keep: 0 }
    }

    pub fn rotating(mut self, max_bytes: u64, keep: u32) -> Self {
        (self.max_bytes, self.keep) = (max_bytes, keep);
        self
    }

    fn rotated(&self, n: u32) -> PathBuf {
        let mut name = self.path.as_os_str().to_owned();
        name.push(format!(".{n}"));
        PathBuf::from(name)
    }

    /// Moves the full file aside and drops the oldest; the next append starts anew.
    fn rotate(&self) -> io::Result<()> {
        if self.keep == 0 {
            return std::fs::remove_file(&self.path);
        }
        let _ = std::fs::remove_file(self.rotated(self.keep));
        for n in (1..self.keep).rev() {
            let _ = std::fs::rename(self.rotated(n), self.rotated(n + 1));
        }
        std::fs::rename(&self.path, self.rotated(1))
    }

    /// Whether the open file is still the one at `path` (an outside logrotate may
    /// have renamed or removed it).
    fn still_current(&self, file: &File) -> bool {
        use std::os::unix::fs::MetadataExt;
        match (std::fs::metadata(&self.path), file.metadata()) {
            (Ok(at_path), Ok(open)) => at_path.ino() == open.ino() && at_path.dev() == open.dev(),
            _ => false,
        }
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
        if guard.as_ref().is_some_and(|f| !self.still_current(f)) {
            *guard = None;
        }
        if guard.is_none() {
            use std::os::unix::fs::OpenOptionsExt;
            let file = OpenOptions::new().create(true).append(true).mode(0o600).open(&self.path)?;
            *guard = Some(file);
        }
        let result = guard.as_mut().map_or(Ok(()), |f| f.write_all(text.as_bytes()));
        match &result {
            // Reopen next time: the disk may have been freed.
            Err(_) => *guard = None,
            Ok(()) => {
                let size = guard.as_ref().and_then(|f| f.metadata().ok()).map_or(0, |m| m.len());
                if size >= self.max_bytes {
                    *guard = None;
                    self.rotate()?;
                }
            }
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(n: u32) -> CleanLogLine {
        CleanLogLine {
            at: 1_795_554_290_544,
            ip: std::net::IpAddr::from([198, 51, 100, (n % 250) as u8]),
            service: Service::Sip,
            account: Some(format!("{n}")),
            kind: "wrong_password",
            verdict: "watch".into(),
        }
    }

    #[test]
    fn the_log_rotates_at_its_size_and_keeps_as_many_files_as_told() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("failed-auth.log");
        let log = CleanLog::new(path.clone()).rotating(1000, 2);
        for n in 0..60 {
            log.append(&[line(n)]).unwrap();
        }
        let files: Vec<_> =
            ["failed-auth.log", "failed-auth.log.1", "failed-auth.log.2", "failed-auth.log.3"]
                .iter()
                .map(|f| std::fs::read_to_string(dir.path().join(f)).ok())
                .collect();
        assert!(files[1].is_some() && files[2].is_some() && files[3].is_none(), "{files:?}");
        assert!(files.iter().flatten().all(|t| t.len() < 1000 + 120));
        // The newest line is in the current file, or in .1 right after a rotation.
        let newest = |t: &Option<String>| t.as_deref().is_some_and(|t| t.contains("user=\"59\""));
        assert!(newest(&files[0]) || newest(&files[1]));
        let mode = std::fs::metadata(dir.path().join("failed-auth.log.1")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn a_log_renamed_away_by_logrotate_is_followed_by_a_new_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("failed-auth.log");
        let log = CleanLog::new(path.clone());
        log.append(&[line(1)]).unwrap();
        std::fs::rename(&path, dir.path().join("failed-auth.log-20261201")).unwrap();
        log.append(&[line(2)]).unwrap();
        let now = std::fs::read_to_string(&path).unwrap();
        assert!(now.contains("user=\"2\"") && !now.contains("user=\"1\""), "{now}");
    }

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
