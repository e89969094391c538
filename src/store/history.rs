//! Everything the ladder needs about the addresses of a stretch of log records, read
//! in a few statements ([`facts_for`]) rather than one per failure, and the
//! one-address form it is tested against ([`for_address`]).

use super::{Conn, Result};
use crate::domain::UnixMs;

/// When an admin last released the address of a row of `table`: nothing before counts.
fn forgiven(table: &str) -> String {
    format!("COALESCE((SELECT fg.at FROM forgiven fg WHERE fg.ip = {table}.ip), 0)")
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressHistory {
    /// Stored failures after each of the given instants, in the same order.
    pub failures_since: Vec<u32>,
    pub succeeded_since: bool,
    pub timed_bans_since: u32,
    /// The ban in force: `Some(None)` until released, `Some(Some(t))` until `t`.
    pub active_until: Option<Option<UnixMs>>,
    /// An admin released the address then: failures and bans up to it count no more.
    pub forgiven_at: UnixMs,
}

/// The same facts for one address at one instant, in one statement: the reference
/// that [`facts_for`], which the pipeline uses, is tested against.
pub async fn for_address(
    conn: &mut Conn,
    ip: &str,
    failure_windows: &[UnixMs],
    success_since: UnixMs,
    timed_bans_since: UnixMs,
    now: UnixMs,
) -> Result<AddressHistory> {
    on!(conn, |c| {
        // One statement: the failure counts per window, then the other facts.
        let earliest = failure_windows.iter().copied().min().unwrap_or(now);
        let n = failure_windows.len();
        let mut columns: Vec<String> = (0..n)
            .map(|i| {
                format!(
                    "(SELECT COUNT(*) FROM failures WHERE ip = $1 AND at > $2 AND at > ${} AND at > {})",
                    i + 7,
                    forgiven("failures")
                )
            })
            .collect();
        columns.push("(SELECT COUNT(*) FROM known_good WHERE ip = $1 AND lenient_at > $3)".into());
        columns.push(format!(
        "(SELECT COUNT(*) FROM bans WHERE ip = $1 AND created_at > $4 AND until_at IS NOT NULL AND rung > 0 \
         AND created_at > {})",
        forgiven("bans")
    ));
        let active =
            "FROM bans WHERE ip = $1 AND +released_at IS NULL AND (until_at IS NULL OR until_at > $5)";
        columns.push(format!("(SELECT COUNT(*) {active})"));
        columns.push(format!("(SELECT MAX(CASE WHEN until_at IS NULL THEN $6 ELSE until_at END) {active})"));
        columns.push("(SELECT at FROM forgiven WHERE ip = $1)".into());
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
        let row = query.fetch_one(&mut *c).await?;
        let get = |i: usize| sqlx::Row::try_get::<Option<i64>, _>(&row, i);
        let mut failures_since = Vec::with_capacity(n);
        for i in 0..n {
            failures_since.push(get(i)?.unwrap_or(0) as u32);
        }
        let (good, timed, active, longest) = (get(n)?, get(n + 1)?, get(n + 2)?, get(n + 3)?);
        let forgiven_at = get(n + 4)?.unwrap_or(0);
        Ok(AddressHistory {
            failures_since,
            succeeded_since: good.unwrap_or(0) > 0,
            timed_bans_since: timed.unwrap_or(0) as u32,
            active_until: (active.unwrap_or(0) > 0).then(|| longest.filter(|&t| t != FOREVER)),
            forgiven_at,
        })
    })
}

/// The stretch of time a set of [`AddressFacts`] answers for, and the ladder's
/// windows: all that [`facts_for`] needs to read, once, what [`for_address`] reads
/// for every failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Span {
    /// Earliest and latest instant that will be asked about.
    pub from: UnixMs,
    pub to: UnixMs,
    /// Each rung's window length.
    pub windows: Vec<UnixMs>,
    pub success_for: UnixMs,
    pub repeat_within: UnixMs,
    /// Count only the failures this node stored (`None`: every node's).
    pub node: Option<String>,
}

