//! The ladder replayed over check-log's events, one share of the addresses at a time.

use super::{ACCOUNTS_SHOWN, AddressReport, Known};
use crate::domain::{Outcome, Service, TrustedNetworks, UnixMs};
use crate::policy::Ladder;
use crate::policy::attempts::Attempts;
use crate::policy::replay::Replay;

/// Per address, in numbers (account ids, services) until the report is built.
#[derive(Default)]
struct Tally {
    failures: u64,
    accounts: Vec<u32>,
    services: Vec<Service>,
    first_seen: Option<UnixMs>,
    last_seen: Option<UnixMs>,
    tampered: u64,
}

/// The report rows of the addresses whose events `order` lists (in time order), and
/// the number of failures among them.
pub(super) fn addresses(
    known: Known<'_>,
    order: &[u32],
    ladder: Ladder,
    trusted: TrustedNetworks,
) -> (Vec<(String, AddressReport)>, u64) {
    let Known { events, ips, accounts } = known;
    let mut replay = Replay::new(ladder, trusted);
    let mut tallies: Vec<Option<Tally>> = (0..ips.len()).map(|_| None).collect();
    let mut total = 0;
    let mut attempts = Attempts::default();
    for &i in order {
        let e = &events[i as usize];
        let (at, slot) = (e.at, e.ip as usize);
        if matches!(e.outcome, Outcome::Failure(_))
            && !attempts.is_new(ips[slot], e.session, e.preliminary, at)
        {
            continue;
        }
        replay.observe(slot, ips[slot], at, e.outcome);
        if !matches!(e.outcome, Outcome::Failure(_)) {
            continue;
        }
        total += 1;
        let t = tallies[slot].get_or_insert_with(Tally::default);
        t.failures += 1;
        if !t.services.contains(&e.service) {
            t.services.push(e.service);
        }
        if let Some(a) = e.account {
            if t.accounts.len() < ACCOUNTS_SHOWN && !t.accounts.contains(&a) {
                t.accounts.push(a);
            }
        }
        t.first_seen.get_or_insert(at);
        t.last_seen = Some(at);
        t.tampered += u64::from(e.tampered);
    }
    let rows = tallies
        .into_iter()
        .enumerate()
        .filter_map(|(slot, t)| t.map(|t| (slot, t)))
        .map(|(slot, t)| {
            let report = AddressReport {
                failures: t.failures,
                accounts: t.accounts.iter().map(|&a| accounts[a as usize].clone()).collect(),
                services: t.services.iter().map(|s| s.as_str()).collect(),
                first_seen: t.first_seen,
                last_seen: t.last_seen,
                tampered: t.tampered,
                verdict: replay.summary(slot, ips[slot]),
                country: None,
            };
            (ips[slot].to_string(), report)
        })
        .collect();
    (rows, total)
}
