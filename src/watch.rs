//! After a login succeeds: the breach detector over each login and the toll-fraud
//! breaker over each call, live. A critical finding bans the address, locks the
//! extension (its calls hung up, new ones refused) and is kept as an incident for the
//! panel. The pure judges are `policy::breach` and `policy::fraud`; this is the step
//! around them that reads and writes the store and asks Asterisk to act.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use crate::clock::Clock;
use crate::domain::{
    CallEvent, DAY_MS, DatedCall, FailureKind, HOUR_MS, IncidentKind, LogEvent, MINUTE_MS, Outcome, Service,
    Severity, TrustedNetworks, UnixMs,
};
use crate::pbx::control::Control;
use crate::policy::breach::{self, Guesses, Login, PastFailure};
use crate::policy::fraud::{Breaker, Trip};
use crate::store::{self, Store};

/// An address that logged into an extension before this long ago is the office's own:
/// a toll-fraud trip does not ban it.
const ESTABLISHED_MS: UnixMs = 7 * DAY_MS;

/// One thing the watch looks at, in time order.
pub enum Seen<'a> {
    Login {
        at: UnixMs,
        ip: IpAddr,
        account: &'a str,
        service: Service,
    },
    /// A failure: the address is no longer one whose logins can be passed over, and
    /// many addresses with a wrong password for one account is distributed guessing.
    Failure {
        at: UnixMs,
        ip: IpAddr,
        account: Option<&'a str>,
        kind: FailureKind,
    },
    Call(&'a DatedCall),
}

/// Logins and calls older than this are not acted on live (an old log imported at start).
pub const ACTS_ON_MS: UnixMs = crate::domain::HOUR_MS;

impl Seen<'_> {
    pub fn at(&self) -> Option<UnixMs> {
        match self {
            Seen::Login { at, .. } | Seen::Failure { at, .. } => Some(*at),
            Seen::Call(c) => c.at,
        }
    }
}

/// The successful logins among `events` (never a tampered record's) and the calls, by time.
pub fn seen_in<'a>(
    events: impl Iterator<Item = &'a LogEvent>,
    calls: &'a [DatedCall],
    now: UnixMs,
) -> Vec<Seen<'a>> {
    let mut seen: Vec<Seen> = events
        .filter_map(|e| {
            let at = e.at.unwrap_or(now).min(now);
            match e.outcome {
                // Never learn a login from a tampered record.
                Outcome::Success if !e.tampered => {
                    Some(Seen::Login { at, ip: e.ip?, account: e.account.as_deref()?, service: e.service })
                }
                Outcome::Success => None,
                Outcome::Failure(kind) => {
                    Some(Seen::Failure { at, ip: e.ip?, account: e.account.as_deref(), kind })
                }
            }
        })
        .chain(calls.iter().map(Seen::Call))
        .collect();
    // Stable: a login and the call it made in the same second stay in that order.
    seen.sort_by_key(|s| s.at().unwrap_or(now));
    seen
}

pub struct Watch {
    pub store: Store,
    pub clock: Arc<dyn Clock>,
    pub trusted: TrustedNetworks,
    pub protection_default: bool,
    pub breaker: Mutex<Breaker>,
    pub pbx: Arc<dyn Control>,
    /// Poked after a ban, so the enforcer acts at once.
    pub bans_changed: Arc<Notify>,
    /// Where incidents are told (`None`: nowhere).
    pub alerts: Option<crate::alerts::Alerts>,
    /// What the watch remembers between batches.
    pub memory: Mutex<Memory>,
    /// Countries of addresses: a login from a country new to the account is unusual.
    pub geo: crate::geo::Geo,
}

/// Kept in memory (a restart starts afresh and asks the store): lets the many ordinary
/// logins pass without a database round trip.
#[derive(Default)]
pub struct Memory {
    /// Wrong passwords per account within the hour, for distributed guessing.
    guessing: HashMap<String, Guesses<IpAddr>>,
    /// The latest failure of each address that failed within the hour.
    last_failure: HashMap<IpAddr, UnixMs>,
    /// Logins judged and stored: (account, address) → (stored at, latest).
    logins: HashMap<(String, IpAddr), (UnixMs, UnixMs)>,
}

/// A known login is stored again at most this often (the Logins page's "last seen").
const LOGIN_REFRESH_MS: UnixMs = 10 * MINUTE_MS;

/// Logins this long before a burst's first call count as the burst's.
const BURST_LOGIN_MARGIN_MS: UnixMs = 10_000;

