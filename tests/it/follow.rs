//! Followers on real files being appended, rotated and truncated, across restarts.

use sipwarden::asterisk::SourceKind;
use sipwarden::domain::TrustedNetworks;
use sipwarden::ingest::StartAt;

use crate::common::{TestApp, append, noise, sip_failure};

const A: &str = "203.0.113.1";
const B: &str = "203.0.113.2";

async fn app_following(name: &str, start_at: StartAt) -> (TestApp, std::path::PathBuf) {
    let mut app = TestApp::new(TrustedNetworks::default(), false).await;
    let path = app.path(name);
    append(&path, "");
    app.follow(&path, Some(SourceKind::Messages), start_at).await;
    (app, path)
}

#[tokio::test]
async fn partial_last_line_waits_for_its_newline() {
    let (mut app, log) = app_following("messages", StartAt::Beginning).await;
    let line = sip_failure(A, "100", 1);
    let (head, tail) = line.split_at(60);
    append(&log, &noise(3));
    append(&log, head);
    app.poll().await;
    assert_eq!(app.count_for(A).await, 0);
    append(&log, tail);
    app.poll().await;
    assert_eq!(app.count_for(A).await, 1);
}

#[tokio::test]
async fn restart_neither_loses_nor_repeats_lines() {
    let (mut app, log) = app_following("messages", StartAt::Beginning).await;
    append(&log, &(sip_failure(A, "1", 1) + &noise(5) + &sip_failure(A, "2", 2)));
    app.poll().await;
    assert_eq!(app.count_for(A).await, 2);
    let mut app = app.restart().await;
    app.poll().await;
    assert_eq!(app.count_for(A).await, 2, "nothing repeated after a restart");
    append(&log, &sip_failure(A, "3", 3));
    let mut app = app.restart().await;
    app.poll().await;
    assert_eq!(app.count_for(A).await, 3, "a line written while stopped is read once");
}

#[tokio::test]
async fn rename_rotation_reads_the_old_tail_then_the_new_file() {
    let (mut app, log) = app_following("full", StartAt::Beginning).await;
    append(&log, &sip_failure(A, "1", 1));
    app.poll().await;
    // Written after the last poll, then rotated away before the next one.
    append(&log, &sip_failure(A, "2", 2));
    std::fs::rename(&log, app.path("full.1")).unwrap();
    append(&log, &(sip_failure(B, "1", 3) + &sip_failure(B, "2", 4)));
    app.poll().await;
    assert_eq!(app.count_for(A).await, 2);
    assert_eq!(app.count_for(B).await, 2);
}

#[tokio::test]
async fn rotation_while_stopped_is_caught_up_after_restart() {
    let (mut app, log) = app_following("full", StartAt::Beginning).await;
    append(&log, &sip_failure(A, "1", 1));
    app.poll().await;
    append(&log, &sip_failure(A, "2", 2));
    std::fs::rename(&log, app.path("full-20261124")).unwrap();
    append(&log, &sip_failure(B, "1", 3));
    let mut app = app.restart().await;
    app.poll().await;
    assert_eq!((app.count_for(A).await, app.count_for(B).await), (2, 1));
}

#[tokio::test]
async fn copytruncate_starts_again_from_the_top() {
    let (mut app, log) = app_following("messages", StartAt::Beginning).await;
    append(&log, &(noise(20) + &sip_failure(A, "1", 1)));
    app.poll().await;
    std::fs::copy(&log, app.path("messages.1")).unwrap();
    std::fs::OpenOptions::new().write(true).truncate(true).open(&log).unwrap();
    append(&log, &sip_failure(B, "1", 2));
    app.poll().await;
    assert_eq!((app.count_for(A).await, app.count_for(B).await), (1, 1));
}

#[tokio::test]
async fn file_replaced_in_place_with_a_longer_one_is_read_from_the_top() {
    let (mut app, log) = app_following("messages", StartAt::Beginning).await;
    append(&log, &sip_failure(A, "1", 1));
    app.poll().await;
    // Truncated and refilled past the old offset before the next poll: only the
    // first line's hash tells.
    std::fs::write(&log, noise(10) + &sip_failure(B, "1", 2)).unwrap();
    app.poll().await;
    assert_eq!((app.count_for(A).await, app.count_for(B).await), (1, 1));
}

#[tokio::test]
async fn start_at_end_skips_history_but_reads_what_follows() {
    let mut app = TestApp::new(TrustedNetworks::default(), false).await;
    let log = app.path("messages");
    append(&log, &(sip_failure(A, "old", 1) + &sip_failure(A, "old", 2)));
    app.follow(&log, None, StartAt::End).await;
    app.poll().await;
    assert_eq!(app.count_for(A).await, 0);
    append(&log, &sip_failure(B, "new", 3));
    app.poll().await;
    assert_eq!(app.count_for(B).await, 1);
}

#[tokio::test]
async fn unreadable_lines_are_counted_and_skipped_neighbours_kept() {
    let (mut app, log) = app_following("messages", StartAt::Beginning).await;
    let mut bytes = sip_failure(A, "1", 1).into_bytes();
    bytes.extend_from_slice(b"[2026-11-24 21:05:01] NOTICE[1] chan_sip.c: \xff\xfe garbage\n");
    bytes.extend(std::iter::repeat_n(b'x', 1024 * 1024));
    bytes.push(b'\n');
    // A non-UTF-8 byte in the attacker's user name must not hide the attempt.
    bytes.extend_from_slice(
        b"[2026-11-24 21:05:02] NOTICE[1] chan_sip.c: Registration from '<sip:\xff@x>' failed for '203.0.113.2:5060' - Wrong password\n",
    );
    bytes.extend_from_slice(sip_failure(A, "2", 3).as_bytes());
    std::fs::write(&log, bytes).unwrap();
    app.poll().await;
    assert_eq!((app.count_for(A).await, app.count_for(B).await), (2, 1));
    let mut conn = app.store.acquire().await.unwrap();
    let src = sipwarden::store::sources::get(&mut conn, &log.display().to_string()).await.unwrap().unwrap();
    assert_eq!(src.unreadable_lines, 3, "two non-UTF-8 lines and one oversized line");
    assert_eq!(src.lines_read, 5);
}

#[tokio::test]
async fn a_backlog_larger_than_one_batch_is_read_completely() {
    let (mut app, log) = app_following("messages", StartAt::Beginning).await;
    let mut text = String::new();
    let mut failures = 0;
    while text.len() <= 2 * sipwarden::ingest::follower::MAX_BATCH_BYTES {
        let i = failures;
        text.push_str(&sip_failure(
            &format!("198.{}.{}.{}", 51 + i / 62_500, i / 250 % 250, i % 250),
            "1",
            i,
        ));
        text.push_str(&noise(1));
        failures += 1;
    }
    append(&log, &text);
    app.poll().await;
    assert_eq!(app.counts().await.iter().map(|c| c.1).sum::<i64>(), i64::from(failures));
}

#[tokio::test]
async fn a_file_truncated_refilled_and_renamed_between_two_polls_is_read_from_its_top() {
    let (mut app, log) = app_following("messages", StartAt::Beginning).await;
    append(&log, &sip_failure(A, "1", 1));
    app.poll().await;
    std::fs::OpenOptions::new().write(true).truncate(true).open(&log).unwrap();
    append(&log, &(sip_failure(B, "1", 2) + &sip_failure(B, "2", 3)));
    std::fs::rename(&log, app.path("messages.1")).unwrap();
    append(&log, "");
    app.poll().await;
    assert_eq!((app.count_for(A).await, app.count_for(B).await), (1, 2));
}
