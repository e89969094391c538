//! The breach detector: was a successful login the end of a guessing run? Pure.

use crate::domain::{FailureKind, HOUR_MS, SECOND_MS, Severity, UnixMs};

/// How far back an address's failures are looked at when it logs in.
pub const LOOKBACK_MS: UnixMs = HOUR_MS;
/// Failures this close together came from a program, not a person typing.
const MACHINE_SPEED_MS: UnixMs = 10 * SECOND_MS;
const MACHINE_SPEED_FAILURES: usize = 3;
/// So many failures before a login from an address with no standing is guessing at any pace.
const MANY_FAILURES: usize = 5;
/// A wrong password and the right one this close together: a program tried a list.
const QUICK_GUESS_MS: UnixMs = SECOND_MS;

/// Addresses trying wrong passwords for one account within an hour: distributed guessing.
pub const DISTRIBUTED_ADDRESSES: usize = 5;

/// One account's wrong passwords within the last hour, counted per address.
#[derive(Debug)]
pub struct Guesses<A> {
    recent: std::collections::VecDeque<(UnixMs, A)>,
    per_address: std::collections::HashMap<A, u32>,
}

impl<A> Default for Guesses<A> {
    fn default() -> Self {
        Guesses { recent: Default::default(), per_address: Default::default() }
    }
}

impl<A: Copy + Eq + std::hash::Hash> Guesses<A> {
    /// Adds one; returns how many addresses guessed within the hour.
    pub fn add(&mut self, at: UnixMs, address: A) -> usize {
        while let Some(&(_, old)) = self.recent.front().filter(|(t, _)| at - t > HOUR_MS) {
            self.recent.pop_front();
            if let Some(n) = self.per_address.get_mut(&old) {
                *n -= 1;
                if *n == 0 {
                    self.per_address.remove(&old);
                }
            }
        }
        self.recent.push_back((at, address));
        *self.per_address.entry(address).or_default() += 1;
        self.per_address.len()
    }

    /// The latest guess, to forget accounts nobody tries any more.
    pub fn last(&self) -> Option<UnixMs> {
        self.recent.back().map(|(t, _)| *t)
    }
}

/// A failure from the address that logged in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PastFailure {
    pub at: UnixMs,
    pub account: Option<String>,
    pub kind: FailureKind,
}

/// A successful login with what is known before it.
#[derive(Debug, Clone)]
pub struct Login<'a> {
    pub at: UnixMs,
    pub account: &'a str,
    /// The address's failures within [`LOOKBACK_MS`] before the login, oldest first.
    pub failures: &'a [PastFailure],
    /// The account logged in before (from any address).
    pub account_seen: bool,
    /// The account logged in before from this address.
    pub address_known: bool,
    /// `None` when no extension networks are defined.
    pub in_extension_networks: Option<bool>,
    /// The address's country when none of the account's earlier logins came from it
    /// (`None`: not new, or no country database).
    pub new_country: Option<String>,
    /// The country rules for SIP drop that country (the address passes them only as an
    /// allowed network, or the rules came later).
    pub country_not_allowed: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub severity: Severity,
    /// Plain words: "password guessed after 6 failures within 0.1 s".
    pub reason: String,
}

