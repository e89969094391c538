//! One step of the live pipeline: store what a batch of log records says, decide
//! bans, and save the follower's cursor, all in one transaction.

use std::net::IpAddr;
use std::sync::Arc;

use tokio::sync::Notify;

use super::cleanlog::{CleanLog, CleanLogLine};
use super::spool::Rules;
use super::{Batch, Cursor};
use crate::asterisk::{ReadRecord, SourceKind};
use crate::clock::Clock;
use crate::domain::{FailureKind, LogEvent, Outcome, TrustedNetworks, UnixMs};
use crate::policy::attempts::Attempts;
use crate::policy::corroborate::Corroboration;
use crate::policy::prefix::{PrefixRule, V6Ban, prefix_to_ban};
use crate::policy::{self, History, Ladder, Verdict, decide};
use crate::store::{self, Conn, Store};

struct RecordContext<'a> {
    at: UnixMs,
    ladder: &'a Ladder,
    trusted: &'a TrustedNetworks,
    /// The office's phone networks; empty when none are defined.
    extensions: &'a [ipnet::IpNet],
    kind: SourceKind,
    /// Protection is on: decided bans are enforced (otherwise recorded as "would ban").
    enforcing: bool,
}

impl RecordContext<'_> {
    /// An office phone's address.
    fn in_extensions(&self, ip: IpAddr) -> bool {
        self.extensions.iter().any(|n| n.contains(&ip))
    }
}

/// Where judging a record leaves its results.
struct Outputs<'a> {
    applied: &'a mut Applied,
    clean: &'a mut Vec<CleanLogLine>,
    writes: &'a mut SegmentWrites,
    ahead: &'a mut Prefetched,
}

/// A ban decided by one batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewBan {
    pub ip: IpAddr,
    pub until: Option<UnixMs>,
    pub reason: String,
}

/// Writes a transaction gathers in memory and makes in a few statements at its end:
/// each statement through the database thread costs more than the work it does.
#[derive(Default)]
struct SegmentWrites {
    failures: Vec<store::failures::Pending>,
    /// Failure times per address not yet in the table, for the ladder's counts.
    times: std::collections::HashMap<String, Vec<UnixMs>>,
    deltas: store::offenders::Deltas,
    /// Decided bans, in order.
    bans: Vec<store::bans::PendingBan>,
    /// Successful logins per address: the last account, the latest time.
    successes: std::collections::HashMap<String, store::known_good::Success>,
    /// Conversations as of this transaction; kept when it commits.
    attempts: Attempts,
}

/// What the store holds about the addresses failing in a batch's records, read a
/// stretch of records ahead in a few statements instead of one per failure, and kept
/// for the rest of the batch, the batch's own writes added as each transaction
/// commits. A transaction holds the write lock, so only its own writes change those
/// facts meanwhile; between two transactions of one batch (milliseconds), another
/// source's pipeline may store a failure of the same address, which the batch then
/// does not count, as a transaction on PostgreSQL would not see it either.
#[derive(Default)]
struct Prefetched {
    /// Index of the first record not covered.
    end: usize,
    /// Records covered by the last stretch read.
    size: usize,
    /// The instants the rest of the batch asks about, set at the transaction's first
    /// read: facts read for one stretch answer for all later ones.
    span: Option<store::history::Span>,
    facts: std::collections::HashMap<String, store::history::AddressFacts>,
    /// An IPv6 address fails in the covered records.
    has_v6: bool,
    /// IPv6 bans of the prefix rule's window, read when the first IPv6 failure comes.
    v6_bans: Option<Vec<V6Ban>>,
}

impl Prefetched {
    /// After a transaction commits: its failures and lenient successes become facts,
    /// as a fresh read would find them (its bans were told as they were decided).
    fn absorb(&mut self, writes: &SegmentWrites) {
        let Some(span) = &self.span else { return };
        for (ip, times) in &writes.times {
            if let Some(facts) = self.facts.get_mut(ip) {
                times.iter().for_each(|&at| facts.failed(span, at));
            }
        }
        for (ip, success) in &writes.successes {
            if let (Some(facts), Some(at)) = (self.facts.get_mut(ip), success.lenient_at) {
                facts.succeeded(at);
            }
        }
    }
}

/// What one batch's transactions share.
#[derive(Default)]
struct BatchState {
    /// Index of the next record to store.
    next: usize,
    /// Lines and unreadable lines counted in the sources' table so far.
    counted: (u64, u64),
    applied: Applied,
    ahead: Prefetched,
    /// The rules, read by the batch's first transaction.
    rules: Option<Rules>,
}

