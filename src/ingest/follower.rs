//! Follows one log file: rotation by rename (the old file's tail is read first),
//! copytruncate, replacement in place, partial last lines, oversized lines.
//!
//! A follower only reads; its cursor moves when the caller has stored what a batch
//! produced ([`Follower::commit`]), so a crash between the two repeats nothing.

use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::asterisk::{self, ReadRecord, RecordReader, SourceKind};
use crate::domain::{DatedCall, UnixMs};

/// Bytes read per poll at most, so one huge backlog is stored in several transactions.
pub const MAX_BATCH_BYTES: usize = 8 * 1024 * 1024;
/// Longer lines are counted and skipped: Asterisk never writes an auth line this long.
pub const MAX_LINE_BYTES: usize = 64 * 1024;
const FIRST_LINE_PROBE: usize = 4096;

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Cursor {
    pub inode: u64,
    /// Hash of the first line; empty while the file has no complete first line.
    pub first_line_hash: String,
    pub offset: u64,
}

/// Where reading a file resumes, as the store saved it.
impl From<&crate::store::sources::SourceRow> for Cursor {
    fn from(saved: &crate::store::sources::SourceRow) -> Cursor {
        Cursor {
            inode: saved.inode as u64,
            first_line_hash: saved.first_line_hash.clone(),
            offset: saved.read_offset as u64,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StartAt {
    Beginning,
    End,
}

/// What one poll read: records to store and the cursor to save with them.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Batch {
    pub path: String,
    pub kind: SourceKind,
    pub records: Vec<ReadRecord>,
    pub cursor: Cursor,
    pub lines: u64,
    pub unreadable_lines: u64,
    /// More data is waiting: poll again at once.
    pub more: bool,
    /// End offsets of the lines read and of the unreadable ones, so a batch stored in
    /// parts counts each part's lines.
    pub line_ends: Vec<u64>,
    pub unreadable_ends: Vec<u64>,
    /// The dialplan's call events in the lines read (a full log at verbose 3).
    pub calls: Vec<DatedCall>,
    /// Registrations appearing and ending in the lines read.
    pub contacts: Vec<crate::domain::DatedContact>,
}

impl Batch {
    /// The part of this batch past `offset` of the same file (what a store that
    /// holds the file's cursor at `offset` has not stored yet).
    pub fn after(&self, offset: u64) -> Batch {
        let keep = |ends: &[u64]| ends.iter().copied().filter(|&e| e > offset).collect();
        Batch {
            records: self.records.iter().filter(|r| r.end > offset).cloned().collect(),
            line_ends: keep(&self.line_ends),
            unreadable_ends: keep(&self.unreadable_ends),
            ..self.clone()
        }
    }

    /// (lines, unreadable lines) that end at or before `offset`.
    pub fn lines_up_to(&self, offset: u64) -> (u64, u64) {
        (
            self.line_ends.partition_point(|&e| e <= offset) as u64,
            self.unreadable_ends.partition_point(|&e| e <= offset) as u64,
        )
    }
}

pub struct Follower {
    path: PathBuf,
    kind: Option<SourceKind>,
    cursor: Option<Cursor>,
    start_at: StartAt,
    /// Inside a line longer than `MAX_BATCH_BYTES`: skip to its end.
    skipping: bool,
}

impl Follower {
    pub fn new(path: PathBuf, kind: Option<SourceKind>, saved: Option<Cursor>, start_at: StartAt) -> Self {
        Follower { path, kind, cursor: saved, start_at, skipping: false }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn kind(&self) -> Option<SourceKind> {
        self.kind
    }

    pub fn cursor(&self) -> Option<&Cursor> {
        self.cursor.as_ref()
    }

    /// Accepts a batch's cursor once its records are stored.
    pub fn commit(&mut self, cursor: Cursor) {
        self.cursor = Some(cursor);
    }

    /// Reads what is new. `Ok(None)`: nothing to store.
    pub fn poll(&mut self, now: UnixMs) -> io::Result<Option<Batch>> {
        let meta = match fs::metadata(&self.path) {
            Ok(m) => Some(m),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        let Some(cursor) = self.cursor.clone() else {
            let Some(meta) = meta else { return Ok(None) };
            return self.first_sight(meta.ino(), now).map(Some);
        };
        let same_file = meta.as_ref().is_some_and(|m| m.ino() == cursor.inode);
        if !same_file {
            // Rotated by rename (or deleted): finish the old file first, then start
            // the new one from its beginning.
            if let Some(old) = self.find_by_inode(cursor.inode) {
                let len = old.metadata()?.len();
                // It may have been truncated and refilled (copytruncate) before it was
                // renamed away: then its new content is read from the top.
                let hash = first_line_hash(&old)?;
                let mut cursor = cursor;
                let rewritten =
                    !cursor.first_line_hash.is_empty() && !hash.is_empty() && hash != cursor.first_line_hash;
                if len < cursor.offset || rewritten {
                    cursor.offset = 0;
                    self.skipping = false;
                }
                cursor.first_line_hash = hash;
                if len > cursor.offset {
                    let mut batch = self.read_from(old, cursor, now, meta.is_some())?;
                    // The new file is next: ask to be polled again at once.
                    batch.more = true;
                    return Ok(Some(batch));
                }
            }
            let Some(meta) = meta else { return Ok(None) };
            let file = File::open(&self.path)?;
            let fresh = Cursor { inode: meta.ino(), first_line_hash: first_line_hash(&file)?, offset: 0 };
            self.skipping = false;
            return self.read_from(file, fresh, now, false).map(Some);
        }
        let meta = meta.expect("same_file implies metadata");
        let file = File::open(&self.path)?;
        let hash = first_line_hash(&file)?;
        let replaced =
            !cursor.first_line_hash.is_empty() && !hash.is_empty() && hash != cursor.first_line_hash;
        let mut cursor = cursor;
        if meta.len() < cursor.offset || replaced {
            // copytruncate, or the file was rewritten under the same inode.
            cursor.offset = 0;
            self.skipping = false;
        }
        cursor.first_line_hash = hash;
        if meta.len() == cursor.offset {
            if Some(&cursor) != self.cursor.as_ref() {
                return Ok(Some(self.empty_batch(cursor)));
            }
            return Ok(None);
        }
        self.read_from(file, cursor, now, false).map(Some)
    }

    fn first_sight(&mut self, inode: u64, now: UnixMs) -> io::Result<Batch> {
        let file = File::open(&self.path)?;
        let hash = first_line_hash(&file)?;
        let mut cursor = Cursor { inode, first_line_hash: hash, offset: 0 };
        if self.start_at == StartAt::End {
            cursor.offset = end_of_last_line(&file)?;
            self.detect_kind(&file)?;
            return Ok(self.empty_batch(cursor));
        }
        self.read_from(file, cursor, now, false)
    }

    fn empty_batch(&mut self, cursor: Cursor) -> Batch {
        let kind = self.kind.unwrap_or(SourceKind::Messages);
        self.batch_of(kind, Vec::new(), cursor, (Vec::new(), Vec::new()), false)
    }

    fn detect_kind(&mut self, file: &File) -> io::Result<SourceKind> {
        if let Some(k) = self.kind {
            return Ok(k);
        }
        let mut head = vec![0u8; 64 * 1024];
        let n = file.read_at_most(&mut head, 0)?;
        let text = String::from_utf8_lossy(&head[..n]);
        let complete = text.rfind('\n').map_or("", |i| &text[..i]);
        if complete.is_empty() {
            return Ok(SourceKind::Messages);
        }
        let kind = asterisk::detect_kind(complete.lines().take(200));
        self.kind = Some(kind);
        Ok(kind)
    }

    /// Reads complete lines of `file` from `cursor.offset`. `final_tail`: the file was
    /// rotated away and a new one exists, so its unterminated last line is complete.
    fn read_from(
        &mut self,
        mut file: File,
        mut cursor: Cursor,
        now: UnixMs,
        final_tail: bool,
    ) -> io::Result<Batch> {
        let kind = self.detect_kind(&file)?;
        file.seek(SeekFrom::Start(cursor.offset))?;
        // Sized to what is there: a growing buffer would hold two copies at its peak.
        let waiting = file.metadata()?.len().saturating_sub(cursor.offset).min(MAX_BATCH_BYTES as u64);
        let mut buf = Vec::with_capacity(waiting as usize);
        (&mut file).take(MAX_BATCH_BYTES as u64).read_to_end(&mut buf)?;
        let more = buf.len() == MAX_BATCH_BYTES;
        let base = cursor.offset;
        let mut reader = RecordReader::new(now, base).with_calls().with_contacts();
        let mut records = Vec::new();
        let mut unreadable_ends = Vec::new();
        let mut line_ends = Vec::new();
        let mut pos = 0usize;
        if self.skipping {
            match memchr::memchr(b'\n', &buf) {
                Some(nl) => {
                    pos = nl + 1;
                    self.skipping = false;
                    line_ends.push(base + pos as u64);
                }
                None => {
                    cursor.offset = base + buf.len() as u64;
                    let batch = self.batch_of(kind, Vec::new(), cursor, (line_ends, unreadable_ends), more);
                    return Ok(batch);
                }
            }
        }
        let mut settled_extra = None;
        while pos < buf.len() {
            let (line_end, next) = match memchr::memchr(b'\n', &buf[pos..]) {
                Some(i) => (pos + i, pos + i + 1),
                None if final_tail && !more => (buf.len(), buf.len()),
                None if pos == 0 && more => {
                    // One line fills the whole window: skip it without holding it.
                    let end = base + buf.len() as u64;
                    unreadable_ends.push(end);
                    self.skipping = true;
                    settled_extra = Some(end);
                    break;
                }
                None => break,
            };
            let bytes = &buf[pos..line_end];
            let (start, end) = (base + pos as u64, base + next as u64);
            if bytes.len() > MAX_LINE_BYTES {
                unreadable_ends.push(end);
                reader.push("", start, end, &mut records);
            } else if !reader.push_bytes(bytes, start, end, &mut records) {
                unreadable_ends.push(end);
            }
            line_ends.push(end);
            pos = next;
        }
        cursor.offset = settled_extra.unwrap_or_else(|| reader.settled_offset());
        let mut batch = self.batch_of(kind, records, cursor, (line_ends, unreadable_ends), more);
        batch.calls = reader.take_calls();
        batch.contacts = reader.take_contacts();
        Ok(batch)
    }

    fn batch_of(
        &self,
        kind: SourceKind,
        records: Vec<ReadRecord>,
        cursor: Cursor,
        (line_ends, unreadable_ends): (Vec<u64>, Vec<u64>),
        more: bool,
    ) -> Batch {
        let mut batch = Batch {
            path: self.path.display().to_string(),
            kind,
            records,
            lines: 0,
            unreadable_lines: 0,
            more,
            line_ends,
            unreadable_ends,
            cursor,
            calls: Vec::new(),
            contacts: Vec::new(),
        };
        (batch.lines, batch.unreadable_lines) = batch.lines_up_to(batch.cursor.offset);
        batch
    }

    /// The file that had `inode`: still at the path, or renamed beside it (`messages.1`).
    fn find_by_inode(&self, inode: u64) -> Option<File> {
        let dir = self.path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let name = self.path.file_name()?.to_string_lossy().into_owned();
        let entries = fs::read_dir(dir).ok()?;
        for entry in entries.flatten() {
            let candidate = entry.file_name().to_string_lossy().into_owned();
            if !candidate.starts_with(&name) {
                continue;
            }
            if let Ok(meta) = entry.metadata() {
                if meta.ino() == inode && meta.is_file() {
                    return File::open(entry.path()).ok();
                }
            }
        }
        None
    }
}

trait ReadAt {
    fn read_at_most(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;
}

impl ReadAt for File {
    fn read_at_most(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        use std::os::unix::fs::FileExt;
        let mut filled = 0;
        while filled < buf.len() {
            let n = self.read_at(&mut buf[filled..], offset + filled as u64)?;
            if n == 0 {
                break;
            }
            filled += n;
        }
        Ok(filled)
    }
}

/// FNV-1a of the first complete line: tells a rewritten file from the one we read.
fn first_line_hash(file: &File) -> io::Result<String> {
    let mut head = [0u8; FIRST_LINE_PROBE];
    let n = file.read_at_most(&mut head, 0)?;
    let line = match memchr::memchr(b'\n', &head[..n]) {
        Some(i) => &head[..i],
        None if n == FIRST_LINE_PROBE => &head[..n],
        None => return Ok(String::new()),
    };
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in line {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    Ok(format!("{hash:016x}"))
}

/// Offset just past the last newline: "start at the end" never begins mid-line.
fn end_of_last_line(file: &File) -> io::Result<u64> {
    let len = file.metadata()?.len();
    let mut pos = len;
    let mut buf = [0u8; 4096];
    while pos > 0 {
        let start = pos.saturating_sub(buf.len() as u64);
        let n = file.read_at_most(&mut buf[..(pos - start) as usize], start)?;
        if let Some(i) = memchr::memrchr(b'\n', &buf[..n]) {
            return Ok(start + i as u64 + 1);
        }
        pos = start;
    }
    Ok(0)
}
