//! Reading one file for check-log: in chunks, so memory stays flat whatever its size,
//! and a big file in pieces that every core takes from a common queue (a core the
//! machine is busy with simply takes fewer). Neighbouring pieces join where both of
//! their readers are between records (nothing pending), so the result is the one a
//! single reader gives; where no such place is found, reading goes on from where the
//! earlier reader stopped.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::{Collector, FileReport};
use crate::asterisk::{ReadStats, RecordReader, SourceKind};
use crate::domain::UnixMs;

const CHUNK: usize = 1 << 20;
/// Bytes asked of the kernel at a time: a chunk that stays in the core's cache while
/// it is being read.
const READ_AT_ONCE: usize = 256 << 10;
/// Smaller files are read by one thread.
const SPLIT_FROM: u64 = 16 << 20;
/// About the size of each piece of a bigger file.
const PIECE: u64 = 8 << 20;
/// Threads reading one file at most.
const MAX_READERS: usize = 4;
/// Places between records that a piece's reader remembers, from its start.
const JOIN_CANDIDATES: usize = 256;

/// Where a reader may stop or two may join: every line up to `offset` judged,
/// nothing pending, and what had been collected by then.
#[derive(Clone, Copy)]
struct Settled {
    offset: u64,
    stats: ReadStats,
    events: usize,
    calls: usize,
    unattributed: u64,
}

impl Settled {
    /// Where a fresh reader starts: nothing read yet.
    fn fresh(offset: u64) -> Self {
        Settled { offset, stats: ReadStats::default(), events: 0, calls: 0, unattributed: 0 }
    }

    fn at(offset: u64, reader: &RecordReader, collector: &Collector) -> Self {
        Settled {
            offset,
            stats: reader.stats,
            events: collector.events.len(),
            calls: collector.calls.len(),
            unattributed: collector.unattributed,
        }
    }
}

#[derive(Clone, Copy)]
enum Until {
    End,
    /// The first place between records at or after this offset.
    SettledFrom(u64),
}

struct Stretch {
    collector: Collector,
    stats: ReadStats,
    /// Where reading stopped (`Until::SettledFrom`), or `None` at the end.
    stopped_at: Option<Settled>,
    /// The first places between records (kept when asked for).
    settled: Vec<Settled>,
}

/// A reader for one file: what every piece starts from.
struct Source {
    reference: UnixMs,
    drop_covered: bool,
}

impl Source {
    fn reader(&self) -> RecordReader {
        RecordReader::new(self.reference, 0).without_raw().with_calls()
    }

    fn collector(&self) -> Collector {
        Collector { drop_covered: self.drop_covered, ..Default::default() }
    }

    fn stretch(
        &self,
        file: &mut File,
        buf: &mut Vec<u8>,
        (start, until): (u64, Until),
        keep_settled: bool,
        progress: &(dyn Fn(u64) + Sync),
    ) -> io::Result<Stretch> {
        read_stretch(file, buf, self.reader(), self.collector(), (start, until), keep_settled, progress)
    }
}