/// Records whose addresses are read ahead at once: few at a transaction's start, as
/// a ban may end it soon, more as it goes on.
const PREFETCH_FIRST: usize = 128;
const PREFETCH_MAX: usize = 4096;

/// How long a transaction may go on storing further records after deciding a ban
/// (and it does not wait for a further read ahead).
const SEGMENT_WITH_BAN: std::time::Duration = std::time::Duration::from_millis(4);
/// The same while reading a backlog (more is waiting, or the records are older than
/// [`BACKLOG_AGE_MS`]): those bans are late already, and a commit per ban would make
/// a storm of them take minutes.
const BACKLOG_SEGMENT_WITH_BAN: std::time::Duration = std::time::Duration::from_millis(1000);
const BACKLOG_AGE_MS: UnixMs = 10_000;

/// A batch could not be stored completely.
#[derive(Debug, thiserror::Error)]
#[error("{source}")]
pub struct ApplyError {
    /// The part that was stored: the follower resumes after it.
    pub committed: Option<Cursor>,
    pub source: store::StoreError,
}

#[derive(Debug, Default)]
pub struct Applied {
    pub failures: u64,
    pub bans: Vec<NewBan>,
}

pub struct Pipeline {
    pub store: Store,
    pub ladder: Ladder,
    pub trusted: TrustedNetworks,
    pub clock: Arc<dyn Clock>,
    /// A security log of this Asterisk is among the sources: it alone counts SIP,
    /// PJSIP and AMI, so the same attempts in the messages log are not counted twice.
    pub security_source_present: bool,
    /// Protection state until an admin switches it (the `protection` setting).
    pub protection_default: bool,
    pub clean_log: Option<CleanLog>,
    /// Poked when a ban is decided, so enforcement does not wait for its next tick.
    pub bans_changed: Arc<Notify>,
    /// Told when batches cannot be stored, and when they can again.
    pub health: super::IngestHealth,
    /// Conversations seen recently: one refused request counts once.
    pub attempts: std::sync::Mutex<Attempts>,
    /// Forged security events, and the messages log's lines and manager interface's
    /// events that may name their sender; shared with the manager link's pipeline.
    /// Kept in memory only: a restart or a batch stored again may leave one unsettled.
    pub corroboration: Arc<std::sync::Mutex<Corroboration>>,
    /// When an IPv6 prefix is banned as a whole.
    pub prefix_rule: PrefixRule,
    /// The rules count only the failures this node (PBX) saw, not those of every node
    /// sharing the store.
    pub count_per_node: bool,
    /// Judges stored logins and calls for breaches and toll fraud (`None`: not watched).
    pub watch: Option<Arc<crate::watch::Watch>>,
    /// Where batches wait while a shared store is unreachable (`None`: they wait in
    /// the log, unread).
    pub spool: Option<Arc<super::spool::Spool>>,
}

/// A stored IPv6 ban as the prefix rule reads it.
fn v6_ban(text: &str, created_at: UnixMs, active: bool) -> Option<V6Ban> {
    match crate::domain::network::parse_ban_target(text)? {
        ipnet::IpNet::V6(net) => Some(V6Ban { net, created_at, active }),
        ipnet::IpNet::V4(_) => None,
    }
}

impl Pipeline {
    /// Whether an event from a source of `kind` counts at all.
    pub fn counts(&self, kind: SourceKind, event: &LogEvent) -> bool {
        !(kind == SourceKind::Messages && self.security_source_present && event.service.has_security_events())
    }

    /// Stores a batch. A transaction that decided a ban is closed within a few
    /// milliseconds (the cursor saved at its last record's end) and the enforcer poked,
    /// so a ban never waits for the rest of a large batch. On error, `ApplyError::committed` tells how far
    /// the batch was stored.
    pub async fn apply(&self, batch: &Batch) -> Result<Applied, ApplyError> {
        // One instant for the whole batch: the facts read ahead answer for it.
        let now = self.clock.now();
        let mut state = BatchState::default();
        let mut committed = None;
        loop {
            match self.apply_segment(batch, now, &mut state).await {
                Ok(cursor) => committed = Some(cursor),
                Err(source) => return Err(ApplyError { committed, source }),
            }
            if state.next >= batch.records.len() {
                return Ok(state.applied);
            }
        }
    }

