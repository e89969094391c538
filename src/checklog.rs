//! `sipwarden check-log`: the live parsing and policy, run offline over files.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{self, Read};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::asterisk::{self, ReadRecord, RecordReader, SourceKind};
use crate::domain::{LogEvent, Outcome, TrustedNetworks, UnixMs};
use crate::policy::Ladder;
use crate::policy::replay::Replay;

const CHUNK: usize = 1 << 20;
const ACCOUNTS_SHOWN: usize = 50;

#[derive(Debug, Serialize)]
pub struct FileReport {
    pub path: PathBuf,
    pub kind: SourceKind,
    pub lines: u64,
    pub events: u64,
    pub tampered_records: u64,
}

#[derive(Debug, Default, Serialize)]
pub struct AddressReport {
    pub failures: u64,
    pub accounts: BTreeSet<String>,
    pub services: BTreeSet<&'static str>,
    pub first_seen: Option<UnixMs>,
    pub last_seen: Option<UnixMs>,
    pub tampered: u64,
    pub verdict: String,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub files: Vec<FileReport>,
    pub by_ip: BTreeMap<String, AddressReport>,
    pub total_failures: u64,
    /// Tampered records whose sender could not be located: shown, never counted.
    pub unattributed_tampered: u64,
}

struct FileEvents {
    report: FileReport,
    events: Vec<LogEvent>,
    unattributed: u64,
}

