//! Reading one file for check-log: in chunks, so memory stays flat whatever its size,
//! and a big file in two halves on two threads. The halves join where both readers
//! are between records (nothing pending), so the result is the one a single reader
//! gives; when no such place is found near the cut, the first reader goes on alone.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;

use super::{Collector, FileReport};
use crate::asterisk::{ReadStats, RecordReader, SourceKind};
use crate::domain::UnixMs;

const CHUNK: usize = 1 << 20;
/// Smaller files are not worth a second thread.
const SPLIT_FROM: u64 = 16 << 20;
/// Places between records that the second reader remembers, from its start.
const JOIN_CANDIDATES: usize = 256;

/// Where a reader may stop or the two may join: every line up to `offset` judged,
/// nothing pending, and what had been collected by then.
#[derive(Clone, Copy)]
struct Settled {
    offset: u64,
    stats: ReadStats,
    events: usize,
    unattributed: u64,
}

enum Until {
    End,
    /// The first place between records at or after this offset.
    SettledFrom(u64),
}

struct Stretch {
    collector: Collector,
    stats: ReadStats,
    /// Where reading stopped (`Until::SettledFrom`), or the end.
    stopped_at: Option<Settled>,
    /// The first places between records (kept when asked for).
    settled: Vec<Settled>,
}

fn read_stretch(
    file: &mut File,
    mut reader: RecordReader,
    mut collector: Collector,
    start: u64,
    until: Until,
    keep_settled: bool,
    progress: &dyn Fn(u64),
) -> io::Result<Stretch> {
    file.seek(SeekFrom::Start(start))?;
    let mut buf = vec![0u8; CHUNK];
    let (mut filled, mut offset, mut eof) = (0usize, start, false);
    let mut records = Vec::new();
    // A fresh reader is between records where it starts.
    let start_point = Settled { offset: start, stats: ReadStats::default(), events: 0, unattributed: 0 };
    let mut settled = if keep_settled { vec![start_point] } else { Vec::new() };
    while !eof {
        let n = file.read(&mut buf[filled..])?;
        progress(n as u64);
        eof = n == 0;
        filled += n;
        let mut pos = 0;
        let data = &buf[..filled];
        loop {
            let rest = &data[pos..];
            let (line, next) = match memchr::memchr(b'\n', rest) {
                Some(i) => (&rest[..i], pos + i + 1),
                None if eof && !rest.is_empty() => (rest, filled),
                None => break,
            };
            let end = offset + next as u64;
            reader.push_bytes(line, offset + pos as u64, end, &mut records);
            pos = next;
            for r in records.drain(..) {
                collector.take(r);
            }
            if reader.settled_offset() != end {
                continue;
            }
            let here = || Settled {
                offset: end,
                stats: reader.stats,
                events: collector.events.len(),
                unattributed: collector.unattributed,
            };
            if keep_settled && settled.len() < JOIN_CANDIDATES {
                settled.push(here());
            }
            if let Until::SettledFrom(from) = until {
                if end >= from {
                    let stopped_at = Some(here());
                    return Ok(Stretch { collector, stats: reader.stats, stopped_at, settled });
                }
            }
        }
        if pos == 0 && filled == buf.len() {
            // A line longer than the buffer: drop it, as the live follower does.
            offset += filled as u64;
            filled = 0;
            continue;
        }
        buf.copy_within(pos..filled, 0);
        filled -= pos;
        offset += pos as u64;
    }
    reader.finish(&mut records);
    for r in records.drain(..) {
        collector.take(r);
    }
    Ok(Stretch { collector, stats: reader.stats, stopped_at: None, settled })
}

/// The start of the first line at or after `at` that opens with `[` (where Asterisk
/// records begin), if there is one within a megabyte.
fn line_start_after(file: &mut File, at: u64) -> io::Result<Option<u64>> {
    file.seek(SeekFrom::Start(at))?;
    let mut buf = vec![0u8; CHUNK];
    let n = file.read(&mut buf)?;
    Ok(memchr::memmem::find(&buf[..n], b"\n[").map(|i| at + i as u64 + 1))
}