    /// Stores records from `state.next` in one transaction until a ban has been
    /// decided and `SEGMENT_WITH_BAN` has passed (or to the end), with the cursor and
    /// line counts for that stretch.
    async fn apply_segment(
        &self,
        batch: &Batch,
        now: UnixMs,
        state: &mut BatchState,
    ) -> store::Result<Cursor> {
        let mut tx = self.store.begin().await?;
        let rules = match state.rules.take() {
            Some(rules) => rules,
            None => self.rules(&mut tx, now).await?,
        };
        let Rules { ladder, trusted, extensions, enforcing } = &rules;
        let enforcing = *enforcing;
        let (mut clean, mut last_at, mut tampered) = (Vec::new(), None, 0);
        let BatchState { next, counted, applied, ahead, .. } = state;
        let bans_before = applied.bans.len();
        let mut writes = SegmentWrites {
            attempts: self.attempts.lock().unwrap_or_else(|p| p.into_inner()).clone(),
            ..SegmentWrites::default()
        };
        let mut first_ban: Option<std::time::Instant> = None;
        while let Some(record) = batch.records.get(*next) {
            let at = Self::record_at(record, now);
            let backlog = batch.more || at < now - BACKLOG_AGE_MS;
            if *next >= ahead.end {
                // A live ban is committed before another round trip to the store.
                if first_ban.is_some() && !backlog {
                    break;
                }
                let size = match ahead.size {
                    0 => PREFETCH_FIRST,
                    n => (n * 2).min(PREFETCH_MAX),
                };
                self.prefetch(&mut tx, batch, (*next, size), now, ladder, ahead).await?;
                if ahead.has_v6 && ahead.v6_bans.is_none() && self.prefix_rule.after > 0 {
                    let since = now - self.prefix_rule.within_ms;
                    let rows = store::bans::recent_v6(&mut tx, since, now).await?;
                    ahead.v6_bans =
                        Some(rows.iter().filter_map(|(t, at, active)| v6_ban(t, *at, *active)).collect());
                }
            }
            *next += 1;
            last_at = Some(at);
            tampered += i64::from(record.tampered);
            let ctx = RecordContext { at, ladder, trusted, extensions, kind: batch.kind, enforcing };
            let out = Outputs { applied, clean: &mut clean, writes: &mut writes, ahead };
            self.apply_record(record, &ctx, out)?;
            // A ban waits at most a few milliseconds of further work for its commit;
            // committing after every ban would slow a flood down instead.
            if applied.bans.len() > bans_before {
                let since = *first_ban.get_or_insert_with(std::time::Instant::now);
                let limit = if backlog { BACKLOG_SEGMENT_WITH_BAN } else { SEGMENT_WITH_BAN };
                if since.elapsed() >= limit {
                    break;
                }
            }
        }
        let cursor = match batch.records.get(*next) {
            Some(_) => Cursor { offset: batch.records[*next - 1].end, ..batch.cursor.clone() },
            None => batch.cursor.clone(),
        };
        let (lines, unreadable) = batch.lines_up_to(cursor.offset);
        store::failures::insert_many(&mut tx, &batch.path, &writes.failures).await?;
        store::bans::insert_many(&mut tx, &writes.bans).await?;
        store::offenders::add_deltas(&mut tx, &writes.deltas).await?;
        store::known_good::record_successes(&mut tx, &writes.successes).await?;
        // The dashboard's running totals, once per transaction rather than per failure.
        let mut totals = store::offenders::Totals::default();
        for line in &clean {
            totals.count(line.account.as_deref(), line.at);
        }
        store::offenders::add_totals(&mut tx, &totals).await?;
        store::sources::save(
            &mut tx,
            &store::sources::Progress {
                path: &batch.path,
                kind: batch.kind.as_str(),
                inode: cursor.inode as i64,
                first_line_hash: &cursor.first_line_hash,
                read_offset: cursor.offset as i64,
                lines: (lines - counted.0) as i64,
                unreadable: (unreadable - counted.1) as i64,
                tampered,
                last_line_at: last_at,
                now,
            },
        )
        .await?;
        tx.commit().await?;
        ahead.absorb(&writes);
        *self.attempts.lock().unwrap_or_else(|p| p.into_inner()) = std::mem::take(&mut writes.attempts);
        if let Some(spool) = &self.spool {
            spool.remember(rules.clone());
        }
        state.rules = Some(rules);
        *counted = (lines, unreadable);
        if applied.bans.len() > bans_before {
            self.bans_changed.notify_one();
        }
        if let Some(log) = &self.clean_log {
            if let Err(e) = log.append(&clean) {
                tracing::warn!(error = %e, "could not append to the failed-auth log");
            }
        }
        Ok(cursor)
    }

