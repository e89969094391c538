//! What the manager link delivers, stored like a log's batch: its authentication
//! outcomes (when no security log counts them already) through the pipeline, its
//! logins and calls to the breach and toll-fraud watch.

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::pipeline::Pipeline;
use super::{Batch, Cursor};
use crate::ami::{AmiHealth, AmiState, Delivered};
use crate::asterisk::{ReadRecord, SourceKind};
use crate::store;

/// Items stored together at most.
const BATCH: usize = 4096;
/// The health row `sipwarden status` reads.
pub const HEALTH_COMPONENT: &str = "manager";

/// Stores deliveries until `stop`; `source` names the link (`manager 127.0.0.1:5038`).
pub async fn feed(
    mut rx: mpsc::Receiver<Delivered>,
    pipeline: &Pipeline,
    source: String,
    health: AmiHealth,
    stop: CancellationToken,
) {
    let mut stored = 0u64;
    let mut shown: Option<AmiState> = None;
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(2));
    loop {
        let first = tokio::select! {
            item = rx.recv() => match item {
                Some(item) => item,
                None => return,
            },
            _ = tick.tick() => {
                show_health(pipeline, &health, &mut shown).await;
                continue;
            }
            _ = stop.cancelled() => return,
        };
        let mut items = vec![first];
        while items.len() < BATCH {
            match rx.try_recv() {
                Ok(item) => items.push(item),
                Err(_) => break,
            }
        }
        step(pipeline, &source, &mut stored, items).await;
    }
}

/// One batch of deliveries. Public for tests.
pub async fn step(pipeline: &Pipeline, source: &str, stored: &mut u64, items: Vec<Delivered>) {
    let mut records = Vec::new();
    let mut calls = Vec::new();
    let mut contacts = Vec::new();
    for item in items {
        match item {
            Delivered::Auth(event, raw) => {
                *stored += 1;
                records.push(ReadRecord {
                    event: Some(event),
                    suspects: None,
                    tampered: false,
                    raw,
                    end: *stored,
                });
            }
            Delivered::Call(call) => calls.push(call),
            Delivered::Contact(contact) => contacts.push(contact),
        }
    }
    let mut batch = batch_of(source, *stored, records, calls);
    batch.contacts = contacts;
    // A log, when followed, counts these events itself; one may still settle a record
    // of the security log whose text forged an address (here every field is a line of
    // its own, so the address is never in doubt).
    let settling;
    let counted = match pipeline.security_source_present {
        false => Some(&batch),
        true => {
            let settle = |r: &&ReadRecord| r.event.as_ref().is_some_and(|e| pipeline.settles_forged(e));
            let records: Vec<ReadRecord> = batch.records.iter().filter(settle).cloned().collect();
            settling = batch_of(source, *stored, records, Vec::new());
            Some(&settling)
        }
    };
    if let Some(counted) = counted.filter(|b| !b.records.is_empty()) {
        if let Err(e) = pipeline.apply(counted).await {
            tracing::error!(error = %e, "could not store the manager interface's events");
            pipeline.health.failed(pipeline.clock.now(), e.to_string());
        }
    }
    super::store_contacts(pipeline, &batch).await;
    super::watch_batch(pipeline, &batch, true).await;
}

/// Deliveries as a batch; `stored`, the count of authentication events so far, is its
/// cursor.
pub(super) fn batch_of(
    source: &str,
    stored: u64,
    records: Vec<ReadRecord>,
    calls: Vec<crate::domain::DatedCall>,
) -> Batch {
    Batch {
        path: source.to_owned(),
        kind: SourceKind::Security,
        lines: records.len() as u64,
        unreadable_lines: 0,
        more: false,
        cursor: Cursor { inode: 0, first_line_hash: String::new(), offset: stored },
        line_ends: records.iter().map(|r| r.end).collect(),
        unreadable_ends: Vec::new(),
        records,
        calls,
        contacts: Vec::new(),
    }
}

async fn show_health(pipeline: &Pipeline, health: &AmiHealth, shown: &mut Option<AmiState>) {
    let state = health.state();
    if shown.as_ref().is_some_and(|s| s.connected == state.connected && s.problem == state.problem) {
        return;
    }
    let detail = match (&state.connected, &state.problem) {
        (true, _) => "connected".to_string(),
        (false, Some(p)) => p.clone(),
        (false, None) => "connecting".to_string(),
    };
    let Ok(mut conn) = pipeline.store.acquire().await else { return };
    if store::health::set(&mut conn, HEALTH_COMPONENT, state.connected, &detail, pipeline.clock.now())
        .await
        .is_ok()
    {
        *shown = Some(state);
    }
}