/// Whether `login` is a breach (critical), unusual (warning) or ordinary (`None`).
/// A phone with a typo — a failure or two for its own account at human pace, from an
/// address it used before or inside the extension networks — is ordinary.
pub fn judge_login(login: &Login) -> Option<Finding> {
    let counted: Vec<&PastFailure> = login
        .failures
        .iter()
        .filter(|f| matches!(f.kind, FailureKind::WrongPassword | FailureKind::UnknownAccount))
        .collect();
    let mut signs = Vec::new();
    if let Some(span) = machine_speed(&counted) {
        signs.push(format!("{} failures within {}", counted.len(), seconds(span)));
    }
    let mut others: Vec<&str> = counted
        .iter()
        .filter(|f| f.kind == FailureKind::UnknownAccount || f.account.as_deref() != Some(login.account))
        .map(|f| f.account.as_deref().unwrap_or("?"))
        .collect();
    others.sort_unstable();
    others.dedup();
    if !others.is_empty() {
        signs.push(format!(
            "tried {} other account{} first",
            others.len(),
            if others.len() == 1 { "" } else { "s" }
        ));
    }
    let standing = login.address_known || login.in_extension_networks == Some(true);
    if !standing && counted.len() >= MANY_FAILURES && signs.is_empty() {
        signs.push(format!("{} failures first", counted.len()));
    }
    let last_wrong = counted.iter().rev().find(|f| f.kind == FailureKind::WrongPassword).map(|f| f.at);
    if !standing && signs.is_empty() && last_wrong.is_some_and(|t| login.at - t < QUICK_GUESS_MS) {
        signs.push(format!(
            "right password {} after a wrong one",
            seconds(login.at - last_wrong.unwrap_or(0))
        ));
    }
    if login.in_extension_networks == Some(false) && !counted.is_empty() && signs.is_empty() {
        signs.push(format!(
            "{} failure{} first, outside the extension networks",
            counted.len(),
            plural(counted.len())
        ));
    }
    if !signs.is_empty() {
        return Some(Finding {
            severity: Severity::Critical,
            reason: format!("password guessed: {}", signs.join(", ")),
        });
    }
    if let Some(country) = login.new_country.as_deref().filter(|_| login.account_seen) {
        // A REGISTER from a country the extension never used: the phone moved abroad,
        // or its password works somewhere else now. From a country the office keeps
        // out, it is the latter until shown otherwise.
        if login.country_not_allowed {
            return Some(Finding {
                severity: Severity::Critical,
                reason: format!(
                    "first login to this account from {country}, a country it never logged in from and not allowed to reach SIP"
                ),
            });
        }
        return Some(Finding {
            severity: Severity::Warning,
            reason: format!("first login to this account from {country}, a country it never logged in from"),
        });
    }
    (login.account_seen && !login.address_known).then(|| Finding {
        severity: Severity::Warning,
        reason: "first login to this account from this address".to_owned(),
    })
}