    /// The ladder, trusted and office networks and the protection switch as the store
    /// holds them now (each can be changed from the panel while sipwarden runs).
    pub async fn rules(&self, conn: &mut Conn, now: UnixMs) -> store::Result<Rules> {
        Ok(Rules {
            enforcing: store::settings::protection(conn, self.protection_default).await?,
            ladder: store::settings::ladder(conn).await?.unwrap_or_else(|| self.ladder.clone()),
            trusted: self.trusted.with(store::networks::trusted_nets(conn).await?),
            extensions: store::networks::nets(conn, crate::domain::NetworkList::Extensions, now).await?,
        })
    }

    /// The record's time, as the transaction stores it.
    fn record_at(record: &ReadRecord, now: UnixMs) -> UnixMs {
        let dated = record.event.as_ref().and_then(|e| e.at);
        dated.or_else(|| record.suspects.as_ref().and_then(|s| s.at)).map_or(now, |at| at.min(now))
    }

    /// Reads what the ladder needs about every address failing in the next `size`
    /// records from `start` that this transaction has not read yet. Bans it decides
    /// are told to the facts as they are decided (`AddressFacts::banned`).
    async fn prefetch(
        &self,
        conn: &mut Conn,
        batch: &Batch,
        (start, size): (usize, usize),
        now: UnixMs,
        ladder: &Ladder,
        ahead: &mut Prefetched,
    ) -> store::Result<()> {
        let end = (start + size).min(batch.records.len());
        (ahead.end, ahead.size) = (end, size);
        let waiting = self.lock_corroboration().suspects_waiting();
        let judged = |record: &ReadRecord| self.judged_addresses(record, batch.kind, now, &waiting);
        if ahead.span.is_none() {
            let (mut from, mut to) = (UnixMs::MAX, UnixMs::MIN);
            for (_, at) in batch.records[start..].iter().flat_map(judged) {
                (from, to) = (from.min(at), to.max(at));
            }
            if from > to {
                return Ok(());
            }
            ahead.span = Some(store::history::Span {
                from,
                to,
                // The rungs' windows, then the one a success must be clean for.
                windows: ladder
                    .rungs
                    .iter()
                    .map(|r| r.within_ms)
                    .chain([policy::CLEAN_BEFORE_SUCCESS_MS])
                    .collect(),
                success_for: ladder.known_good_for_ms,
                repeat_within: ladder.repeat_within_ms,
                node: self.count_per_node.then(|| self.store.node().to_string()),
            });
        }
        let mut ips: Vec<String> = batch.records[start..end]
            .iter()
            .flat_map(judged)
            .map(|(ip, _)| ip.to_string())
            .filter(|ip| !ahead.facts.contains_key(ip))
            .collect();
        if ips.is_empty() {
            return Ok(());
        }
        // Index look-ups in key order share B-tree pages.
        ips.sort_unstable();
        ips.dedup();
        let Some(span) = &ahead.span else { return Ok(()) };
        ahead.has_v6 |= ips.iter().any(|ip| ip.contains(':'));
        ahead.facts.extend(store::history::facts_for(conn, &ips, span).await?);
        Ok(())
    }

    /// The addresses a record may be judged for, with its time: a counted event's; a
    /// forged event's suspects; a messages-log failure that may settle a forged event
    /// waiting (`waiting`: the suspects those name).
    fn judged_addresses(
        &self,
        record: &ReadRecord,
        kind: SourceKind,
        now: UnixMs,
        waiting: &[IpAddr],
    ) -> Vec<(IpAddr, UnixMs)> {
        let at = Self::record_at(record, now);
        match (&record.event, &record.suspects) {
            // Failures for the ladder, successes for whether they earn leniency.
            (Some(event), _) => match event.ip {
                Some(ip) if self.counts(kind, event) || waiting.contains(&ip) => vec![(ip, at)],
                _ => Vec::new(),
            },
            (None, Some(s)) => s.addresses.iter().map(|ip| (*ip, at)).collect(),
            (None, None) => Vec::new(),
        }
    }

    /// Whether a failure that a log counts anyway (the manager interface's event of an
    /// attempt) settles a forged security event: then it counts, once, here.
    pub fn settles_forged(&self, event: &LogEvent) -> bool {
        let at = event.at.map_or_else(|| self.clock.now(), |t| t.min(self.clock.now()));
        self.lock_corroboration().witness(at, event)
    }