/// Reads one file in chunks (memory stays flat whatever its size).
fn read_file(path: &Path, progress: &dyn Fn(u64)) -> io::Result<FileEvents> {
    let mut file = File::open(path)?;
    let reference = file
        .metadata()?
        .modified()
        .ok()
        .and_then(|m| m.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or_else(|| chrono::Utc::now().timestamp_millis(), |d| d.as_millis() as UnixMs);
    let mut buf = vec![0u8; CHUNK];
    let mut filled = 0usize;
    let mut offset = 0u64;
    let mut reader = RecordReader::new(reference, 0).without_raw();
    let mut records: Vec<ReadRecord> = Vec::new();
    let mut kind = None;
    let mut events = Vec::new();
    let mut unattributed = 0;
    let mut eof = false;
    while !eof {
        let n = file.read(&mut buf[filled..])?;
        progress(n as u64);
        eof = n == 0;
        filled += n;
        let mut pos = 0;
        let data = &buf[..filled];
        if kind.is_none() {
            if let Some(last) = memchr::memrchr(b'\n', data) {
                let head = String::from_utf8_lossy(&data[..last]);
                kind = Some(asterisk::detect_kind(head.lines().take(200)));
            }
        }
        loop {
            let rest = &data[pos..];
            let (line, next) = match memchr::memchr(b'\n', rest) {
                Some(i) => (&rest[..i], pos + i + 1),
                None if eof && !rest.is_empty() => (rest, filled),
                None => break,
            };
            reader.push_bytes(line, offset + pos as u64, offset + next as u64, &mut records);
            pos = next;
            for r in records.drain(..) {
                match r.event {
                    Some(e) => events.push(e),
                    None => unattributed += 1,
                }
            }
        }
        if pos == 0 && filled == buf.len() {
            // A line longer than the buffer: drop it, as the live follower does.
            let skip_to = filled;
            offset += skip_to as u64;
            filled = 0;
            continue;
        }
        buf.copy_within(pos..filled, 0);
        filled -= pos;
        offset += pos as u64;
    }
    reader.finish(&mut records);
    for r in records.drain(..) {
        match r.event {
            Some(e) => events.push(e),
            None => unattributed += 1,
        }
    }
    let stats = reader.stats;
    Ok(FileEvents {
        report: FileReport {
            path: path.to_owned(),
            kind: kind.unwrap_or(SourceKind::Messages),
            lines: stats.lines,
            events: stats.events,
            tampered_records: stats.tampered_records,
        },
        events,
        unattributed,
    })
}

pub fn check_files(paths: &[PathBuf], ladder: Ladder, trusted: TrustedNetworks) -> io::Result<Report> {
    check_files_with_progress(paths, ladder, trusted, &|_| {})
}

/// As [`check_files`], calling `progress` with the number of bytes read as it goes.
pub fn check_files_with_progress(
    paths: &[PathBuf],
    ladder: Ladder,
    trusted: TrustedNetworks,
    progress: &dyn Fn(u64),
) -> io::Result<Report> {
    let files = paths
        .iter()
        .map(|p| {
            read_file(p, progress).map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", p.display())))
        })
        .collect::<io::Result<Vec<_>>>()?;
    let security_present = files.iter().any(|f| f.report.kind == SourceKind::Security);
    let mut events: Vec<(UnixMs, IpAddr, LogEvent)> = Vec::new();
    let mut unattributed = 0;
    let mut reports = Vec::new();
    for f in files {
        unattributed += f.unattributed;
        let kind = f.report.kind;
        let mut last_at = 0;
        for e in f.events {
            // Same rule as the live pipeline: the security log alone counts the
            // services it covers.
            if kind == SourceKind::Messages && security_present && e.service.has_security_events() {
                continue;
            }
            let Some(ip) = e.ip else { continue };
            let at = e.at.unwrap_or(last_at);
            last_at = at;
            events.push((at, ip, e));
        }
        reports.push(f.report);
    }
    events.sort_by_key(|(at, _, _)| *at);
    let mut replay = Replay::new(ladder, trusted);
    let mut by_ip: BTreeMap<IpAddr, AddressReport> = BTreeMap::new();
    let mut total = 0;
    for (at, ip, e) in events {
        replay.observe(ip, at, e.outcome);
        if !matches!(e.outcome, Outcome::Failure(_)) {
            continue;
        }
        total += 1;
        let r = by_ip.entry(ip).or_default();
        r.failures += 1;
        r.services.insert(e.service.as_str());
        if let Some(a) = e.account {
            if r.accounts.len() < ACCOUNTS_SHOWN {
                r.accounts.insert(a);
            }
        }
        r.first_seen.get_or_insert(at);
        r.last_seen = Some(at);
        r.tampered += u64::from(e.tampered);
    }
    let by_ip = by_ip
        .into_iter()
        .map(|(ip, mut r)| {
            r.verdict = replay.summary(ip);
            (ip.to_string(), r)
        })
        .collect();
    Ok(Report { files: reports, by_ip, total_failures: total, unattributed_tampered: unattributed })
}

/// The human-readable table, worst offenders first.
pub fn render_text(report: &Report) -> String {
    let mut out = String::new();
    for f in &report.files {
        out.push_str(&format!(
            "{} ({}): {} lines, {} events, {} tampered records\n",
            f.path.display(),
            f.kind.as_str(),
            f.lines,
            f.events,
            f.tampered_records
        ));
    }
    let mut rows: Vec<_> = report.by_ip.iter().collect();
    rows.sort_by(|a, b| b.1.failures.cmp(&a.1.failures).then(a.0.cmp(b.0)));
    out.push_str(&format!(
        "\n{:<40} {:>8}  {:<20} {:<24} accounts\n",
        "address", "failures", "verdict", "services"
    ));
    for (ip, r) in rows {
        let services: Vec<_> = r.services.iter().copied().collect();
        let accounts: Vec<String> = r.accounts.iter().take(8).map(|a| format!("{a:?}")).collect();
        out.push_str(&format!(
            "{:<40} {:>8}  {:<20} {:<24} {}\n",
            ip,
            r.failures,
            r.verdict,
            services.join(","),
            accounts.join(" ")
        ));
    }
    out.push_str(&format!(
        "\n{} failures from {} addresses; {} tampered records could not be attributed\n",
        report.total_failures,
        report.by_ip.len(),
        report.unattributed_tampered
    ));
    out
}
