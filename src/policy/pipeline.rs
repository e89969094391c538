//! One step of the live pipeline: store what a batch of log records says, decide
//! bans, and save the follower's cursor, all in one transaction.

use std::net::IpAddr;
use std::sync::Arc;

use tokio::sync::Notify;

use super::{History, Ladder, Verdict, decide};
use crate::asterisk::{ReadRecord, SourceKind};
use crate::clock::Clock;
use crate::domain::{LogEvent, Outcome, TrustedNetworks, UnixMs};
use crate::ingest::cleanlog::{CleanLog, CleanLogLine};
use crate::ingest::{Batch, Cursor};
use crate::store::{self, Conn, Store};

struct RecordContext<'a> {
    at: UnixMs,
    ladder: &'a Ladder,
    trusted: &'a TrustedNetworks,
    kind: SourceKind,
    /// Protection is on: decided bans are enforced (otherwise recorded as "would ban").
    enforcing: bool,
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
}

/// How long a transaction that decided a ban may go on storing further records.
const SEGMENT_WITH_BAN: std::time::Duration = std::time::Duration::from_millis(4);

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
        let mut applied = Applied::default();
        let mut committed = None;
        let mut next = 0;
        let mut counted = (0, 0);
        loop {
            match self.apply_segment(batch, &mut next, &mut counted, &mut applied).await {
                Ok(cursor) => committed = Some(cursor),
                Err(source) => return Err(ApplyError { committed, source }),
            }
            if next >= batch.records.len() {
                return Ok(applied);
            }
        }
    }

    /// Stores records from `*next` until a ban has been decided and `SEGMENT_WITH_BAN`
    /// has passed (or to the end), with the cursor and line counts for that stretch.
    async fn apply_segment(
        &self,
        batch: &Batch,
        next: &mut usize,
        counted: &mut (u64, u64),
        applied: &mut Applied,
    ) -> store::Result<Cursor> {
        let now = self.clock.now();
        let mut tx = self.store.begin().await?;
        let enforcing = store::settings::protection(&mut tx, self.protection_default).await?;
        // Both can be changed from the panel while sipwarden runs.
        let ladder = store::settings::ladder(&mut tx).await?.unwrap_or_else(|| self.ladder.clone());
        let trusted = self.trusted.with(store::networks::trusted_nets(&mut tx).await?);
        let (mut clean, mut last_at, mut tampered) = (Vec::new(), None, 0);
        let bans_before = applied.bans.len();
        let mut writes = SegmentWrites::default();
        let started = std::time::Instant::now();
        while let Some(record) = batch.records.get(*next) {
            *next += 1;
            let at = record.event.as_ref().and_then(|e| e.at).map_or(now, |at| at.min(now));
            last_at = Some(at);
            tampered += i64::from(record.tampered);
            let ctx = RecordContext { at, ladder: &ladder, trusted: &trusted, kind: batch.kind, enforcing };
            self.apply_record(&mut tx, record, &ctx, applied, &mut clean, &mut writes).await?;
            // A ban waits at most a few milliseconds of further work for its commit;
            // committing after every ban would slow a flood down instead.
            if applied.bans.len() > bans_before && started.elapsed() >= SEGMENT_WITH_BAN {
                break;
            }
        }
        let cursor = match batch.records.get(*next) {
            Some(_) => Cursor { offset: batch.records[*next - 1].end, ..batch.cursor.clone() },
            None => batch.cursor.clone(),
        };
        let (lines, unreadable) = batch.lines_up_to(cursor.offset);
        store::failures::insert_many(&mut tx, &batch.path, &writes.failures).await?;
        store::offenders::add_deltas(&mut tx, &writes.deltas).await?;
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

    async fn apply_record(
        &self,
        conn: &mut Conn,
        record: &ReadRecord,
        ctx: &RecordContext<'_>,
        applied: &mut Applied,
        clean: &mut Vec<CleanLogLine>,
        writes: &mut SegmentWrites,
    ) -> store::Result<()> {
        let (at, kind) = (ctx.at, ctx.kind);
        let Some(event) = &record.event else {
            writes.failures.push(store::failures::Pending {
                at,
                ip: None,
                service: "OTHER",
                account: None,
                kind: "tampered",
                raw: record.raw.clone(),
                tampered: true,
                verdict: "unattributed".into(),
            });
            return Ok(());
        };
        if !self.counts(kind, event) {
            return Ok(());
        }
        let Some(ip) = event.ip else { return Ok(()) };
        let ip_text = ip.to_string();
        let kind_name = match event.outcome {
            Outcome::Success => {
                if !event.tampered {
                    store::known_good::record_success(conn, &ip_text, event.account.as_deref(), at).await?;
                }
                return Ok(());
            }
            Outcome::Failure(k) => k.as_str(),
        };
        let history = self.history(conn, ctx, ip, &ip_text, writes.times.get(&ip_text)).await?;
        let verdict = decide(ctx.ladder, &history, at);
        if let Verdict::Ban { rung, until, reason } = &verdict {
            let id = store::bans::insert(
                conn,
                &store::bans::NewBan {
                    ip: &ip_text,
                    reason,
                    rung: *rung as i64,
                    created_at: at,
                    until_at: *until,
                },
            )
            .await?;
            if history.active_until.is_some() {
                store::bans::supersede(conn, &ip_text, id, at).await?;
            }
            applied.bans.push(NewBan { ip, until: *until, reason: reason.clone() });
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
            raw: record.raw.clone(),
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

    /// History as of `at`, counting the failure being judged.
    async fn history(
        &self,
        conn: &mut Conn,
        ctx: &RecordContext<'_>,
        ip: IpAddr,
        ip_text: &str,
        pending: Option<&Vec<UnixMs>>,
    ) -> store::Result<History> {
        let at = ctx.at;
        let windows: Vec<UnixMs> = ctx.ladder.rungs.iter().map(|r| at - r.within_ms).collect();
        let h = store::history::for_address(
            conn,
            ip_text,
            &windows,
            at - ctx.ladder.known_good_for_ms,
            at - ctx.ladder.repeat_within_ms,
            at,
        )
        .await?;
        // Counting the failures of this transaction not yet written, and the one being judged.
        let failures_in_window = h
            .failures_since
            .iter()
            .zip(&windows)
            .map(|(n, since)| n + pending.map_or(0, |p| p.iter().filter(|&&t| t > *since).count() as u32) + 1)
            .collect();
        let (known_good, recent_timed_bans, active_until) =
            (h.succeeded_since, h.timed_bans_since, h.active_until);
        Ok(History {
            failures_in_window,
            trusted: ctx.trusted.contains(ip),
            known_good,
            recent_timed_bans,
            active_until,
        })
    }
}