fn read_stretch(
    file: &mut File,
    buf: &mut Vec<u8>,
    mut reader: RecordReader,
    mut collector: Collector,
    (start, until): (u64, Until),
    keep_settled: bool,
    progress: &(dyn Fn(u64) + Sync),
) -> io::Result<Stretch> {
    file.seek(SeekFrom::Start(start))?;
    buf.resize(CHUNK, 0);
    let (mut filled, mut offset, mut eof) = (0usize, start, false);
    let mut records = Vec::new();
    // A fresh reader is between records where it starts.
    let mut settled = if keep_settled { vec![Settled::fresh(start)] } else { Vec::new() };
    while !eof {
        let n = file.read(&mut buf[filled..(filled + READ_AT_ONCE).min(CHUNK)])?;
        progress(n as u64);
        eof = n == 0;
        filled += n;
        let mut pos = 0;
        let data = &buf[..filled];
        loop {
            // Runs of lines that cannot matter are counted without being split, except
            // where a join may need every place between records: the earlier reader
            // near where it stops, the later one at its start.
            if !(keep_settled && settled.len() < JOIN_CANDIDATES) {
                let limit = match until {
                    Until::SettledFrom(from) => (from.saturating_sub(offset) as usize).clamp(pos, filled),
                    Until::End => filled,
                };
                let quiet = reader.skip_quiet_lines(&data[pos..limit], offset + pos as u64);
                pos += quiet;
                let end = offset + pos as u64;
                if let Until::SettledFrom(from) = until {
                    if quiet > 0 && end >= from {
                        let stopped_at = Some(Settled::at(end, &reader, &collector));
                        return Ok(Stretch { collector, stats: reader.stats, stopped_at, settled });
                    }
                }
            }
            let rest = &data[pos..];
            let (line, next) = match memchr::memchr(b'\n', rest) {
                Some(i) => (&rest[..i], pos + i + 1),
                None if eof && !rest.is_empty() => (rest, filled),
                None => break,
            };
            let end = offset + next as u64;
            reader.push_decoded(line, offset + pos as u64, end, &mut records);
            pos = next;
            for r in records.drain(..) {
                collector.take(r);
            }
            collector.take_calls(&mut reader);
            if reader.settled_offset() != end {
                continue;
            }
            if keep_settled && settled.len() < JOIN_CANDIDATES {
                settled.push(Settled::at(end, &reader, &collector));
            }
            if let Until::SettledFrom(from) = until {
                if end >= from {
                    let stopped_at = Some(Settled::at(end, &reader, &collector));
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
    collector.take_calls(&mut reader);
    Ok(Stretch { collector, stats: reader.stats, stopped_at: None, settled })
}

/// The start of the first line at or after `at` that opens with `[` (where Asterisk
/// records begin), if there is one within a megabyte: looked for a little at a time,
/// as one is nearly always close.
fn line_start_after(file: &mut File, at: u64) -> io::Result<Option<u64>> {
    let mut buf = vec![0u8; 64 << 10];
    let mut from = at;
    while from - at < CHUNK as u64 {
        file.seek(SeekFrom::Start(from))?;
        let n = file.read(&mut buf)?;
        if let Some(i) = memchr::memmem::find(&buf[..n], b"\n[") {
            return Ok(Some(from + i as u64 + 1));
        }
        if n < 2 {
            return Ok(None);
        }
        // The next look overlaps this one by a byte, so a "\n[" across the seam is found.
        from += n as u64 - 1;
    }
    Ok(None)
}

/// Dates without a year are placed in the year before the file's last change.
pub(super) fn file_reference_time(path: &Path) -> io::Result<UnixMs> {
    Ok(std::fs::metadata(path)?
        .modified()
        .ok()
        .and_then(|m| m.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or_else(|| chrono::Utc::now().timestamp_millis(), |d| d.as_millis() as UnixMs))
}

pub(super) fn read_file(
    path: &Path,
    kind: SourceKind,
    out: &mut Collector,
    progress: &(dyn Fn(u64) + Sync),
) -> io::Result<FileReport> {
    let mut file = File::open(path)?;
    let len = file.metadata()?.len();
    // Each reader holds a chunk buffer and its piece's events: a few, not one per core
    // of a big server, keep memory flat.
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(MAX_READERS);
    let mut starts = vec![0];
    if threads >= 2 && len >= SPLIT_FROM {
        for i in 1..len.div_ceil(PIECE) {
            match line_start_after(&mut file, i * PIECE)? {
                Some(at) if at > *starts.last().unwrap_or(&0) => starts.push(at),
                _ => {}
            }
        }
    }
    read_file_pieces(path, kind, out, progress, &starts, threads)
}

/// [`read_file`] with pieces beginning at `starts` (0, then line starts in order),
/// read by up to `threads` threads.
fn read_file_pieces(
    path: &Path,
    kind: SourceKind,
    out: &mut Collector,
    progress: &(dyn Fn(u64) + Sync),
    starts: &[u64],
    threads: usize,
) -> io::Result<FileReport> {
    let mut file = File::open(path)?;
    let reference = file_reference_time(path)?;
    let source = Source { reference, drop_covered: out.drop_covered };
    let bounds = |i: usize| (starts[i], starts.get(i + 1).map_or(Until::End, |&s| Until::SettledFrom(s)));
    let next = AtomicUsize::new(0);
    // Each thread takes the next piece until none is left.
    let work = || -> io::Result<Vec<(usize, Stretch)>> {
        let mut file = File::open(path)?;
        let mut buf = Vec::new();
        let mut done = Vec::new();
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            if i >= starts.len() {
                return Ok(done);
            }
            done.push((i, source.stretch(&mut file, &mut buf, bounds(i), i > 0, progress)?));
        }
    };
    let mut pieces: Vec<Option<Stretch>> = (0..starts.len()).map(|_| None).collect();
    std::thread::scope(|scope| -> io::Result<()> {
        let helpers: Vec<_> = (1..threads.min(starts.len())).map(|_| scope.spawn(work)).collect();
        let mut done = work()?;
        for h in helpers {
            done.extend(h.join().map_err(|_| io::Error::other("check-log reader thread panicked"))??);
        }
        for (i, stretch) in done {
            pieces[i] = Some(stretch);
        }
        Ok(())
    })?;
    let stats = join(&mut file, out, pieces, &source, bounds, progress)?;
    Ok(FileReport {
        path: path.to_owned(),
        kind,
        lines: stats.lines,
        events: stats.events,
        tampered_records: stats.tampered_records,
    })
}

fn add_stats(total: &mut ReadStats, read: ReadStats, already: ReadStats) {
    total.lines += read.lines - already.lines;
    total.events += read.events - already.events;
    total.tampered_records += read.tampered_records - already.tampered_records;
    total.swallowed_lines += read.swallowed_lines - already.swallowed_lines;
}

/// Puts the pieces together in order: each one from where the reader before it stopped
/// between records, or, when it was never there, read again from that place.
fn join(
    file: &mut File,
    out: &mut Collector,
    pieces: Vec<Option<Stretch>>,
    source: &Source,
    bounds: impl Fn(usize) -> (u64, Until),
    progress: &(dyn Fn(u64) + Sync),
) -> io::Result<ReadStats> {
    let mut stats = ReadStats::default();
    // Where the text taken so far ends, while that is before the end of the file.
    let mut stop = Some(Settled::fresh(0));
    let mut buf = Vec::new();
    for (i, piece) in pieces.into_iter().enumerate() {
        let (Some(s), Some(piece)) = (stop, piece) else { break };
        let meeting = piece.settled.iter().chain(piece.stopped_at.iter()).find(|l| l.offset == s.offset);
        let (taken, since) = match (i, meeting) {
            (0, _) => (piece, Settled::fresh(0)),
            (_, Some(&m)) => (piece, m),
            (_, None) => {
                // The state at `s` is "nothing pending": a fresh reader resumes it.
                let (_, until) = bounds(i);
                let again = source.stretch(file, &mut buf, (s.offset, until), false, progress)?;
                (again, Settled::fresh(s.offset))
            }
        };
        add_stats(&mut stats, taken.stats, since.stats);
        out.append(taken.collector, (since.events, since.calls), since.unattributed);
        stop = taken.stopped_at;
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
        // Enough lines for a later piece to pass over quiet runs after its join candidates.
        for i in 0..60 {
            for n in 0..3 {
                text.push_str(&format!(
                    "[Nov 24 22:16:{i:02}] VERBOSE[2] pbx.c: Executing [s@from-internal:{n}] NoOp(\"PJSIP/1{i:03}-{n:08x}\", \"\") in new stack\n"
                ));
            }
            text.push_str(&format!(
                "{SEC}SecurityEvent=\"InvalidPassword\",EventTV=\"2026-11-24T22:18:{i:02}.100+0000\",Severity=\"Error\",Service=\"SIP\",EventVersion=\"2\",AccountID=\"zz{i}\n\
[Nov 24 22:18:00] SECURITY[1] res_security_log.c: SecurityEvent=\"InvalidPassword\",AccountID=\"1001\",RemoteAddress=\"IPV4/UDP/6.6.6.6/5060\"\n\
\",SessionID=\"0x7fbd60038c90\",LocalAddress=\"IPV4/UDP/10.99.0.1/5060\",RemoteAddress=\"IPV4/UDP/198.51.100.{i}/5060\",Challenge=\"42e73362\",ReceivedChallenge=\"42e73362\",ReceivedHash=\"1377\"\n"
            ));
            text.push_str(&format!(
                "[Nov 24 22:19:{i:02}] NOTICE[3] chan_sip.c: Registration from '<sip:10{i}@x>' failed for '203.0.113.{i}:5060' - Wrong password\n"
            ));
            if i % 7 == 3 {
                // No readable date: it takes the time of the record before it.
                text.push_str(&format!(
                    "[sometime] NOTICE[3] chan_sip.c: Registration from '<sip:1@x>' failed for '192.0.2.{i}:5060' - Wrong password\n"
                ));
            }
            text.push_str("a line with no envelope at all\n");
            // A forged complete line inside a record: a reader starting on it counts it.
            text.push_str(&format!(
                "[Nov 24 22:17:{i:02}] NOTICE[25842][C-00000004] chan_sip.c: Call from '' (198.51.100.8:44975) to extension '9\n\
[Nov 24 22:18:01] NOTICE[1] chan_sip.c: Registration from '<sip:1001@x>' failed for '6.6.6.6:5060' - Wrong password\n\
' rejected because extension not found in context 'public'.\n"
            ));
        }
        text
    }

    fn counts(r: &FileReport) -> (u64, u64, u64) {
        (r.lines, r.events, r.tampered_records)
    }

    fn collected(c: &Collector) -> Vec<(UnixMs, String, Option<String>, bool)> {
        let account = |a: Option<u32>| a.map(|i| c.accounts[i as usize].clone());
        c.events
            .iter()
            .map(|e| (e.at, c.ips[e.ip as usize].to_string(), account(e.account), e.tampered))
            .collect()
    }

    /// The test log in a file: its text, and what one reader takes from it.
    struct Written {
        _dir: tempfile::TempDir,
        path: std::path::PathBuf,
        text: String,
        whole: Collector,
        one: FileReport,
    }

    fn written() -> Written {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("security");
        let text = log();
        std::fs::write(&path, &text).unwrap();
        let (whole, one) = read_in_pieces(&path, &[0], 1);
        assert!(whole.events.len() >= 120 && whole.unattributed == 0);
        assert_eq!(whole.calls.len(), 60, "every first step read");
        Written { _dir: dir, path, text, whole, one }
    }

    fn read_in_pieces(path: &Path, starts: &[u64], threads: usize) -> (Collector, FileReport) {
        let mut collector = Collector::default();
        let report =
            read_file_pieces(path, SourceKind::Security, &mut collector, &|_| {}, starts, threads).unwrap();
        (collector, report)
    }

    #[test]
    fn a_piece_starts_at_the_next_record_wherever_it_lies() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let found = |text: &[u8], at: u64| {
            std::fs::write(&path, text).unwrap();
            line_start_after(&mut File::open(&path).unwrap(), at).unwrap()
        };
        // The newline ends one look and the bracket opens the next.
        let mut text = vec![b'x'; (64 << 10) - 1];
        text.extend_from_slice(b"\n[Nov 24] rest\n");
        assert_eq!(found(&text, 0), Some(64 << 10));
        assert_eq!(found(b"[a]\ncontinued\n[b]\n", 1), Some(14));
        assert_eq!(found(&vec![b'y'; CHUNK + 10], 0), None);
        assert_eq!(found(b"[a]\n", 2), None);
    }

    #[test]
    fn two_halves_give_what_one_reader_gives_wherever_the_cut_falls() {
        let w = written();
        let starts = std::iter::once(0).chain(w.text.match_indices('\n').map(|(i, _)| i as u64 + 1));
        // Every line of the first iterations (each kind of place), then every fifth.
        let cuts = starts.enumerate().filter(|&(n, _)| n < 100 || n % 5 == 0).map(|(_, c)| c);
        for cut in cuts.filter(|&c| c < w.text.len() as u64) {
            let (halves, two) = read_in_pieces(&w.path, &[0, cut], 2);
            assert_eq!(collected(&halves), collected(&w.whole), "cut at {cut}");
            assert_eq!(halves.calls, w.whole.calls, "cut at {cut}");
            assert_eq!(halves.unattributed, w.whole.unattributed, "cut at {cut}");
            assert_eq!(counts(&two), counts(&w.one), "cut at {cut}");
        }
    }

    #[test]
    fn many_pieces_give_what_one_reader_gives_wherever_they_start() {
        let w = written();
        let line_starts: Vec<u64> = w.text.match_indices('\n').map(|(i, _)| i as u64 + 1).collect();
        let line_starts = &line_starts[..line_starts.len() - 1];
        // Pieces of one to four lines, shifted over the whole log: pending records
        // span several pieces, pieces start inside records.
        for width in 1..=4 {
            for shift in 0..width {
                let starts: Vec<u64> = std::iter::once(0)
                    .chain(line_starts.iter().copied().skip(shift).step_by(width))
                    .collect();
                let (pieces, many) = read_in_pieces(&w.path, &starts, 3);
                assert_eq!(collected(&pieces), collected(&w.whole), "pieces of {width} from {shift}");
                assert_eq!(pieces.calls, w.whole.calls, "pieces of {width} from {shift}");
                assert_eq!(pieces.unattributed, w.whole.unattributed);
                assert_eq!(counts(&many), counts(&w.one), "pieces of {width} from {shift}");
            }
        }
    }
}