/// The span of the quickest run of [`MACHINE_SPEED_FAILURES`] failures, when it is
/// quicker than a person types.
fn machine_speed(failures: &[&PastFailure]) -> Option<UnixMs> {
    failures
        .windows(MACHINE_SPEED_FAILURES)
        .map(|w| w[w.len() - 1].at - w[0].at)
        .filter(|&span| span < MACHINE_SPEED_MS)
        .min()
        .map(|_| failures.last().map_or(0, |l| l.at) - failures.first().map_or(0, |f| f.at))
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

fn seconds(ms: UnixMs) -> String {
    if ms < 10 * SECOND_MS {
        format!("{:.1} s", ms as f64 / 1000.0)
    } else {
        crate::policy::human_duration(ms / SECOND_MS * SECOND_MS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failures(list: &[(UnixMs, &str, FailureKind)]) -> Vec<PastFailure> {
        list.iter().map(|&(at, a, kind)| PastFailure { at, account: Some(a.into()), kind }).collect()
    }

    fn login<'a>(failures: &'a [PastFailure], known: bool, inside: Option<bool>) -> Login<'a> {
        let at = failures.last().map_or(0, |f| f.at) + 4_000;
        Login {
            at,
            account: "1002",
            failures,
            account_seen: true,
            address_known: known,
            in_extension_networks: inside,
            new_country: None,
            country_not_allowed: false,
        }
    }

    const WRONG: FailureKind = FailureKind::WrongPassword;

    #[test]
    fn guessing_at_machine_speed_then_success_is_a_breach() {
        let f = failures(&[(0, "1002", WRONG), (5, "1002", WRONG), (9, "1002", WRONG), (28, "1002", WRONG)]);
        let found = judge_login(&login(&f, false, None)).unwrap();
        assert_eq!(found.severity, Severity::Critical);
        assert!(found.reason.contains("4 failures within 0.0 s"), "{}", found.reason);
        // Even from an address the extension used before, or inside the office.
        assert_eq!(judge_login(&login(&f, true, Some(true))).unwrap().severity, Severity::Critical);
    }

    #[test]
    fn trying_other_accounts_first_is_a_breach() {
        let f = failures(&[(0, "1000", FailureKind::UnknownAccount), (60_000, "1002", WRONG)]);
        let found = judge_login(&login(&f, false, None)).unwrap();
        assert_eq!(found.severity, Severity::Critical);
        assert!(found.reason.contains("1 other account"), "{}", found.reason);
    }

    #[test]
    fn a_typo_is_no_breach() {
        let f = failures(&[(0, "1002", WRONG)]);
        assert_eq!(judge_login(&login(&f, true, None)), None);
        assert_eq!(judge_login(&login(&f, true, Some(true))), None);
        let two = failures(&[(0, "1002", WRONG), (20_000, "1002", WRONG)]);
        assert_eq!(judge_login(&login(&two, true, None)), None);
        // A phone whose old password failed all afternoon, fixed at last, in the office.
        let slow: Vec<_> = (0..40).map(|i| (i * 60_000, "1002", WRONG)).collect();
        assert_eq!(
            judge_login(&login(&failures(&slow), false, Some(true))).map(|f| f.severity),
            Some(Severity::Warning)
        );
    }

    /// svcrack on a real Asterisk 20: one wrong guess, then the right one 6 ms later.
    #[test]
    fn the_right_password_within_a_second_of_a_wrong_one_from_a_stranger_is_a_breach() {
        let f = failures(&[(1_000, "1002", WRONG)]);
        let quick = Login { at: 1_006, ..login(&f, false, None) };
        let found = judge_login(&quick).unwrap();
        assert_eq!(found.severity, Severity::Critical, "{}", found.reason);
        // The office phone that retries at once after a stale nonce is no stranger.
        assert_eq!(judge_login(&Login { at: 1_006, ..login(&f, true, None) }), None);
        let inside = judge_login(&Login { at: 1_006, ..login(&f, false, Some(true)) });
        assert_eq!(inside.map(|f| f.severity), Some(Severity::Warning));
    }

    #[test]
    fn failures_from_outside_the_extension_networks_or_many_from_a_stranger_are_a_breach() {
        let f = failures(&[(0, "1002", WRONG)]);
        assert_eq!(judge_login(&login(&f, false, Some(false))).unwrap().severity, Severity::Critical);
        let slow: Vec<_> = (0..5).map(|i| (i * 60_000, "1002", WRONG)).collect();
        assert_eq!(judge_login(&login(&failures(&slow), false, None)).unwrap().severity, Severity::Critical);
    }

    #[test]
    fn a_login_from_a_country_the_extension_never_used_says_which() {
        let none = [];
        let abroad = Login { new_country: Some("BR".into()), ..login(&none, false, None) };
        let found = judge_login(&abroad).unwrap();
        assert_eq!(found.severity, Severity::Warning);
        assert!(found.reason.contains("from BR, a country it never logged in from"), "{}", found.reason);
        // Guessing first is still a breach, whatever the country.
        let f = failures(&[(0, "1002", WRONG), (5, "1002", WRONG), (9, "1002", WRONG)]);
        let guessed = Login { new_country: Some("BR".into()), ..login(&f, false, None) };
        assert_eq!(judge_login(&guessed).unwrap().severity, Severity::Critical);
        // Outside the countries allowed to reach SIP: critical.
        let outside = Login { country_not_allowed: true, ..abroad.clone() };
        let found = judge_login(&outside).unwrap();
        assert_eq!(found.severity, Severity::Critical);
        assert!(found.reason.contains("from BR") && found.reason.contains("not allowed to reach SIP"));
        // An account's very first login has no countries to compare with.
        let first = Login { account_seen: false, ..abroad };
        assert_eq!(judge_login(&first), None);
    }

    #[test]
    fn a_clean_first_login_from_a_new_address_is_a_warning_only_once_the_account_has_a_history() {
        let none = [];
        assert_eq!(judge_login(&login(&none, false, None)).unwrap().severity, Severity::Warning);
        assert_eq!(judge_login(&login(&none, true, None)), None);
        let first_ever = Login { account_seen: false, ..login(&none, false, None) };
        assert_eq!(judge_login(&first_ever), None);
        // Configuration mistakes (wrong transport, ACL) before it do not count.
        let acl = failures(&[(0, "1002", FailureKind::AclDenied); 6]);
        assert_eq!(judge_login(&login(&acl, true, None)), None);
    }
}