/// What a critical incident asks of Asterisk, done after the incident is stored.
struct Lock {
    incident: i64,
    tech: Option<String>,
    account: String,
    /// Its calls in progress as far as sipwarden saw them.
    channels: Vec<String>,
}

impl Watch {
    /// A watch with the default fraud limits, protection on, nothing trusted beyond
    /// loopback and no alerts; `serve` sets the rest from its configuration.
    pub fn new(
        store: Store,
        clock: Arc<dyn Clock>,
        pbx: Arc<dyn Control>,
        bans_changed: Arc<Notify>,
    ) -> Watch {
        Watch {
            store,
            clock,
            trusted: TrustedNetworks::default(),
            protection_default: true,
            breaker: Mutex::new(
                Breaker::new(crate::domain::FraudLimits::default())
                    .with_time_of_day(crate::clock::local_minute_of_day),
            ),
            pbx,
            bans_changed,
            alerts: None,
            memory: Default::default(),
            geo: crate::geo::Geo::none(),
        }
    }

    /// One step: judges what was seen; returns the incidents raised.
    pub async fn observe(&self, seen: &[Seen<'_>]) -> store::Result<Vec<i64>> {
        let mut raised = Vec::new();
        // Locked extensions and their incident, read when a call needs them.
        let mut locked: Option<HashMap<String, i64>> = None;
        for s in seen {
            match s {
                Seen::Login { at, ip, account, service } => {
                    raised.extend(self.login(*at, *ip, account, *service).await?);
                }
                Seen::Failure { at, ip, account, kind } => {
                    self.remember_failure(*at, *ip);
                    if let (FailureKind::WrongPassword, Some(account)) = (kind, account) {
                        raised.extend(self.distributed_guessing(*at, *ip, account).await?);
                    }
                }
                Seen::Call(call) => {
                    let at = call.at.unwrap_or_else(|| self.clock.now());
                    let (owner, trip) = {
                        let mut breaker = self.breaker.lock().unwrap_or_else(|p| p.into_inner());
                        let owner = match &call.event {
                            CallEvent::Start(start) => Some(start.endpoint.clone()),
                            CallEvent::End { channel } => breaker.owner(channel).map(|(_, ext)| ext.clone()),
                        };
                        (owner, breaker.observe(at, &call.event))
                    };
                    if let Some(trip) = trip {
                        raised.extend(self.toll_fraud(trip).await?);
                    }
                    let Some(owner) = owner else { continue };
                    if locked.is_none() {
                        let rows = store::incidents::locking(&mut *self.store.acquire().await?).await?;
                        // Newest first: the first row per extension is its latest lock.
                        let mut map = HashMap::new();
                        for r in rows {
                            map.entry(r.account).or_insert(r.id);
                        }
                        locked = Some(map);
                    }
                    let Some(&incident) = locked.as_ref().and_then(|l| l.get(&owner)) else { continue };
                    match &call.event {
                        // A locked extension's new call ends as soon as it is seen.
                        CallEvent::Start(start) => self.refuse_call(&owner, &start.channel).await,
                        // Asterisk confirms the end of each of its calls.
                        CallEvent::End { channel } => {
                            let line = format!("{channel} ended");
                            let mut conn = self.store.acquire().await?;
                            store::incidents::add_action(&mut conn, incident, &line).await?;
                        }
                    }
                }
            }
            if !raised.is_empty() {
                locked = None;
            }
        }
        Ok(raised)
    }

    async fn login(
        &self,
        at: UnixMs,
        ip: IpAddr,
        account: &str,
        service: Service,
    ) -> store::Result<Option<i64>> {
        if self.passes(at, ip, account) {
            return Ok(None);
        }
        let ip_text = ip.to_string();
        let mut tx = self.store.begin().await?;
        let failures: Vec<PastFailure> =
            store::failures::from_address(&mut tx, &ip_text, at - breach::LOOKBACK_MS, at)
                .await?
                .into_iter()
                .filter_map(|(at, account, kind)| {
                    Some(PastFailure { at, account, kind: FailureKind::parse(&kind)? })
                })
                .collect();
        let (account_seen, address_known) =
            store::incidents::login_history(&mut tx, account, &ip_text, at).await?;
        let extensions = store::networks::nets(&mut tx, crate::domain::NetworkList::Extensions, at).await?;
        let new_country = match (self.geo.country(ip), account_seen && !address_known) {
            (Some(country), true) => {
                let earlier = store::incidents::logins_of(&mut tx, account).await?;
                let used = earlier
                    .iter()
                    .filter(|(_, first, _)| *first < at)
                    .any(|(other, _, _)| self.geo.country_of(other) == Some(country));
                (!used).then(|| country.to_string())
            }
            _ => None,
        };
        let country_not_allowed = match new_country.as_deref().and_then(crate::geo::Country::parse) {
            Some(c) => store::settings::country_rules(&mut tx)
                .await?
                .of(crate::domain::ClosableService::Sip)
                .blocks(Some(c)),
            None => false,
        };
        store::incidents::record_login(&mut tx, account, &ip_text, at).await?;
        let login = Login {
            at,
            account,
            failures: &failures,
            account_seen,
            address_known,
            in_extension_networks: (!extensions.is_empty())
                .then(|| extensions.iter().any(|n| n.contains(&ip))),
            new_country,
            country_not_allowed,
        };
        let Some(finding) = breach::judge_login(&login) else {
            tx.commit().await?;
            return Ok(None);
        };
        let kind = IncidentKind::Breach.as_str();
        if store::incidents::raised_since(&mut tx, kind, account, Some(&ip_text), at - DAY_MS).await? {
            tx.commit().await?;
            return Ok(None);
        }
        let enforcing = store::settings::protection(&mut tx, self.protection_default).await?;
        let critical = finding.severity == Severity::Critical;
        // An AMI user is no extension: its address is banned, nothing is locked.
        let tech = match service {
            Service::Pjsip => Some("PJSIP"),
            Service::Sip => Some("SIP"),
            Service::Iax2 => Some("IAX2"),
            _ => None,
        };
        let lock = critical && enforcing && tech.is_some();
        let id = store::incidents::insert(
            &mut tx,
            &store::incidents::NewIncident {
                kind,
                severity: finding.severity.as_str(),
                account,
                tech,
                ip: Some(&ip_text),
                at,
                reason: &finding.reason,
                calls: None,
                numbers: "",
                locked: lock,
            },
        )
        .await?;
        tracing::warn!(account, ip = %ip, severity = finding.severity.as_str(), reason = %finding.reason, "breach");
        if critical && !enforcing {
            store::incidents::add_action(&mut tx, id, "protection is off: nothing was done").await?;
        }
        if critical && enforcing {
            let reason = crate::domain::BanReason::breach(&format!(
                "logged into {account} after guessing ({})",
                finding.reason
            ));
            self.ban(&mut tx, id, ip, &reason, at).await?;
        }
        tx.commit().await?;
        if lock {
            self.bans_changed.notify_one();
            let channels = self.active_channels(tech, account);
            let lock =
                Lock { incident: id, tech: tech.map(str::to_owned), account: account.to_owned(), channels };
            self.lock(lock).await?;
        }
        self.tell(id).await?;
        Ok(Some(id))
    }

    fn remember_failure(&self, at: UnixMs, ip: IpAddr) {
        let mut memory = self.memory.lock().unwrap_or_else(|p| p.into_inner());
        if memory.last_failure.len() > 100_000 {
            memory.last_failure.retain(|_, t| at - *t <= breach::LOOKBACK_MS);
        }
        let last = memory.last_failure.entry(ip).or_insert(at);
        *last = (*last).max(at);
    }

    /// Whether a login can pass unjudged: the same account and address were judged and
    /// stored a moment ago, and the address has not failed since (only a failure can
    /// change the judgement). Remembers it either way.
    fn passes(&self, at: UnixMs, ip: IpAddr, account: &str) -> bool {
        let mut memory = self.memory.lock().unwrap_or_else(|p| p.into_inner());
        let last_failure = memory.last_failure.get(&ip).copied();
        if memory.logins.len() > 100_000 {
            memory.logins.retain(|_, (_, last)| at - *last < DAY_MS);
        }
        let entry = memory.logins.entry((account.to_owned(), ip)).or_insert((UnixMs::MIN, at));
        let failed = last_failure.is_some_and(|t| t >= entry.0 && at - t <= breach::LOOKBACK_MS);
        entry.1 = entry.1.max(at);
        if !failed && entry.0 != UnixMs::MIN && at - entry.0 < LOGIN_REFRESH_MS {
            return true;
        }
        entry.0 = at;
        false
    }

    /// The addresses that logged into `account` at or after `since`, the latest first,
    /// with their first login: the store's, and the ones passed in memory meanwhile.
    fn latest_logins(
        &self,
        account: &str,
        stored: Vec<(String, UnixMs, UnixMs)>,
        since: UnixMs,
    ) -> Vec<(String, UnixMs)> {
        let memory = self.memory.lock().unwrap_or_else(|p| p.into_inner());
        let mut rows: Vec<(String, UnixMs, UnixMs)> = stored
            .into_iter()
            .map(|(ip, first, last)| {
                let remembered =
                    ip.parse::<IpAddr>().ok().and_then(|a| memory.logins.get(&(account.to_owned(), a)));
                let last = remembered.map_or(last, |(_, l)| last.max(*l));
                (ip, first, last)
            })
            .filter(|(_, _, last)| *last >= since)
            .collect();
        rows.sort_by(|a, b| b.2.cmp(&a.2).then(a.0.cmp(&b.0)));
        rows.into_iter().map(|(ip, first, _)| (ip, first)).collect()
    }

    /// A warning when many addresses try wrong passwords for one account. Counted in
    /// memory; the store is asked only to keep the warning to one a day.
    async fn distributed_guessing(
        &self,
        at: UnixMs,
        ip: IpAddr,
        account: &str,
    ) -> store::Result<Option<i64>> {
        let addresses = {
            let mut memory = self.memory.lock().unwrap_or_else(|p| p.into_inner());
            if memory.guessing.len() > 10_000 {
                memory.guessing.retain(|_, g| g.last().is_some_and(|t| at - t < HOUR_MS));
            }
            memory.guessing.entry(account.to_owned()).or_default().add(at, ip)
        };
        if addresses != breach::DISTRIBUTED_ADDRESSES {
            return Ok(None);
        }
        let kind = IncidentKind::Breach.as_str();
        let mut tx = self.store.begin().await?;
        if store::incidents::raised_since(&mut tx, kind, account, None, at - DAY_MS).await? {
            tx.commit().await?;
            return Ok(None);
        }
        let reason = format!(
            "distributed guessing: {addresses} addresses tried wrong passwords for {account} within 1h"
        );
        let incident = store::incidents::NewIncident {
            kind,
            severity: Severity::Warning.as_str(),
            account,
            tech: None,
            ip: None,
            at,
            reason: &reason,
            calls: None,
            numbers: "",
            locked: false,
        };
        let id = store::incidents::insert(&mut tx, &incident).await?;
        tx.commit().await?;
        tracing::warn!(account, addresses, "distributed guessing");
        self.tell(id).await?;
        Ok(Some(id))
    }

    async fn toll_fraud(&self, trip: Trip) -> store::Result<Option<i64>> {
        let now = trip.at;
        let mut tx = self.store.begin().await?;
        let enforcing = store::settings::protection(&mut tx, self.protection_default).await?;
        let critical = trip.severity == Severity::Critical;
        // The addresses that logged into the extension while it placed the burst: each
        // call of a cracked extension is authenticated just before it starts.
        let since = trip.burst_started - BURST_LOGIN_MARGIN_MS;
        let stored = store::incidents::logins_of(&mut tx, &trip.extension).await?;
        let logins = self.latest_logins(&trip.extension, stored, since);
        let from = logins.iter().map(|(ip, _)| ip.as_str()).next();
        let lock = critical && enforcing;
        let id = store::incidents::insert(
            &mut tx,
            &store::incidents::NewIncident {
                kind: IncidentKind::TollFraud.as_str(),
                severity: trip.severity.as_str(),
                account: &trip.extension,
                tech: Some(&trip.tech),
                ip: from,
                at: now,
                reason: &trip.reason,
                calls: Some(i64::from(trip.calls_in_burst)),
                numbers: &trip.numbers.join(", "),
                locked: lock,
            },
        )
        .await?;
        tracing::warn!(extension = %trip.extension, severity = trip.severity.as_str(), reason = %trip.reason, "toll fraud");
        if critical && !enforcing {
            store::incidents::add_action(&mut tx, id, "protection is off: nothing was done").await?;
        }
        if lock {
            let extensions =
                store::networks::nets(&mut tx, crate::domain::NetworkList::Extensions, now).await?;
            for (ip_text, first_at) in &logins {
                let Ok(ip) = ip_text.parse::<IpAddr>() else { continue };
                if extensions.iter().any(|n| n.contains(&ip)) || now - first_at > ESTABLISHED_MS {
                    let line = format!("{ip_text} not banned: an address of the office's phones");
                    store::incidents::add_action(&mut tx, id, &line).await?;
                    continue;
                }
                let reason = format!("toll fraud on {}: {}", trip.extension, trip.reason);
                self.ban(&mut tx, id, ip, &reason, now).await?;
            }
        }
        tx.commit().await?;
        if lock {
            self.bans_changed.notify_one();
            let channels = self.active_channels(Some(&trip.tech), &trip.extension);
            let lock = Lock {
                incident: id,
                tech: Some(trip.tech.clone()),
                account: trip.extension.clone(),
                channels,
            };
            self.lock(lock).await?;
        }
        self.tell(id).await?;
        Ok(Some(id))
    }

    fn active_channels(&self, tech: Option<&str>, account: &str) -> Vec<String> {
        let breaker = self.breaker.lock().unwrap_or_else(|p| p.into_inner());
        match tech {
            Some(t) => breaker.active_channels(t, account),
            None => Vec::new(),
        }
    }

    /// Bans `ip` until released, unless it is trusted; says which in the incident.
    async fn ban(
        &self,
        tx: &mut store::Conn,
        incident: i64,
        ip: IpAddr,
        reason: &str,
        at: UnixMs,
    ) -> store::Result<()> {
        let ip_text = ip.to_string();
        let trusted = self.trusted.with(store::networks::trusted_nets(tx).await?);
        let line = if trusted.contains(ip) {
            format!("{ip_text} not banned: trusted")
        } else if store::bans::active_for(tx, &ip_text, at).await?.is_some_and(|b| b.until_at.is_none()) {
            format!("{ip_text} already banned until released")
        } else {
            let ban = store::bans::NewBan { ip: &ip_text, reason, rung: 0, created_at: at, until_at: None };
            store::bans::insert(tx, &ban).await?;
            format!("{ip_text} banned until released")
        };
        store::incidents::add_action(tx, incident, &line).await
    }

    /// Hangs up the extension's calls and marks it locked; each result goes to the incident.
    async fn lock(&self, lock: Lock) -> store::Result<()> {
        let pbx = self.pbx.clone();
        let Lock { incident, tech, account, channels } = lock;
        let lines = tokio::task::spawn_blocking(move || {
            let mut lines = Vec::new();
            // Every call of the extension at once where Asterisk can match them;
            // otherwise the calls seen, one by one.
            let all = tech.as_deref().map(|t| {
                pbx.hangup_all(t, &account).map(|()| format!("hung up every call of {t}/{account}"))
            });
            if let Some(Ok(line)) = all {
                lines.push(line);
            } else {
                for channel in &channels {
                    lines.push(match pbx.hangup(channel) {
                        Ok(()) => format!("hung up {channel}"),
                        Err(e) => format!("could not hang up {channel}: {e}"),
                    });
                }
            }
            lines.push(match pbx.set_locked(&account, true) {
                Ok(()) => format!("{account} locked: its new calls are refused"),
                Err(e) => format!("could not mark {account} locked in Asterisk: {e}"),
            });
            lines
        })
        .await
        .unwrap_or_else(|e| vec![format!("locking failed: {e}")]);
        let mut conn = self.store.acquire().await?;
        for line in &lines {
            tracing::warn!(incident, "{line}");
            store::incidents::add_action(&mut conn, incident, line).await?;
        }
        Ok(())
    }

    /// Queues the alert for incident `id`, with what was done about it.
    async fn tell(&self, id: i64) -> store::Result<()> {
        let Some(alerts) = &self.alerts else { return Ok(()) };
        let Some(i) = store::incidents::by_id(&mut *self.store.acquire().await?, id).await? else {
            return Ok(());
        };
        alerts.raise(crate::alerts::incident_alert(&i));
        Ok(())
    }

    /// A locked extension placed a call: it is hung up at once.
    async fn refuse_call(&self, account: &str, channel: &str) {
        let pbx = self.pbx.clone();
        let channel = channel.to_owned();
        let result = tokio::task::spawn_blocking(move || pbx.hangup(&channel).map(|()| channel)).await;
        match result {
            Ok(Ok(channel)) => tracing::warn!(account, channel, "call of a locked extension hung up"),
            Ok(Err(e)) => tracing::error!(account, error = %e, "could not hang up a locked extension's call"),
            Err(e) => tracing::error!(account, error = %e, "hang-up task failed"),
        }
    }
}
