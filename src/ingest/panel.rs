//! Failed logins to sipwarden's own panel, counted like those of any Asterisk service:
//! a guesser of the panel's password is banned by the same rules (the admins' own
//! addresses and trusted networks never are).

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::pipeline::Pipeline;
use crate::asterisk::ReadRecord;
use crate::domain::{FailureKind, LogEvent, Outcome, Service, UnixMs};

/// The source the failures are stored under.
pub const SOURCE: &str = "panel logins";
/// Failures the panel may queue before one is dropped (the login limits come first).
pub const QUEUE: usize = 1024;

/// The failure a refused panel login from `ip` for `username` is.
pub fn failure(at: UnixMs, ip: std::net::IpAddr, username: &str) -> LogEvent {
    LogEvent {
        at: Some(at),
        ip: Some(ip),
        service: Service::Panel,
        account: (!username.is_empty()).then(|| username.chars().take(80).collect()),
        outcome: Outcome::Failure(FailureKind::WrongPassword),
        tampered: false,
        security_event: false,
        session: None,
    }
}

/// Stores the panel's failures until `stop`.
pub async fn feed(mut rx: mpsc::Receiver<LogEvent>, pipeline: Pipeline, stop: CancellationToken) {
    let mut stored = 0u64;
    loop {
        let first = tokio::select! {
            event = rx.recv() => match event {
                Some(event) => event,
                None => return,
            },
            _ = stop.cancelled() => return,
        };
        let mut events = vec![first];
        while let Ok(event) = rx.try_recv() {
            events.push(event);
        }
        step(&pipeline, &mut stored, events).await;
    }
}

/// Stores one batch of failures with their decisions. Public for tests.
pub async fn step(pipeline: &Pipeline, stored: &mut u64, events: Vec<LogEvent>) {
    let records = events
        .into_iter()
        .map(|event| {
            *stored += 1;
            let raw = format!(
                "panel login refused from {} for {:?}",
                event.ip.map_or(String::new(), |ip| ip.to_string()),
                event.account.as_deref().unwrap_or("")
            );
            ReadRecord { event: Some(event), suspects: None, tampered: false, raw, end: *stored }
        })
        .collect();
    let batch = super::manager::batch_of(SOURCE, *stored, records, Vec::new());
    if let Err(e) = pipeline.apply(&batch).await {
        tracing::error!(error = %e, "could not store the panel's failed logins");
        pipeline.health.failed(pipeline.clock.now(), e.to_string());
    }
}
