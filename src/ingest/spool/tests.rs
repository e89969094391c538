use std::os::unix::fs::PermissionsExt;

use super::*;
use crate::asterisk::{ReadRecord, SourceKind};
use crate::domain::Service;

const T0: UnixMs = 1_700_000_000_000;

fn failure(ip: &str, at: UnixMs, end: u64) -> ReadRecord {
    ReadRecord {
        event: Some(LogEvent {
            at: Some(at),
            ip: Some(ip.parse().unwrap()),
            service: Service::Pjsip,
            account: Some("1001".into()),
            outcome: Outcome::Failure(FailureKind::WrongPassword),
            tampered: false,
            security_event: false,
            session: None,
        }),
        suspects: None,
        tampered: false,
        raw: format!("failed for '{ip}:5060'"),
        end,
    }
}

/// A batch of `/var/log/asterisk/messages` ending at `end`, one line per record.
fn batch(records: Vec<ReadRecord>, end: u64) -> Batch {
    Batch {
        path: "/var/log/asterisk/messages".into(),
        kind: SourceKind::Messages,
        line_ends: records.iter().map(|r| r.end).collect(),
        records,
        cursor: Cursor { inode: 7, first_line_hash: "h".into(), offset: end },
        lines: 0,
        unreadable_lines: 0,
        more: false,
        unreadable_ends: Vec::new(),
        calls: Vec::new(),
        contacts: Vec::new(),
    }
}

fn rules(trusted: &[&str]) -> Rules {
    Rules {
        ladder: Ladder::default(),
        trusted: TrustedNetworks::new(trusted.iter().map(|n| n.parse().unwrap())),
        extensions: Vec::new(),
        enforcing: true,
    }
}

fn hold(spool: &Spool, b: &Batch) -> Vec<LocalBan> {
    spool.hold(b, |_| true, &Attempts::default(), T0 + 60_000).unwrap()
}

#[test]
fn an_outage_bans_by_the_ladder_from_this_nodes_records_and_spares_trusted_addresses() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(&dir.path().join("spool.jsonl")).unwrap();
    spool.remember(rules(&["192.0.2.0/24"]));
    assert!(hold(&spool, &batch(vec![failure("203.0.113.5", T0, 100)], 100)).is_empty());
    let bans =
        hold(&spool, &batch(vec![failure("192.0.2.9", T0 + 1, 200), failure("192.0.2.9", T0 + 2, 300)], 300));
    assert!(bans.is_empty(), "a trusted address is never banned: {bans:?}");
    let bans = hold(&spool, &batch(vec![failure("203.0.113.5", T0 + 1000, 400)], 400));
    assert_eq!(bans, [LocalBan { ip: "203.0.113.5".parse().unwrap(), until: Some(T0 + 1000 + 3_600_000) }]);
    assert_eq!(spool.take_unsent(), bans);
    assert!(spool.take_unsent().is_empty(), "handed to the kernel once");
    assert_eq!(spool.bans_in_force(T0 + 2000), bans);
    assert_eq!(spool.counts(), (4, 1));
    let mode = std::fs::metadata(spool.path()).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the spool holds attacker text and addresses: its owner's only");
}

#[test]
fn without_rules_read_from_the_store_nothing_is_banned_locally() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(&dir.path().join("spool.jsonl")).unwrap();
    let bans =
        hold(&spool, &batch(vec![failure("203.0.113.5", T0, 100), failure("203.0.113.5", T0 + 1, 200)], 200));
    assert!(bans.is_empty(), "the trusted networks are unknown: {bans:?}");
    assert!(spool.holding(), "the records are kept all the same");
}

#[test]
fn a_restart_takes_up_the_kept_batches_not_yet_stored_and_their_bans() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spool.jsonl");
    let spool = Spool::open(&path).unwrap();
    spool.remember(rules(&[]));
    hold(&spool, &batch(vec![failure("203.0.113.5", T0, 100)], 100));
    hold(&spool, &batch(vec![failure("203.0.113.5", T0 + 1, 200)], 200));
    hold(&spool, &batch(vec![failure("203.0.113.6", T0 + 2, 300)], 300));
    let (first, _) = spool.oldest().unwrap();
    spool.stored(first).unwrap();
    // A crash cut the last line short.
    std::fs::OpenOptions::new().append(true).open(&path).unwrap().write_all(b"{\"held\": 9, \"ba").unwrap();
    drop(spool);

    let again = Spool::open(&path).unwrap();
    assert_eq!(again.counts(), (2, 1), "the stored batch is gone, the cut line skipped");
    assert_eq!(again.oldest().unwrap().1.cursor.offset, 200);
    assert_eq!(again.last_cursor("/var/log/asterisk/messages").unwrap().offset, 300);
    assert_eq!(again.last_cursor("/var/log/asterisk/security"), None);
    assert_eq!(again.take_unsent().len(), 1, "the kernel is given the local bans again");
    while let Some((n, _)) = again.oldest() {
        again.stored(n).unwrap();
    }
    assert!(!path.exists(), "all stored: the file goes");
    assert!(again.bans_in_force(T0).is_empty(), "the store's decisions stand alone");
}

#[test]
fn a_full_spool_keeps_nothing_more_and_the_log_waits() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(&dir.path().join("spool.jsonl")).unwrap().with_limit(2);
    spool.remember(rules(&[]));
    hold(&spool, &batch(vec![failure("203.0.113.5", T0, 100)], 100));
    let refused = spool.hold(
        &batch(vec![failure("203.0.113.6", T0, 200), failure("203.0.113.6", T0, 300)], 300),
        |_| true,
        &Attempts::default(),
        T0,
    );
    assert!(matches!(refused, Err(HoldError::Full)), "{refused:?}");
    assert_eq!(spool.counts(), (1, 0));
    assert_eq!(spool.last_cursor("/var/log/asterisk/messages").unwrap().offset, 100);
}

#[test]
fn the_part_of_a_batch_past_a_stored_cursor_keeps_its_records_and_lines() {
    let b = batch(vec![failure("203.0.113.5", T0, 100), failure("203.0.113.6", T0, 250)], 250);
    let rest = b.after(100);
    assert_eq!(rest.records.len(), 1);
    assert_eq!(rest.records[0].end, 250);
    assert_eq!(rest.lines_up_to(250), (1, 0));
    assert_eq!(rest.cursor, b.cursor);
}
