//! Everything the ladder needs about one address, in one round trip: this runs for
//! every failure stored.

use super::{Conn, Result};
use crate::domain::UnixMs;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressHistory {
    /// Stored failures after each of the given instants, in the same order.
    pub failures_since: Vec<u32>,
    pub succeeded_since: bool,
    pub timed_bans_since: u32,
    /// The ban in force: `Some(None)` until released, `Some(Some(t))` until `t`.
    pub active_until: Option<Option<UnixMs>>,
}

pub async fn for_address(
    conn: &mut Conn,
    ip: &str,
    failure_windows: &[UnixMs],
    success_since: UnixMs,
    timed_bans_since: UnixMs,
    now: UnixMs,
) -> Result<AddressHistory> {
    // One statement: the failure counts per window, then the other facts.
    let earliest = failure_windows.iter().copied().min().unwrap_or(now);
    let n = failure_windows.len();
    let mut columns: Vec<String> = (0..n)
        .map(|i| format!("(SELECT COUNT(*) FROM failures WHERE ip = $1 AND at > $2 AND at > ${})", i + 7))
        .collect();
    columns.push("(SELECT COUNT(*) FROM known_good WHERE ip = $1 AND last_success_at > $3)".into());
    columns.push(
        "(SELECT COUNT(*) FROM bans WHERE ip = $1 AND created_at > $4 AND until_at IS NOT NULL AND rung > 0)"
            .into(),
    );
    let active = "FROM bans WHERE ip = $1 AND released_at IS NULL AND (until_at IS NULL OR until_at > $5)";
    columns.push(format!("(SELECT COUNT(*) {active})"));
    columns.push(format!("(SELECT MAX(CASE WHEN until_at IS NULL THEN $6 ELSE until_at END) {active})"));
    const FOREVER: i64 = i64::MAX;
    let sql = format!("SELECT {}", columns.join(", "));
    let mut query = sqlx::query(&sql)
        .bind(ip)
        .bind(earliest)
        .bind(success_since)
        .bind(timed_bans_since)
        .bind(now)
        .bind(FOREVER);
    for w in failure_windows {
        query = query.bind(*w);
    }
    let row = query.fetch_one(conn).await?;
    let get = |i: usize| sqlx::Row::try_get::<Option<i64>, _>(&row, i);
    let mut failures_since = Vec::with_capacity(n);
    for i in 0..n {
        failures_since.push(get(i)?.unwrap_or(0) as u32);
    }
    let (good, timed, active, longest) = (get(n)?, get(n + 1)?, get(n + 2)?, get(n + 3)?);
    Ok(AddressHistory {
        failures_since,
        succeeded_since: good.unwrap_or(0) > 0,
        timed_bans_since: timed.unwrap_or(0) as u32,
        active_until: (active.unwrap_or(0) > 0).then(|| longest.filter(|&t| t != FOREVER)),
    })
}
