use sqlx::FromRow;

use super::{Conn, Result};
use crate::domain::UnixMs;

/// Where a follower stands in one log file, and what it has seen there.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct SourceRow {
    pub path: String,
    pub kind: String,
    pub inode: i64,
    pub first_line_hash: String,
    pub read_offset: i64,
    pub lines_read: i64,
    pub unreadable_lines: i64,
    pub tampered_records: i64,
    pub last_line_at: Option<i64>,
    pub updated_at: i64,
}

pub async fn get(conn: &mut Conn, path: &str) -> Result<Option<SourceRow>> {
    let node = conn.node().to_owned();
    Ok(on!(conn, |c| sqlx::query_as(
        "SELECT path, kind, inode, first_line_hash, read_offset, lines_read, unreadable_lines, \
         tampered_records, last_line_at, updated_at FROM log_sources WHERE node = $1 AND path = $2",
    )
    .bind(&node)
    .bind(path)
    .fetch_optional(&mut *c)
    .await)?)
}

/// This node's log files.
pub async fn all(conn: &mut Conn) -> Result<Vec<SourceRow>> {
    let node = conn.node().to_owned();
    Ok(on!(conn, |c| sqlx::query_as(
        "SELECT path, kind, inode, first_line_hash, read_offset, lines_read, unreadable_lines, \
         tampered_records, last_line_at, updated_at FROM log_sources WHERE node = $1 ORDER BY path",
    )
    .bind(&node)
    .fetch_all(&mut *c)
    .await)?)
}

/// Progress made by one batch: the new cursor plus counters to add.
pub struct Progress<'a> {
    pub path: &'a str,
    pub kind: &'a str,
    pub inode: i64,
    pub first_line_hash: &'a str,
    pub read_offset: i64,
    pub lines: i64,
    pub unreadable: i64,
    pub tampered: i64,
    pub last_line_at: Option<UnixMs>,
    pub now: UnixMs,
}

pub async fn save(conn: &mut Conn, p: &Progress<'_>) -> Result<()> {
    let node = conn.node().to_owned();
    on!(conn, |c| sqlx::query(
        "INSERT INTO log_sources (path, kind, inode, first_line_hash, read_offset, lines_read, \
         unreadable_lines, tampered_records, last_line_at, updated_at, node) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
         ON CONFLICT (node, path) DO UPDATE SET kind = excluded.kind, inode = excluded.inode, \
         first_line_hash = excluded.first_line_hash, read_offset = excluded.read_offset, \
         lines_read = log_sources.lines_read + excluded.lines_read, \
         unreadable_lines = log_sources.unreadable_lines + excluded.unreadable_lines, \
         tampered_records = log_sources.tampered_records + excluded.tampered_records, \
         last_line_at = COALESCE(excluded.last_line_at, log_sources.last_line_at), \
         updated_at = excluded.updated_at",
    )
    .bind(p.path)
    .bind(p.kind)
    .bind(p.inode)
    .bind(p.first_line_hash)
    .bind(p.read_offset)
    .bind(p.lines)
    .bind(p.unreadable)
    .bind(p.tampered)
    .bind(p.last_line_at)
    .bind(p.now)
    .bind(&node)
    .execute(&mut *c)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(())
}
