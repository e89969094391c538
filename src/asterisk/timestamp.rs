//! Log dates to unix milliseconds (docs/ASTERISK.md §1.2): `%b %e %T` with the year
//! inferred, `%F %T`, `%F %T.%3q`, ISO-8601 from syslog, and security `EventTV`.

use chrono::{DateTime, Datelike, Local, NaiveDate, NaiveDateTime, TimeZone};

use crate::domain::{DAY_MS, UnixMs};

/// Converts log dates written in the PBX's local time. Dates without a year get the
/// year that puts them closest before `reference` (a line from Dec 31 read on Jan 2
/// belongs to last year). The last conversion is cached because consecutive lines
/// usually share their second.
#[derive(Debug, Clone)]
pub struct Timestamper {
    reference: UnixMs,
    reference_year: i32,
    last: Option<(String, UnixMs)>,
    /// Start of the last hour seen, keyed by the date text up to the hour: minutes and
    /// seconds are then added without a calendar lookup.
    hour: Option<(String, UnixMs)>,
}

impl Timestamper {
    pub fn new(reference: UnixMs) -> Self {
        let year = DateTime::from_timestamp_millis(reference)
            .map(|d| d.with_timezone(&Local).year())
            .unwrap_or(1970);
        Timestamper { reference, reference_year: year, last: None, hour: None }
    }

    pub fn convert(&mut self, date: &str) -> Option<UnixMs> {
        if let Some((d, ms)) = &self.last {
            if d == date {
                return Some(*ms);
            }
        }
        let ms = match self.convert_in_known_hour(date) {
            Some(ms) => ms,
            None => {
                let ms = self.convert_uncached(date.trim())?;
                self.remember_hour(date, ms);
                ms
            }
        };
        self.last = Some((date.to_owned(), ms));
        Some(ms)
    }

    /// `2026-11-24 22:22:58[.422]` or `Nov 24 22:22:58`: the hour prefix, then mm:ss[.fff].
    fn split_hour(date: &str) -> Option<(&str, &str)> {
        let b = date.as_bytes();
        let hour_len = if b.len() >= 19 && b[4] == b'-' && b[10] == b' ' {
            13
        } else if b.len() >= 15 && b[3] == b' ' && b[6] == b' ' {
            9
        } else {
            return None;
        };
        // Log text is attacker-shaped: a multi-byte character may sit where a digit should.
        let (head, tail) = date.split_at_checked(hour_len)?;
        Some((head, tail.strip_prefix(':')?))
    }

    fn minutes_seconds(tail: &str) -> Option<UnixMs> {
        let b = tail.as_bytes();
        let two = |i: usize| -> Option<i64> {
            let (x, y) = (*b.get(i)?, *b.get(i + 1)?);
            (x.is_ascii_digit() && y.is_ascii_digit()).then(|| i64::from(x - b'0') * 10 + i64::from(y - b'0'))
        };
        let (m, sec) = (two(0)?, two(3)?);
        if b.get(2) != Some(&b':') || m > 59 || sec > 60 {
            return None;
        }
        let ms = match &tail[5..] {
            "" => 0,
            frac => {
                let digits = frac.strip_prefix('.')?;
                if digits.is_empty() || digits.len() > 9 || !digits.bytes().all(|c| c.is_ascii_digit()) {
                    return None;
                }
                let padded = format!("{digits:0<3}");
                padded[..3].parse::<i64>().ok()?
            }
        };
        Some(m * 60_000 + sec * 1000 + ms)
    }

    fn convert_in_known_hour(&self, date: &str) -> Option<UnixMs> {
        let (head, tail) = Self::split_hour(date)?;
        let (key, start) = self.hour.as_ref()?;
        (key == head).then_some(())?;
        Some(start + Self::minutes_seconds(tail)?)
    }

    fn remember_hour(&mut self, date: &str, ms: UnixMs) {
        if let Some((head, tail)) = Self::split_hour(date) {
            if let Some(offset) = Self::minutes_seconds(tail) {
                self.hour = Some((head.to_owned(), ms - offset));
            }
        }
    }

