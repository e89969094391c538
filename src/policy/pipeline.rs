//! One step of the live pipeline: store what a batch of log records says, decide
//! bans, and save the follower's cursor, all in one transaction.

use std::net::IpAddr;
use std::sync::Arc;

use tokio::sync::Notify;

use super::{History, Ladder, Verdict, decide};
use crate::asterisk::{ReadRecord, SourceKind};
use crate::clock::Clock;
use crate::domain::{LogEvent, Outcome, TrustedNetworks, UnixMs};
use crate::ingest::Batch;
use crate::ingest::cleanlog::{CleanLog, CleanLogLine};
use crate::store::{self, Conn, Store};

struct RecordContext<'a> {
    at: UnixMs,
    source: &'a str,
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

    pub async fn apply(&self, batch: &Batch) -> store::Result<Applied> {
        let now = self.clock.now();
        let mut tx = self.store.begin().await?;
        let mut applied = Applied::default();
        let mut clean = Vec::new();
        let mut last_at = None;
        let enforcing = store::settings::protection(&mut tx, self.protection_default).await?;
        for record in &batch.records {
            let at = record.event.as_ref().and_then(|e| e.at).map_or(now, |at| at.min(now));
            last_at = Some(at);
            let ctx = RecordContext { at, source: &batch.path, kind: batch.kind, enforcing };
            self.apply_record(&mut tx, record, &ctx, &mut applied, &mut clean).await?;
        }
        store::sources::save(
            &mut tx,
            &store::sources::Progress {
                path: &batch.path,
                kind: batch.kind.as_str(),
                inode: batch.cursor.inode as i64,
                first_line_hash: &batch.cursor.first_line_hash,
                read_offset: batch.cursor.offset as i64,
                lines: batch.lines as i64,
                unreadable: batch.unreadable_lines as i64,
                tampered: batch.tampered_records as i64,
                last_line_at: last_at,
                now,
            },
        )
        .await?;
        tx.commit().await?;
        if let Some(log) = &self.clean_log {
            if let Err(e) = log.append(&clean) {
                tracing::warn!(error = %e, "could not append to the failed-auth log");
            }
        }
        if !applied.bans.is_empty() {
            self.bans_changed.notify_one();
        }
        Ok(applied)
    }

    async fn apply_record(
        &self,
        conn: &mut Conn,
        record: &ReadRecord,
        ctx: &RecordContext<'_>,
        applied: &mut Applied,
        clean: &mut Vec<CleanLogLine>,
    ) -> store::Result<()> {
        let (at, source, kind) = (ctx.at, ctx.source, ctx.kind);
        let Some(event) = &record.event else {
            store::failures::insert(
                conn,
                &store::failures::NewFailure {
                    at,
                    ip: None,
                    service: "OTHER",
                    account: None,
                    kind: "tampered",
                    source,
                    raw: &record.raw,
                    tampered: true,
                    verdict: "unattributed",
                },
            )
            .await?;
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
        let history = self.history(conn, ip, &ip_text, at).await?;
        let verdict = decide(&self.ladder, &history, at);
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
            store::bans::supersede(conn, &ip_text, id, at).await?;
            applied.bans.push(NewBan { ip, until: *until, reason: reason.clone() });
        }
        let label = match &verdict {
            Verdict::Ban { .. } if !ctx.enforcing => {
                format!("would {} (monitor mode)", verdict.label())
            }
            _ => verdict.label(),
        };
        store::failures::insert(
            conn,
            &store::failures::NewFailure {
                at,
                ip: Some(ip_text),
                service: event.service.as_str(),
                account: event.account.as_deref(),
                kind: kind_name,
                source,
                raw: &record.raw,
                tampered: event.tampered,
                verdict: &label,
            },
        )
        .await?;
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
        ip: IpAddr,
        ip_text: &str,
        at: UnixMs,
    ) -> store::Result<History> {
        let mut failures_in_window = Vec::with_capacity(self.ladder.rungs.len());
        for rung in &self.ladder.rungs {
            failures_in_window
                .push(store::failures::count_since(conn, ip_text, at - rung.within_ms).await? + 1);
        }
        let known_good =
            store::known_good::succeeded_since(conn, ip_text, at - self.ladder.known_good_for_ms).await?;
        let recent_timed_bans =
            store::bans::timed_since(conn, ip_text, at - self.ladder.repeat_within_ms).await?;
        let active_until = store::bans::active_for(conn, ip_text, at).await?.map(|b| b.until_at);
        Ok(History {
            failures_in_window,
            trusted: self.trusted.contains(ip),
            known_good,
            recent_timed_bans,
            active_until,
        })
    }
}