    fn lock_corroboration(&self) -> std::sync::MutexGuard<'_, Corroboration> {
        self.corroboration.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn apply_record(
        &self,
        record: &ReadRecord,
        ctx: &RecordContext<'_>,
        out: Outputs<'_>,
    ) -> store::Result<()> {
        let (at, kind) = (ctx.at, ctx.kind);
        let Some(event) = &record.event else {
            out.writes.failures.push(store::failures::Pending {
                at,
                ip: None,
                service: "OTHER",
                account: None,
                kind: "tampered",
                raw: record.raw.clone(),
                tampered: true,
                verdict: "unattributed".into(),
            });
            // The messages log's line of the same attempt may name the sender: then
            // the attempt counts once, against it.
            let witnessed = record.suspects.as_ref().and_then(|s| self.lock_corroboration().forged(s));
            return match witnessed {
                Some(event) => {
                    let event = LogEvent { tampered: true, ..event };
                    self.apply_event(&event, &record.raw, ctx, out)
                }
                None => Ok(()),
            };
        };
        if !self.counts(kind, event) {
            // The security log counts this attempt; the line may still settle a forged event.
            if !self.lock_corroboration().witness(at, event) {
                return Ok(());
            }
        }
        self.apply_event(event, &record.raw, ctx, out)
    }

    /// Judges and records one event of a record whose text is `raw`.
    fn apply_event(
        &self,
        event: &LogEvent,
        raw: &str,
        ctx: &RecordContext<'_>,
        out: Outputs<'_>,
    ) -> store::Result<()> {
        let Outputs { applied, clean, writes, ahead } = out;
        let at = ctx.at;
        let Some(ip) = event.ip else { return Ok(()) };
        let ip_text = ip.to_string();
        let kind_name = match event.outcome {
            Outcome::Success => {
                if !event.tampered {
                    let lenient = self.earns_leniency(ctx, ip, &ip_text, writes, ahead);
                    let entry = writes.successes.entry(ip_text).or_default();
                    entry.account = event.account.clone();
                    entry.at = entry.at.max(at);
                    if lenient {
                        entry.lenient_at = entry.lenient_at.max(Some(at));
                    }
                }
                return Ok(());
            }
            Outcome::Failure(k) => k.as_str(),
        };
        if !writes.attempts.is_new(ip, event.session, event.is_preliminary(), at) {
            return Ok(());
        }
        // An office phone set up wrong (transport, extension name) is no attacker.
        if ctx.in_extensions(ip)
            && matches!(event.outcome, Outcome::Failure(FailureKind::Rejected | FailureKind::UnknownAccount))
        {
            return Ok(());
        }
        let history = self.history(ctx, ip, &ip_text, writes, ahead)?;
        let verdict = decide(ctx.ladder, &history, at);
        if let Verdict::Ban { rung, until, reason } = &verdict {
            let superseding = history.active_until.is_some();
            if superseding {
                for earlier in writes.bans.iter_mut().filter(|b| b.ip == ip_text && b.released_at.is_none()) {
                    if earlier.until_at.is_none_or(|t| t > at) {
                        earlier.released_at = Some(at);
                    }
                }
            }
            let ban = store::bans::PendingBan {
                ip: ip_text.clone(),
                reason: reason.clone(),
                rung: *rung as i64,
                created_at: at,
                until_at: *until,
                superseding,
                released_at: None,
            };
            if let Some(facts) = ahead.facts.get_mut(&ip_text) {
                facts.banned(at, *until, superseding);
            }
            writes.bans.push(ban);
            applied.bans.push(NewBan { ip, until: *until, reason: reason.clone() });
            if let IpAddr::V6(v6) = ip {
                self.escalate_prefix(ctx, v6, (*rung, *until), writes, &mut ahead.v6_bans);
            }
        }
        let label = match &verdict {
            Verdict::Ban { .. } if !ctx.enforcing => {
                format!("would {}", verdict.label())
            }
            _ => verdict.label(),
        };
        writes.deltas.count(&ip_text, event.service.as_str(), event.account.as_deref(), at);
        writes.times.entry(ip_text.clone()).or_default().push(at);
        writes.failures.push(store::failures::Pending {
            at,
            ip: Some(ip_text),
            service: event.service.as_str(),
            account: event.account.clone(),
            kind: kind_name,
            raw: raw.to_owned(),
            tampered: event.tampered,
            verdict: label.clone(),
        });
        applied.failures += 1;
        clean.push(CleanLogLine {
            at,
            ip,
            service: event.service,
            account: event.account.clone(),
            kind: kind_name,
            verdict: label,
        });
        Ok(())
    }

