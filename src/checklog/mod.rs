//! `sipwarden check-log`: the live parsing and policy, run offline over files.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Read};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::asterisk::{self, ReadRecord, SourceKind};
use crate::domain::{DatedCall, FraudLimits, Outcome, TrustedNetworks, UnixMs};
use crate::policy::Ladder;

mod incidents;
mod read;
mod replay;

pub use incidents::IncidentReport;

use read::read_file;

const ACCOUNTS_SHOWN: usize = 50;

/// Keys hashed once per event: a quicker hash than the default, still seeded at random
/// (account names are attacker text).
type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

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
    /// ISO code from the country database, when one is configured (`--geoip`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub files: Vec<FileReport>,
    pub by_ip: BTreeMap<String, AddressReport>,
    pub total_failures: u64,
    /// Tampered records whose sender could not be located: shown, never counted.
    pub unattributed_tampered: u64,
    /// Breaches and toll fraud, in the order they happened.
    pub incidents: Vec<IncidentReport>,
}

/// What was read, by number: events, and the addresses and accounts they name.
#[derive(Clone, Copy)]
struct Known<'a> {
    events: &'a [Compact],
    ips: &'a [IpAddr],
    accounts: &'a [String],
}

/// One event as check-log keeps it until the replay: small, its account interned, so
/// a million-line log stays within a few megabytes.
struct Compact {
    at: UnixMs,
    /// The record had no time of its own and took the one before it.
    dated: bool,
    /// Index into `Collector::ips`.
    ip: u32,
    outcome: Outcome,
    service: crate::domain::Service,
    account: Option<u32>,
    tampered: bool,
    /// Security events' SessionID, hashed: one attempt counts once.
    session: Option<u64>,
    preliminary: bool,
}

#[derive(Default)]
pub(crate) struct Collector {
    events: Vec<Compact>,
    accounts: Vec<String>,
    index: FastMap<String, u32>,
    /// Addresses numbered as first seen, so the replay indexes instead of hashing.
    ips: Vec<IpAddr>,
    ip_index: FastMap<IpAddr, u32>,
    unattributed: u64,
    /// Leave out services a security log already counts (set per file).
    drop_covered: bool,
    /// The dialplan's call events, in reading order (a full log at verbose 3).
    calls: Vec<DatedCall>,
    last_at: UnixMs,
}

impl Collector {
    /// Appends what `later` collected from further on in the same file, skipping its
    /// first `skip` events: undated events take the time of the one before them, as
    /// if one collector had read it all.
    fn append(&mut self, later: Collector, (skip, skip_calls): (usize, usize), unattributed_skipped: u64) {
        // Numbers in `later` to numbers here, each looked up once, in the order a
        // single reader would have given them.
        let mut accounts: Vec<Option<u32>> = vec![None; later.accounts.len()];
        let mut ips: Vec<Option<u32>> = vec![None; later.ips.len()];
        let mut last_at = self.last_at;
        self.events.reserve(later.events.len().saturating_sub(skip));
        for mut e in later.events.into_iter().skip(skip) {
            if e.dated {
                last_at = e.at;
            } else {
                e.at = last_at;
            }
            e.account = e.account.map(|a| {
                *accounts[a as usize].get_or_insert_with(|| self.intern(&later.accounts[a as usize]))
            });
            e.ip = *ips[e.ip as usize].get_or_insert_with(|| self.number(later.ips[e.ip as usize]));
            self.events.push(e);
        }
        self.last_at = last_at;
        self.unattributed += later.unattributed - unattributed_skipped;
        self.calls.extend(later.calls.into_iter().skip(skip_calls));
    }

    fn number(&mut self, ip: IpAddr) -> u32 {
        *self.ip_index.entry(ip).or_insert_with(|| {
            self.ips.push(ip);
            self.ips.len() as u32 - 1
        })
    }