/// What the store holds about one address for a [`Span`]: [`AddressFacts::at`]
/// gives the same answer as [`for_address`] at any instant of the span, as long as
/// the bans the transaction stores are told to it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddressFacts {
    /// Per window: stored failures after `from - window`.
    failures_from: Vec<u32>,
    /// Per window: times of those failures that leave the window as the instant
    /// moves from `from` to `to`.
    leaving: Vec<Vec<UnixMs>>,
    last_success: Option<UnixMs>,
    /// Creation times of timed ladder bans after `from - repeat_within`.
    timed_bans: Vec<UnixMs>,
    /// Ends of the bans not released and in force at `from` (`None`: until released).
    active: Vec<Option<UnixMs>>,
    forgiven_at: UnixMs,
}

impl AddressFacts {
    pub fn at(&self, span: &Span, at: UnixMs) -> AddressHistory {
        let failures_since = span
            .windows
            .iter()
            .enumerate()
            .map(|(i, w)| {
                let left = self.leaving[i].iter().filter(|&&t| t <= at - w).count() as u32;
                self.failures_from[i] - left
            })
            .collect();
        let in_force: Vec<Option<UnixMs>> =
            self.active.iter().copied().filter(|u| u.is_none_or(|t| t > at)).collect();
        let active_until = match in_force.is_empty() {
            true => None,
            false if in_force.contains(&None) => Some(None),
            false => Some(in_force.into_iter().flatten().max()),
        };
        AddressHistory {
            failures_since,
            succeeded_since: self.last_success.is_some_and(|t| t > at - span.success_for),
            timed_bans_since: self
                .timed_bans
                .iter()
                .filter(|&&c| c > at - span.repeat_within && c > self.forgiven_at)
                .count() as u32,
            active_until,
            forgiven_at: self.forgiven_at,
        }
    }

    /// A failure at `at` (inside the span) stored since the facts were read.
    pub fn failed(&mut self, span: &Span, at: UnixMs) {
        // A release forgives what came before it.
        if at <= self.forgiven_at {
            return;
        }
        for (i, w) in span.windows.iter().enumerate() {
            if at > span.from - w {
                self.failures_from[i] += 1;
            }
            if at <= span.to - w {
                self.leaving[i].push(at);
            }
        }
    }

    /// A success at `at` that earns leniency, stored since the facts were read.
    pub fn succeeded(&mut self, at: UnixMs) {
        self.last_success = self.last_success.max(Some(at));
    }

    /// A ladder ban stored in this transaction at `at`; `superseding` as when the
    /// bans in force were released for it.
    pub fn banned(&mut self, at: UnixMs, until: Option<UnixMs>, superseding: bool) {
        if superseding {
            self.active.retain(|u| u.is_some_and(|t| t <= at));
        }
        if until.is_some() {
            self.timed_bans.push(at);
        }
        self.active.push(until);
    }
}

