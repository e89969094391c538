//! Log dates to unix milliseconds (REFERENCE §1.2): `%b %e %T` with the year
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
}

impl Timestamper {
    pub fn new(reference: UnixMs) -> Self {
        let year = DateTime::from_timestamp_millis(reference)
            .map(|d| d.with_timezone(&Local).year())
            .unwrap_or(1970);
        Timestamper {
            reference,
            reference_year: year,
            last: None,
        }
    }

    pub fn convert(&mut self, date: &str) -> Option<UnixMs> {
        if let Some((d, ms)) = &self.last {
            if d == date {
                return Some(*ms);
            }
        }
        let ms = self.convert_uncached(date.trim())?;
        self.last = Some((date.to_owned(), ms));
        Some(ms)
    }

    fn convert_uncached(&self, date: &str) -> Option<UnixMs> {
        if let Ok(dt) = DateTime::parse_from_rfc3339(date) {
            return Some(dt.timestamp_millis());
        }
        if let Some(ms) = parse_iso_with_offset(date) {
            return Some(ms);
        }
        for fmt in [
            "%Y-%m-%d %H:%M:%S%.f",
            "%Y-%m-%d %H:%M:%S",
            "%Y-%m-%dT%H:%M:%S%.f",
        ] {
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
    DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f%z")
        .ok()
        .map(|d| d.timestamp_millis())
}

fn local_ms(naive: NaiveDateTime) -> Option<UnixMs> {
    // A repeated hour at the end of DST resolves to its first occurrence.
    Local
        .from_local_datetime(&naive)
        .earliest()
        .map(|d| d.timestamp_millis())
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
        assert_eq!(
            t.convert("Nov 24 20:57:57"),
            Some(at(2026, 11, 24, (20, 57, 57)))
        );
        assert_eq!(
            t.convert("Nov  4 09:01:02"),
            Some(at(2026, 11, 4, (9, 1, 2)))
        );
    }

    #[test]
    fn year_is_inferred_across_new_year() {
        let mut t = Timestamper::new(at(2027, 1, 2, (0, 10, 0)));
        assert_eq!(
            t.convert("Dec 31 23:59:59"),
            Some(at(2026, 12, 31, (23, 59, 59)))
        );
        assert_eq!(
            t.convert("Jan  1 00:00:01"),
            Some(at(2027, 1, 1, (0, 0, 1)))
        );
    }

    #[test]
    fn iso_forms_with_and_without_milliseconds() {
        let mut t = Timestamper::new(0);
        assert_eq!(
            t.convert("2026-11-24 22:22:58"),
            Some(at(2026, 11, 24, (22, 22, 58)))
        );
        assert_eq!(
            t.convert("2026-11-24 22:22:58.422"),
            Some(at(2026, 11, 24, (22, 22, 58)) + 422)
        );
        assert_eq!(
            t.convert("2026-11-24T22:16:11.216+0000"),
            Some(1_795_558_571_216)
        );
        assert_eq!(
            t.convert("2026-11-24T22:17:42+00:00"),
            Some(1_795_558_662_000)
        );
        assert_eq!(t.convert("not a date"), None);
    }
}