    fn intern(&mut self, account: &str) -> u32 {
        match self.index.get(account) {
            Some(i) => *i,
            None => {
                let i = self.accounts.len() as u32;
                self.index.insert(account.to_owned(), i);
                self.accounts.push(account.to_owned());
                i
            }
        }
    }

    fn take_calls(&mut self, reader: &mut asterisk::RecordReader) {
        self.calls.extend(reader.take_calls().into_iter().filter(|c| c.at.is_some()));
    }

    fn take(&mut self, record: ReadRecord) {
        let Some(e) = record.event else {
            self.unattributed += 1;
            return;
        };
        // Same rule as the live pipeline: the security log alone counts the services it covers.
        if self.drop_covered && e.service.has_security_events() {
            return;
        }
        let Some(ip) = e.ip else { return };
        let at = e.at.unwrap_or(self.last_at);
        self.last_at = at;
        let dated = e.at.is_some();
        let preliminary = e.is_preliminary();
        let account = e.account.map(|a| self.intern(&a));
        let ip = self.number(ip);
        self.events.push(Compact {
            at,
            dated,
            ip,
            outcome: e.outcome,
            service: e.service,
            account,
            tampered: e.tampered,
            session: e.session,
            preliminary,
        });
    }
}

/// Positions of `events` in time order, ties in reading order (the radix sort is
/// stable): sorting (time, position) pairs is quicker than moving whole events.
fn time_order(events: &[Compact]) -> Vec<u32> {
    let first = events.iter().map(|e| e.at).min().unwrap_or(0);
    let last = events.iter().map(|e| e.at).max().unwrap_or(0);
    if u32::try_from(last.abs_diff(first)).is_ok() {
        // Within 49 days of the first: 32-bit offsets halve what the sort moves.
        positions_by(events.iter().map(|e| e.at.abs_diff(first) as u32))
    } else {
        positions_by(events.iter().map(|e| e.at))
    }
}

/// Positions of `keys` in key order, ties in position order.
fn positions_by<K: radsort::Key>(keys: impl Iterator<Item = K>) -> Vec<u32> {
    let mut pairs: Vec<(K, u32)> = keys.zip(0..).collect();
    radsort::sort_by_key(&mut pairs, |&(key, _)| key);
    pairs.into_iter().map(|(_, i)| i).collect()
}

/// The kind of a log from its first lines.
fn detect_file_kind(path: &Path) -> io::Result<SourceKind> {
    let mut head = vec![0u8; 64 * 1024];
    let mut file = std::fs::File::open(path)?;
    let mut n = 0;
    while n < head.len() {
        let got = file.read(&mut head[n..])?;
        if got == 0 {
            break;
        }
        n += got;
    }
    let text = String::from_utf8_lossy(&head[..n]);
    let complete = text.rfind('\n').map_or("", |i| &text[..i]);
    Ok(asterisk::detect_kind(complete.lines().take(200)))
}

impl Report {
    /// Each address's country from `geo` (`—` when the database has none for it).
    pub fn add_countries(&mut self, geo: &crate::geo::Geo) {
        for (ip, address) in &mut self.by_ip {
            address.country = Some(geo.shown(ip));
        }
    }
}

/// What check-log judges with: the ban rules, the networks never banned, and when
/// calls are toll fraud.
#[derive(Debug, Clone, Default)]
pub struct Rules {
    pub ladder: Ladder,
    pub trusted: TrustedNetworks,
    pub fraud: FraudLimits,
    /// The country database (`--geoip`): a login from a country new to its account
    /// is an incident, as live.
    pub countries: Option<std::sync::Arc<crate::geo::Table>>,
}

pub fn check_files(paths: &[PathBuf], ladder: Ladder, trusted: TrustedNetworks) -> io::Result<Report> {
    let rules = Rules { ladder, trusted, fraud: FraudLimits::default(), countries: None };
    check_files_with_progress(paths, rules, &|_| {})
}