/// [`AddressFacts`] of many addresses in a few statements (addresses never seen
/// get empty facts).
pub async fn facts_for(
    conn: &mut Conn,
    ips: &[String],
    span: &Span,
) -> Result<std::collections::HashMap<String, AddressFacts>> {
    on!(conn, |c| {
        use sqlx::Row;
        let n = span.windows.len();
        let mut facts: std::collections::HashMap<String, AddressFacts> = ips
            .iter()
            .map(|ip| {
                let empty = AddressFacts {
                    failures_from: vec![0; n],
                    leaving: vec![Vec::new(); n],
                    ..Default::default()
                };
                (ip.clone(), empty)
            })
            .collect();
        // Each distinct window once: rungs and the clean-before-success rule may share one.
        let mut distinct: Vec<UnixMs> = span.windows.clone();
        distinct.sort_unstable();
        distinct.dedup();
        let earliest = span.from - distinct.last().copied().unwrap_or(0);
        for chunk in super::fixed_chunks(ips) {
            // Lenient successes and releases, in one statement.
            let mut q = sqlx::QueryBuilder::new(
                "SELECT CAST(0 AS BIGINT), ip, lenient_at FROM known_good WHERE lenient_at IS NOT NULL AND",
            );
            super::push_in_list(&mut q, "ip", chunk);
            q.push(" UNION ALL SELECT CAST(1 AS BIGINT), ip, at FROM forgiven WHERE");
            super::push_in_list(&mut q, "ip", chunk);
            let mut any_forgiven = false;
            for row in q.build().fetch_all(&mut *c).await? {
                let Some(f) = facts.get_mut(row.try_get::<&str, _>(1)?) else { continue };
                match row.try_get::<i64, _>(0)? {
                    0 => f.last_success = Some(row.try_get(2)?),
                    _ => (f.forgiven_at, any_forgiven) = (row.try_get(2)?, true),
                }
            }
            // Per window: the failures inside it at `from`, and the times of those that
            // leave it before `to` (a list, so that one statement answers for all).
            let mut q = sqlx::QueryBuilder::new("SELECT ip");
            for w in &distinct {
                let (enter, leave) = (span.from - w, span.to - w);
                q.push(", SUM(CASE WHEN at > ").push_bind(enter).push(" THEN 1 ELSE 0 END)");
                q.push(", string_agg(CASE WHEN at > ").push_bind(enter).push(" AND at <= ").push_bind(leave);
                q.push(" THEN CAST(at AS TEXT) END, ',')");
            }
            q.push(" FROM failures WHERE");
            super::push_in_list(&mut q, "ip", chunk);
            q.push(" AND at > ").push_bind(earliest);
            if let Some(node) = &span.node {
                q.push(" AND node = ").push_bind(node.clone());
            }
            if any_forgiven {
                q.push(" AND at > ").push(forgiven("failures"));
            }
            q.push(" GROUP BY ip");
            for row in q.build().fetch_all(&mut *c).await? {
                let Some(f) = facts.get_mut(row.try_get::<&str, _>(0)?) else { continue };
                for (i, w) in span.windows.iter().enumerate() {
                    let column = 1 + 2 * distinct.iter().position(|d| d == w).unwrap_or(0);
                    f.failures_from[i] = row.try_get::<Option<i64>, _>(column)?.unwrap_or(0) as u32;
                    let leaving: Option<&str> = row.try_get(column + 1)?;
                    for t in leaving.unwrap_or("").split(',').filter(|t| !t.is_empty()) {
                        let t =
                            t.parse().map_err(|_| super::StoreError::Corrupt(format!("failure time {t}")))?;
                        f.leaving[i].push(t);
                    }
                }
            }
            let mut q =
                sqlx::QueryBuilder::new("SELECT ip, created_at, until_at, rung, released_at FROM bans WHERE");
            super::push_in_list(&mut q, "ip", chunk);
            let (repeat_from, from) = (span.from - span.repeat_within, span.from);
            q.push(" AND ((until_at IS NOT NULL AND rung > 0 AND created_at > ").push_bind(repeat_from);
            // `+released_at`: otherwise SQLite answers the second half from the index of
            // all bans in force, reading every one of them for each chunk of addresses.
            q.push(") OR (+released_at IS NULL AND (until_at IS NULL OR until_at > ")
                .push_bind(from)
                .push(")))");
            for row in q.build().fetch_all(&mut *c).await? {
                let Some(f) = facts.get_mut(row.try_get::<&str, _>(0)?) else { continue };
                let (created, until): (i64, Option<i64>) = (row.try_get(1)?, row.try_get(2)?);
                let (rung, released): (i64, Option<i64>) = (row.try_get(3)?, row.try_get(4)?);
                if until.is_some() && rung > 0 && created > repeat_from {
                    f.timed_bans.push(created);
                }
                if released.is_none() && until.is_none_or(|t| t > from) {
                    f.active.push(until);
                }
            }
        }
        Ok(facts)
    })
}