    /// After a ban of `address`: bans its prefix too when the prefix rule asks for it.
    fn escalate_prefix(
        &self,
        ctx: &RecordContext<'_>,
        address: std::net::Ipv6Addr,
        (rung, until): (usize, Option<UnixMs>),
        writes: &mut SegmentWrites,
        v6_bans: &mut Option<Vec<V6Ban>>,
    ) {
        let Some(bans) = v6_bans.as_mut() else { return };
        let at = ctx.at;
        bans.push(V6Ban { net: ipnet::Ipv6Net::from(address), created_at: at, active: true });
        let spared: Vec<ipnet::IpNet> =
            ctx.trusted.networks().iter().chain(ctx.extensions).copied().collect();
        let Some((prefix, members)) = prefix_to_ban(&self.prefix_rule, bans, address, at, &spared) else {
            return;
        };
        bans.push(V6Ban { net: prefix, created_at: at, active: true });
        let shown: Vec<String> = members.iter().take(5).map(ToString::to_string).collect();
        let more = if members.len() > shown.len() { ", …" } else { "" };
        let reason = format!(
            "{} addresses of {prefix} banned within {}: {}{more}",
            members.len(),
            policy::human_duration(self.prefix_rule.within_ms),
            shown.join(", ")
        );
        tracing::info!(prefix = %prefix, members = members.len(), "prefix ban decided");
        writes.bans.push(store::bans::PendingBan {
            ip: prefix.to_string(),
            reason,
            rung: rung as i64,
            created_at: at,
            until_at: until,
            superseding: false,
            released_at: None,
        });
    }

    /// Whether a success at `ctx.at` makes `ip` known-good ([`policy::earns_leniency`]).
    fn earns_leniency(
        &self,
        ctx: &RecordContext<'_>,
        ip: IpAddr,
        ip_text: &str,
        writes: &SegmentWrites,
        ahead: &Prefetched,
    ) -> bool {
        let clean_since = ctx.at - policy::CLEAN_BEFORE_SUCCESS_MS;
        let stored = match (&ahead.span, ahead.facts.get(ip_text)) {
            (Some(span), Some(facts)) => facts.at(span, ctx.at).failures_since.last().copied().unwrap_or(0),
            _ => 0,
        };
        let pending = writes.times.get(ip_text).map_or(0, |p| p.iter().filter(|&&t| t > clean_since).count());
        let inside = (!ctx.extensions.is_empty()).then(|| ctx.in_extensions(ip));
        policy::earns_leniency(stored + pending as u32, inside)
    }

    /// History as of `at`, counting the failure being judged.
    fn history(
        &self,
        ctx: &RecordContext<'_>,
        ip: IpAddr,
        ip_text: &str,
        writes: &SegmentWrites,
        ahead: &Prefetched,
    ) -> store::Result<History> {
        let at = ctx.at;
        let windows: Vec<UnixMs> = ctx.ladder.rungs.iter().map(|r| at - r.within_ms).collect();
        let (Some(span), Some(facts)) = (&ahead.span, ahead.facts.get(ip_text)) else {
            // `prefetch` reads every address failing in the records it covers.
            return Err(store::StoreError::Corrupt(format!("the history of {ip_text} was not read ahead")));
        };
        let h = facts.at(span, at);
        // Counting the failures of this transaction not yet written, and the one being judged.
        let pending = writes.times.get(ip_text);
        let failures_in_window = h
            .failures_since
            .iter()
            .zip(&windows)
            .map(|(n, since)| {
                let since = (*since).max(h.forgiven_at);
                n + pending.map_or(0, |p| p.iter().filter(|&&t| t > since).count() as u32) + 1
            })
            .collect();
        let success_pending = writes
            .successes
            .get(ip_text)
            .and_then(|s| s.lenient_at)
            .is_some_and(|t| t > at - ctx.ladder.known_good_for_ms);
        // Inside the extension networks the lenient rung applies without a login first.
        let (known_good, recent_timed_bans, active_until) = (
            h.succeeded_since || success_pending || ctx.in_extensions(ip),
            h.timed_bans_since,
            h.active_until,
        );
        Ok(History {
            failures_in_window,
            trusted: ctx.trusted.contains(ip),
            known_good,
            recent_timed_bans,
            active_until,
        })
    }
}