/// As [`check_files`], calling `progress` with the number of bytes read as it goes.
pub fn check_files_with_progress(
    paths: &[PathBuf],
    Rules { ladder, trusted, fraud, countries }: Rules,
    progress: &(dyn Fn(u64) + Sync),
) -> io::Result<Report> {
    let with_path = |p: &Path, e: io::Error| io::Error::new(e.kind(), format!("{}: {e}", p.display()));
    let kinds = paths
        .iter()
        .map(|p| detect_file_kind(p).map_err(|e| with_path(p, e)))
        .collect::<io::Result<Vec<_>>>()?;
    let security_present = kinds.contains(&SourceKind::Security);
    let mut collector = Collector::default();
    let mut reports = Vec::new();
    for (p, kind) in paths.iter().zip(kinds) {
        collector.drop_covered = kind == SourceKind::Messages && security_present;
        collector.last_at = 0;
        reports.push(read_file(p, kind, &mut collector, progress).map_err(|e| with_path(p, e))?);
    }
    let Collector { events, accounts, ips, unattributed, calls, .. } = collector;
    let order = time_order(&events);
    // Addresses do not affect one another: each core replays its share of them.
    let shares = std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, 4);
    let mut orders = vec![Vec::with_capacity(order.len() / shares + 1); shares];
    for &i in &order {
        orders[events[i as usize].ip as usize % shares].push(i);
    }
    let known = Known { events: &events, ips: &ips, accounts: &accounts };
    let (parts, incidents) = std::thread::scope(|scope| {
        let incidents = scope.spawn(|| incidents::detect(known, &order, calls, fraud, countries.as_deref()));
        let replay = |order: &[u32]| replay::addresses(known, order, ladder.clone(), trusted.clone());
        let helpers: Vec<_> = orders[1..].iter().map(|o| scope.spawn(move || replay(o))).collect();
        let mut parts = vec![replay(&orders[0])];
        parts.extend(helpers.into_iter().map(|h| h.join().expect("check-log replay thread panicked")));
        (parts, incidents.join().expect("check-log incident thread panicked"))
    });
    let total = parts.iter().map(|(_, failures)| failures).sum();
    let by_ip = parts.into_iter().flat_map(|(rows, _)| rows).collect();
    Ok(Report {
        files: reports,
        by_ip,
        total_failures: total,
        unattributed_tampered: unattributed,
        incidents,
    })
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
    if !report.incidents.is_empty() {
        out.push_str("\nincidents\n");
        for i in &report.incidents {
            out.push_str(&format!(
                "{} {:<8} {:<10} account {:?} from {}: {}\n",
                i.at,
                i.severity.as_str(),
                i.kind.as_str(),
                i.account,
                i.address.as_deref().unwrap_or("?"),
                i.reason
            ));
        }
    }
    out.push_str(&format!(
        "\n{} failures from {} addresses; {} tampered records could not be attributed\n",
        report.total_failures,
        report.by_ip.len(),
        report.unattributed_tampered
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(times: &[UnixMs]) -> Vec<Compact> {
        let event = |&at: &UnixMs| Compact {
            at,
            dated: true,
            ip: 0,
            outcome: Outcome::Success,
            service: crate::domain::Service::Sip,
            account: None,
            tampered: false,
            session: None,
            preliminary: false,
        };
        times.iter().map(event).collect()
    }

    #[test]
    fn events_in_time_order_ties_in_reading_order() {
        let close =
            [1_700_000_000_500, 1_700_000_000_000, 1_700_000_000_500, 1_699_999_999_999, 1_700_000_000_000];
        assert_eq!(time_order(&at(&close)), [3, 1, 4, 0, 2]);
        let far = [UnixMs::MAX, 5, UnixMs::MIN, 5, -1];
        assert_eq!(time_order(&at(&far)), [2, 4, 1, 3, 0]);
        assert!(time_order(&[]).is_empty());
    }
}