pub(super) fn read_file(
    path: &Path,
    kind: SourceKind,
    out: &mut Collector,
    progress: &dyn Fn(u64),
) -> io::Result<FileReport> {
    let mut file = File::open(path)?;
    let meta = file.metadata()?;
    let two_threads = std::thread::available_parallelism().is_ok_and(|n| n.get() >= 2);
    let cut = match (two_threads && meta.len() >= SPLIT_FROM, meta.len() / 2) {
        (true, half) => line_start_after(&mut file, half)?,
        (false, _) => None,
    };
    read_file_cut(path, kind, out, progress, cut)
}

/// [`read_file`] with the second thread starting at `cut` (a line start), if any.
fn read_file_cut(
    path: &Path,
    kind: SourceKind,
    out: &mut Collector,
    progress: &dyn Fn(u64),
    cut: Option<u64>,
) -> io::Result<FileReport> {
    let mut file = File::open(path)?;
    let meta = file.metadata()?;
    let reference = meta
        .modified()
        .ok()
        .and_then(|m| m.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or_else(|| chrono::Utc::now().timestamp_millis(), |d| d.as_millis() as UnixMs);
    // Dates without a year are placed in the year before the file's last change.
    let reader = || RecordReader::new(reference, 0).without_raw();
    let drop_covered = out.drop_covered;
    let collector = move || Collector { drop_covered, ..Default::default() };
    let stats = match cut {
        None => {
            let s = read_stretch(&mut file, reader(), collector(), 0, Until::End, false, progress)?;
            out.append(s.collector, 0, 0);
            s.stats
        }
        Some(cut) => {
            let second = std::thread::scope(|scope| -> io::Result<_> {
                let later = scope.spawn(|| {
                    let mut file = File::open(path)?;
                    read_stretch(&mut file, reader(), collector(), cut, Until::End, true, &|_| {})
                });
                let first = read_stretch(
                    &mut file,
                    reader(),
                    collector(),
                    0,
                    Until::SettledFrom(cut),
                    false,
                    progress,
                )?;
                let later =
                    later.join().map_err(|_| io::Error::other("check-log reader thread panicked"))??;
                Ok((first, later))
            })?;
            join(&mut file, out, second, (reader, collector), meta.len(), progress)?
        }
    };
    Ok(FileReport {
        path: path.to_owned(),
        kind,
        lines: stats.lines,
        events: stats.events,
        tampered_records: stats.tampered_records,
    })
}

/// Puts the two halves together where both were between records, or reads on from
/// where the first stopped when they never were at the same place.
fn join(
    file: &mut File,
    out: &mut Collector,
    (first, later): (Stretch, Stretch),
    (reader, collector): (impl Fn() -> RecordReader, impl Fn() -> Collector),
    len: u64,
    progress: &dyn Fn(u64),
) -> io::Result<ReadStats> {
    let stop = first.stopped_at;
    let meeting = stop.and_then(|s| later.settled.iter().find(|l| l.offset == s.offset).copied());
    out.append(first.collector, 0, 0);
    let mut stats = first.stats;
    match (stop, meeting) {
        (Some(_), Some(m)) => {
            progress(len.saturating_sub(m.offset));
            out.append(later.collector, m.events, m.unattributed);
            stats.lines += later.stats.lines - m.stats.lines;
            stats.events += later.stats.events - m.stats.events;
            stats.tampered_records += later.stats.tampered_records - m.stats.tampered_records;
            stats.swallowed_lines += later.stats.swallowed_lines - m.stats.swallowed_lines;
        }
        (Some(s), None) => {
            // The reader state at `s` is "nothing pending": a fresh reader resumes it.
            let rest = read_stretch(file, reader(), collector(), s.offset, Until::End, false, progress)?;
            out.append(rest.collector, 0, 0);
            stats.lines += rest.stats.lines;
            stats.events += rest.stats.events;
            stats.tampered_records += rest.stats.tampered_records;
            stats.swallowed_lines += rest.stats.swallowed_lines;
        }
        // The first reader reached the end without a place to stop: it read it all.
        (None, _) => {}
    }
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: &str = "[Nov 24 22:16:11] SECURITY[25859] res_security_log.c: ";

    /// Noise, records split over several lines by forged text, undated lines: every
    /// kind of place a cut can fall.
    fn log() -> String {
        let mut text = String::new();
        for i in 0..6 {
            text.push_str(&format!(
                "[Nov 24 22:16:1{i}] VERBOSE[2] pbx.c: Executing [s@from-internal:{i}] NoOp()\n"
            ));
            text.push_str(&format!(
                "{SEC}SecurityEvent=\"InvalidPassword\",EventTV=\"2026-11-24T22:18:0{i}.100+0000\",Severity=\"Error\",Service=\"SIP\",EventVersion=\"2\",AccountID=\"zz{i}\n\
[Nov 24 22:18:00] SECURITY[1] res_security_log.c: SecurityEvent=\"InvalidPassword\",AccountID=\"1001\",RemoteAddress=\"IPV4/UDP/6.6.6.6/5060\"\n\
\",SessionID=\"0x7fbd60038c90\",LocalAddress=\"IPV4/UDP/10.99.0.1/5060\",RemoteAddress=\"IPV4/UDP/198.51.100.{i}/5060\",Challenge=\"42e73362\",ReceivedChallenge=\"42e73362\",ReceivedHash=\"1377\"\n"
            ));
            text.push_str(&format!(
                "[Nov 24 22:19:0{i}] NOTICE[3] chan_sip.c: Registration from '<sip:10{i}@x>' failed for '203.0.113.{i}:5060' - Wrong password\n"
            ));
            text.push_str("a line with no envelope at all\n");
            // A forged complete line inside a record: a reader starting on it counts it.
            text.push_str(&format!(
                "[Nov 24 22:17:4{i}] NOTICE[25842][C-00000004] chan_sip.c: Call from '' (198.51.100.8:44975) to extension '9\n\
[Nov 24 22:18:01] NOTICE[1] chan_sip.c: Registration from '<sip:1001@x>' failed for '6.6.6.6:5060' - Wrong password\n\
' rejected because extension not found in context 'public'.\n"
            ));
        }
        text
    }

    fn collected(c: &Collector) -> Vec<(UnixMs, String, Option<String>, bool)> {
        let account = |a: Option<u32>| a.map(|i| c.accounts[i as usize].clone());
        c.events.iter().map(|e| (e.at, e.ip.to_string(), account(e.account), e.tampered)).collect()
    }

    #[test]
    fn two_halves_give_what_one_reader_gives_wherever_the_cut_falls() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("security");
        let text = log();
        std::fs::write(&path, &text).unwrap();
        let mut whole = Collector::default();
        let one = read_file_cut(&path, SourceKind::Security, &mut whole, &|_| {}, None).unwrap();
        assert!(whole.events.len() >= 12 && whole.unattributed == 0);
        let starts = std::iter::once(0).chain(text.match_indices('\n').map(|(i, _)| i as u64 + 1));
        for cut in starts.filter(|&c| c < text.len() as u64) {
            let mut halves = Collector::default();
            let two = read_file_cut(&path, SourceKind::Security, &mut halves, &|_| {}, Some(cut)).unwrap();
            assert_eq!(collected(&halves), collected(&whole), "cut at {cut}");
            assert_eq!(halves.unattributed, whole.unattributed, "cut at {cut}");
            let counts = |r: &FileReport| (r.lines, r.events, r.tampered_records);
            assert_eq!(counts(&two), counts(&one), "cut at {cut}");
        }
    }
}
