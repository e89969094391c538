//! Incidents found offline: the breach detector over each successful login and the
//! toll-fraud breaker over the dialplan's calls, in the order things happened.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::IpAddr;

use serde::Serialize;

use super::Known;
use crate::domain::{DatedCall, FraudLimits, IncidentKind, Outcome, Severity, UnixMs};
use crate::policy::breach::{self, Guesses, Login, PastFailure};
use crate::policy::fraud::Breaker;

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct IncidentReport {
    pub kind: IncidentKind,
    pub severity: Severity,
    pub account: String,
    /// The address that logged in; for toll fraud, the one the extension last logged
    /// in from before the calls.
    pub address: Option<String>,
    /// RFC 3339.
    pub at: String,
    /// Toll fraud: calls of the burst up to and including the one that tripped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub calls_before_stop: Option<u32>,
    pub reason: String,
}

/// Walks logins, failures and calls in time order (`order`: positions of
/// `known.events` by time) and reports what the detectors find.
pub(super) fn detect(
    known: Known,
    order: &[u32],
    mut calls: Vec<DatedCall>,
    limits: FraudLimits,
    countries: Option<&crate::geo::Table>,
) -> Vec<IncidentReport> {
    calls.retain(|c| c.at.is_some());
    calls.sort_by_key(|c| c.at);
    // Asterisk dates its lines in local time: the office's hours are local too.
    let mut breaker = Breaker::new(limits).with_time_of_day(crate::clock::local_minute_of_day);
    let mut failures: HashMap<u32, VecDeque<PastFailure>> = HashMap::new();
    let mut logged_in: HashMap<u32, HashSet<u32>> = HashMap::new();
    let mut last_login: HashMap<String, IpAddr> = HashMap::new();
    let mut reported: HashSet<(u32, u32)> = HashSet::new();
    // Wrong passwords per account within the hour, for distributed guessing.
    let mut guesses: HashMap<u32, Guesses<u32>> = HashMap::new();
    let mut distributed: HashSet<u32> = HashSet::new();
    let mut out = Vec::new();
    let mut calls = calls.into_iter().peekable();
    for &i in order {
        let e = &known.events[i as usize];
        while let Some(call) = calls.next_if(|c| c.at.is_some_and(|at| at < e.at)) {
            out.extend(toll_fraud(&mut breaker, &call, &last_login));
        }
        if e.preliminary || e.tampered {
            continue;
        }
        let account = e.account.map(|a| known.accounts[a as usize].as_str());
        match e.outcome {
            Outcome::Failure(kind) => {
                if let (crate::domain::FailureKind::WrongPassword, Some(a)) = (kind, e.account) {
                    let addresses = guesses.entry(a).or_default().add(e.at, e.ip);
                    if addresses >= breach::DISTRIBUTED_ADDRESSES && distributed.insert(a) {
                        out.push(IncidentReport {
                            kind: IncidentKind::Breach,
                            severity: Severity::Warning,
                            account: known.accounts[a as usize].clone(),
                            address: None,
                            at: rfc3339(e.at),
                            calls_before_stop: None,
                            reason: format!(
                                "distributed guessing: {addresses} addresses tried wrong passwords within 1h"
                            ),
                        });
                    }
                }
                let past = failures.entry(e.ip).or_default();
                while past.front().is_some_and(|f| e.at - f.at > breach::LOOKBACK_MS) {
                    past.pop_front();
                }
                past.push_back(PastFailure { at: e.at, account: account.map(str::to_owned), kind });
            }
            Outcome::Success => {
                let (Some(name), Some(a)) = (account, e.account) else { continue };
                let ip = known.ips[e.ip as usize];
                if last_login.get(name) != Some(&ip) {
                    last_login.insert(name.to_owned(), ip);
                }
                let seen = logged_in.entry(a).or_default();
                let (account_seen, address_known) = (!seen.is_empty(), seen.contains(&e.ip));
                // A country none of the account's earlier addresses is in.
                let new_country = countries.filter(|_| account_seen && !address_known).and_then(|t| {
                    let c = t.lookup(ip)?;
                    let used = seen.iter().any(|&other| t.lookup(known.ips[other as usize]) == Some(c));
                    (!used).then(|| c.to_string())
                });
                seen.insert(e.ip);
                // The hour's failures, oldest first, in place.
                let past: &[PastFailure] = match failures.get_mut(&e.ip) {
                    Some(p) => {
                        let p = p.make_contiguous();
                        &p[p.partition_point(|f| e.at - f.at > breach::LOOKBACK_MS)..]
                    }
                    None => &[],
                };
                // A login with no failures before it from an address the account knew
                // (or its very first) is ordinary: most logins are.
                if past.is_empty() && (address_known || !account_seen) {
                    continue;
                }
                let login = Login {
                    at: e.at,
                    account: name,
                    failures: past,
                    account_seen,
                    address_known,
                    in_extension_networks: None,
                    new_country,
                    // The country rules are in the store, which check-log does not read.
                    country_not_allowed: false,
                };
                let finding = breach::judge_login(&login);
                if let Some(f) = finding {
                    if reported.insert((a, e.ip)) {
                        out.push(IncidentReport {
                            kind: IncidentKind::Breach,
                            severity: f.severity,
                            account: name.to_owned(),
                            address: Some(ip.to_string()),
                            at: rfc3339(e.at),
                            calls_before_stop: None,
                            reason: f.reason,
                        });
                    }
                }
            }
        }
    }
    for call in calls {
        out.extend(toll_fraud(&mut breaker, &call, &last_login));
    }
    out
}

fn toll_fraud(
    breaker: &mut Breaker,
    call: &DatedCall,
    last_login: &HashMap<String, IpAddr>,
) -> Option<IncidentReport> {
    let at = call.at?;
    let trip = breaker.observe(at, &call.event)?;
    Some(IncidentReport {
        kind: IncidentKind::TollFraud,
        severity: trip.severity,
        address: last_login.get(&trip.extension).map(|ip| ip.to_string()),
        account: trip.extension,
        at: rfc3339(at),
        calls_before_stop: Some(trip.calls_in_burst),
        reason: format!("{} ({})", trip.reason, trip.numbers.join(", ")),
    })
}

fn rfc3339(ms: UnixMs) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}