    fn convert_uncached(&self, date: &str) -> Option<UnixMs> {
        if let Ok(dt) = DateTime::parse_from_rfc3339(date) {
            return Some(dt.timestamp_millis());
        }
        if let Some(ms) = parse_iso_with_offset(date) {
            return Some(ms);
        }
        for fmt in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S%.f"] {
            if let Ok(naive) = NaiveDateTime::parse_from_str(date, fmt) {
                return local_ms(naive);
            }
        }
        self.convert_without_year(date)
    }

    fn convert_without_year(&self, date: &str) -> Option<UnixMs> {
        // "Nov 24 20:57:57" or "Nov  4 09:01:02": normalise the space-padded day.
        let mut parts = date.split_whitespace();
        let (mon, day, time) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        let parse_in = |year: i32| -> Option<UnixMs> {
            let s = format!("{year} {mon} {day} {time}");
            let naive = NaiveDateTime::parse_from_str(&s, "%Y %b %d %H:%M:%S%.f").ok()?;
            local_ms(naive)
        };
        let this_year = parse_in(self.reference_year);
        match this_year {
            // More than a day ahead of the reference: it was written last year.
            Some(ms) if ms > self.reference + DAY_MS => parse_in(self.reference_year - 1),
            Some(ms) => Some(ms),
            // Feb 29 that does not exist this year.
            None => parse_in(self.reference_year - 1),
        }
    }
}

/// `2026-11-24T22:22:58.422+0000` (security EventTV; offset without a colon).
fn parse_iso_with_offset(s: &str) -> Option<UnixMs> {
    DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f%z").ok().map(|d| d.timestamp_millis())
}

fn local_ms(naive: NaiveDateTime) -> Option<UnixMs> {
    // A repeated hour at the end of DST resolves to its first occurrence.
    Local.from_local_datetime(&naive).earliest().map(|d| d.timestamp_millis())
}

/// Midnight local time of a calendar day, for tests and reports.
pub fn local_midnight(year: i32, month: u32, day: u32) -> Option<UnixMs> {
    local_ms(NaiveDate::from_ymd_opt(year, month, day)?.and_hms_opt(0, 0, 0)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(y: i32, m: u32, d: u32, hms: (u32, u32, u32)) -> UnixMs {
        local_midnight(y, m, d).unwrap() + ((hms.0 * 3600 + hms.1 * 60 + hms.2) as i64) * 1000
    }

    #[test]
    fn default_format_takes_the_reference_year() {
        let mut t = Timestamper::new(at(2026, 11, 27, (9, 0, 0)));
        assert_eq!(t.convert("Nov 24 20:57:57"), Some(at(2026, 11, 24, (20, 57, 57))));
        assert_eq!(t.convert("Nov  4 09:01:02"), Some(at(2026, 11, 4, (9, 1, 2))));
    }

    /// Found by the `log_records` fuzz target: a date with a multi-byte character
    /// where the hour's digits belong panicked instead of being refused.
    #[test]
    fn a_date_with_a_wide_character_inside_is_refused() {
        let mut t = Timestamper::new(at(2026, 11, 27, (9, 0, 0)));
        assert_eq!(t.convert("Nov 24 2\u{FFFD}1:04:50"), None);
        assert_eq!(t.convert("2026-11-24 2\u{FFFD}:04:50"), None);
        assert!(t.convert("Nov 24 21:04:50").is_some());
    }

    #[test]
    fn year_is_inferred_across_new_year() {
        let mut t = Timestamper::new(at(2027, 1, 2, (0, 10, 0)));
        assert_eq!(t.convert("Dec 31 23:59:59"), Some(at(2026, 12, 31, (23, 59, 59))));
        assert_eq!(t.convert("Jan  1 00:00:01"), Some(at(2027, 1, 1, (0, 0, 1))));
    }

    #[test]
    fn iso_forms_with_and_without_milliseconds() {
        let mut t = Timestamper::new(0);
        assert_eq!(t.convert("2026-11-24 22:22:58"), Some(at(2026, 11, 24, (22, 22, 58))));
        assert_eq!(t.convert("2026-11-24 22:22:58.422"), Some(at(2026, 11, 24, (22, 22, 58)) + 422));
        assert_eq!(t.convert("2026-11-24T22:16:11.216+0000"), Some(1_795_558_571_216));
        assert_eq!(t.convert("2026-11-24T22:17:42+00:00"), Some(1_795_558_662_000));
        assert_eq!(t.convert("not a date"), None);
    }
}
