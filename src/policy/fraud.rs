//! The toll-fraud breaker: per extension, over call starts and ends, pure. Fed by the
//! dialplan's lines or the manager interface's events alike.

use std::collections::{HashMap, VecDeque};

use crate::domain::{
    CallEvent, CallStart, DAY_MS, FraudLimits, HOUR_MS, MINUTE_MS, Severity, Threshold, UnixMs,
};

/// A call still "in progress" this long after its start lost its end: forgotten.
const STALE_CALL_MS: UnixMs = 4 * HOUR_MS;
/// How often calls whose end was never seen are looked for.
const PRUNE_EVERY_MS: UnixMs = 10 * MINUTE_MS;
/// A minute without a new call from an extension ends its burst.
const BURST_GAP_MS: UnixMs = MINUTE_MS;
/// Numbers kept per burst for the incident.
const NUMBERS_KEPT: usize = 20;
/// The window of the same-prefix count.
const PREFIX_WINDOW_MS: UnixMs = HOUR_MS;
/// Digits of a number dialled abroad that make its prefix: country code and area.
const PREFIX_DIGITS: usize = 5;

/// An extension's calls crossed a threshold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trip {
    pub at: UnixMs,
    /// `PJSIP`, `SIP`, `IAX2`: where the extension lives.
    pub tech: String,
    pub extension: String,
    pub severity: Severity,
    /// Plain words: "3 international calls at once".
    pub reason: String,
    /// Calls of the burst up to and including the one that tripped.
    pub calls_in_burst: u32,
    /// When the burst's first call started.
    pub burst_started: UnixMs,
    /// Numbers dialled in the burst, in order (the first few).
    pub numbers: Vec<String>,
}

#[derive(Default)]
struct Extension {
    /// Starts within the last minute.
    recent: VecDeque<UnixMs>,
    /// Channels in progress: start and whether the call goes abroad.
    active: HashMap<String, (UnixMs, bool)>,
    burst_calls: u32,
    burst_high_risk: u32,
    numbers: Vec<String>,
    last_start: Option<UnixMs>,
    burst_started: UnixMs,
    /// The highest severity already reported for this burst.
    reported: Option<Severity>,
    /// International calls of the last hour by destination prefix.
    by_prefix: HashMap<String, VecDeque<UnixMs>>,
    /// The highest same-prefix severity reported within the hour.
    prefix_reported: Option<(Severity, UnixMs)>,
}

/// Keeps what the last minutes of calls need, and judges each new call.
pub struct Breaker {
    limits: FraudLimits,
    extensions: HashMap<(String, String), Extension>,
    /// Every channel seen starting, with its extension (`None`: not an extension's
    /// call, such as a trunk's): later steps of the same call are not new calls.
    channels: HashMap<String, (UnixMs, Option<(String, String)>)>,
    /// When forgotten calls are next cleared away.
    next_prune: UnixMs,
    /// Minutes after local midnight at an instant, for the after-hours levels.
    minute_of_day: fn(UnixMs) -> u16,
}

/// The levels in force for one call: the day's or the after-hours ones.
struct Levels {
    calls_per_minute: Threshold,
    concurrent_international: Threshold,
    high_risk_calls: Threshold,
    same_prefix_calls: Threshold,
    /// Said in the reason when the after-hours levels apply.
    note: &'static str,
}

/// Minutes after midnight UTC: the time of day where no local one is given.
fn utc_minute_of_day(at: UnixMs) -> u16 {
    (at.rem_euclid(DAY_MS) / MINUTE_MS) as u16
}

/// How a dialled number is classed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Destination {
    pub international: bool,
    pub high_risk: bool,
}

/// The destination prefix of an international number (`00882232332113` → `88223`).
fn destination_prefix(limits: &FraudLimits, number: &str) -> Option<String> {
    let intl = limits
        .international_prefixes
        .iter()
        .filter(|p| !p.is_empty() && number.starts_with(p.as_str()))
        .max_by_key(|p| p.len())?;
    let rest = &number[intl.len()..];
    (rest.len() > PREFIX_DIGITS).then(|| rest[..PREFIX_DIGITS].to_owned())
}

/// Classes `number` by the limits' prefixes.
pub fn classify(limits: &FraudLimits, number: &str) -> Destination {
    let starts = |list: &[String]| list.iter().any(|p| !p.is_empty() && number.starts_with(p.as_str()));
    let abroad = limits
        .international_prefixes
        .iter()
        .filter(|p| !p.is_empty() && number.starts_with(p.as_str()))
        .max_by_key(|p| p.len())
        .map(|p| &number[p.len()..]);
    match abroad {
        Some(rest) if !starts(&limits.home_prefixes) && rest.len() >= 3 => Destination {
            international: true,
            high_risk: limits
                .high_risk_prefixes
                .iter()
                .any(|p| !p.is_empty() && rest.starts_with(p.as_str())),
        },
        _ => Destination { international: false, high_risk: false },
    }
}

impl Breaker {
    pub fn new(limits: FraudLimits) -> Self {
        Breaker {
            limits,
            extensions: HashMap::new(),
            channels: HashMap::new(),
            next_prune: UnixMs::MIN,
            minute_of_day: utc_minute_of_day,
        }
    }

    /// Judges office hours by `minute_of_day` (the local time of day; UTC otherwise).
    pub fn with_time_of_day(mut self, minute_of_day: fn(UnixMs) -> u16) -> Self {
        self.minute_of_day = minute_of_day;
        self
    }

    fn levels(&self, at: UnixMs) -> Levels {
        let l = &self.limits;
        match l.after_hours.filter(|a| a.covers((self.minute_of_day)(at))) {
            Some(a) => Levels {
                calls_per_minute: a.calls_per_minute,
                concurrent_international: a.concurrent_international,
                high_risk_calls: a.high_risk_calls,
                same_prefix_calls: a.same_prefix_calls,
                note: " after hours",
            },
            None => Levels {
                calls_per_minute: l.calls_per_minute,
                concurrent_international: l.concurrent_international,
                high_risk_calls: l.high_risk_calls,
                same_prefix_calls: l.same_prefix_calls,
                note: "",
            },
        }
    }

    /// Takes one call event at `at`; a start may trip the breaker.
    pub fn observe(&mut self, at: UnixMs, event: &CallEvent) -> Option<Trip> {
        match event {
            CallEvent::Start(start) => self.start(at, start),
            CallEvent::End { channel } => {
                if let Some((_, Some(owner))) = self.channels.remove(channel) {
                    if let Some(ext) = self.extensions.get_mut(&owner) {
                        ext.active.remove(channel);
                    }
                }
                None
            }
        }
    }

    /// The extension a channel in progress belongs to: (tech, extension).
    pub fn owner(&self, channel: &str) -> Option<&(String, String)> {
        self.channels.get(channel).and_then(|(_, owner)| owner.as_ref())
    }

    /// Calls in progress for an extension now.
    pub fn active_channels(&self, tech: &str, extension: &str) -> Vec<String> {
        self.extensions
            .get(&(tech.to_owned(), extension.to_owned()))
            .map(|e| e.active.keys().cloned().collect())
            .unwrap_or_default()
    }

    fn start(&mut self, at: UnixMs, call: &CallStart) -> Option<Trip> {
        if self.channels.contains_key(&call.channel) {
            return None;
        }
        // Calls whose end was never seen are forgotten now and then, not on every call.
        if at >= self.next_prune {
            self.channels.retain(|_, (since, _)| at - *since < STALE_CALL_MS);
            for ext in self.extensions.values_mut() {
                ext.active.retain(|_, (since, _)| at - *since < STALE_CALL_MS);
            }
            self.extensions.retain(|_, e| {
                !e.active.is_empty() || e.last_start.is_some_and(|t| at - t < PREFIX_WINDOW_MS)
            });
            self.next_prune = at + PRUNE_EVERY_MS;
        }
        if self.limits.inbound_contexts.iter().any(|c| c == &call.context) {
            self.channels.insert(call.channel.clone(), (at, None));
            return None;
        }
        let key = (call.tech.clone(), call.endpoint.clone());
        self.channels.insert(call.channel.clone(), (at, Some(key.clone())));
        let destination = classify(&self.limits, &call.number);
        let levels = self.levels(at);
        let ext = self.extensions.entry(key).or_default();
        if ext.last_start.is_none_or(|last| at - last > BURST_GAP_MS) {
            *ext = Extension {
                active: std::mem::take(&mut ext.active),
                by_prefix: std::mem::take(&mut ext.by_prefix),
                prefix_reported: ext.prefix_reported,
                ..Extension::default()
            };
        }
        let same_prefix =
            match destination_prefix(&self.limits, &call.number).filter(|_| destination.international) {
                Some(prefix) => {
                    let calls = ext.by_prefix.entry(prefix).or_default();
                    while calls.front().is_some_and(|&t| at - t >= PREFIX_WINDOW_MS) {
                        calls.pop_front();
                    }
                    calls.push_back(at);
                    calls.len() as u32
                }
                None => 0,
            };
        if ext.by_prefix.len() > 256 {
            ext.by_prefix.retain(|_, calls| calls.back().is_some_and(|&t| at - t < PREFIX_WINDOW_MS));
        }
        ext.last_start = Some(at);
        ext.active.insert(call.channel.clone(), (at, destination.international));
        while ext.recent.front().is_some_and(|&t| at - t >= MINUTE_MS) {
            ext.recent.pop_front();
        }
        ext.recent.push_back(at);
        if ext.burst_calls == 0 {
            ext.burst_started = at;
        }
        ext.burst_calls += 1;
        ext.burst_high_risk += u32::from(destination.high_risk);
        if ext.numbers.len() < NUMBERS_KEPT {
            ext.numbers.push(call.number.clone());
        }
        let abroad_now = ext.active.values().filter(|(_, international)| *international).count() as u32;
        let per_minute = ext.recent.len() as u32;
        let measures = [
            (
                levels.concurrent_international.reached(abroad_now),
                format!("{abroad_now} international calls at once{}", levels.note),
            ),
            (
                levels.calls_per_minute.reached(per_minute),
                format!("{per_minute} calls within a minute{}", levels.note),
            ),
            (
                levels.high_risk_calls.reached(ext.burst_high_risk),
                format!(
                    "{} call{} to high-risk destinations{}",
                    ext.burst_high_risk,
                    if ext.burst_high_risk == 1 { "" } else { "s" },
                    levels.note
                ),
            ),
        ];
        let burst = measures.into_iter().filter_map(|(s, why)| s.map(|s| (s, why))).max_by_key(|(s, _)| *s);
        // The same-prefix count spans bursts: told once per severity within its hour.
        let slow = levels
            .same_prefix_calls
            .reached(same_prefix)
            .filter(|s| ext.prefix_reported.is_none_or(|(r, t)| *s > r || at - t >= PREFIX_WINDOW_MS));
        let slow_reason = || format!("{same_prefix} calls to one destination within an hour{}", levels.note);
        let (severity, reason) = match (burst, slow) {
            (Some(b), Some(s)) if s > b.0 => (s, slow_reason()),
            (Some(b), _) => b,
            (None, Some(s)) => (s, slow_reason()),
            (None, None) => return None,
        };
        let new_in_burst = ext.reported.is_none_or(|r| severity > r);
        let new_slow = slow.is_some_and(|s| s >= severity);
        if !new_in_burst && !new_slow {
            return None;
        }
        ext.reported = Some(ext.reported.map_or(severity, |r| r.max(severity)));
        if let Some(s) = slow {
            ext.prefix_reported = Some((s, at));
        }
        Some(Trip {
            at,
            tech: call.tech.clone(),
            extension: call.endpoint.clone(),
            severity,
            reason,
            calls_in_burst: ext.burst_calls,
            burst_started: ext.burst_started,
            numbers: ext.numbers.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::SECOND_MS;

    fn call(seq: u32, ext: &str, number: &str) -> CallEvent {
        CallEvent::Start(CallStart {
            channel: format!("PJSIP/{ext}-{seq:08x}"),
            tech: "PJSIP".into(),
            endpoint: ext.into(),
            number: number.into(),
            context: "from-internal".into(),
        })
    }

    fn end(seq: u32, ext: &str) -> CallEvent {
        CallEvent::End { channel: format!("PJSIP/{ext}-{seq:08x}") }
    }

    #[test]
    fn numbers_are_classed_by_prefix() {
        let mut limits = FraudLimits::default();
        let c = |l: &FraudLimits, n: &str| {
            let d = classify(l, n);
            (d.international, d.high_risk)
        };
        assert_eq!(c(&limits, "5551234"), (false, false));
        assert_eq!(c(&limits, "0049301234567"), (true, false));
        assert_eq!(c(&limits, "00882232332113"), (true, true));
        assert_eq!(c(&limits, "+8823"), (true, true));
        assert_eq!(c(&limits, "0118823456"), (true, true));
        assert_eq!(c(&limits, "0096198590318"), (true, false));
        assert_eq!(c(&limits, "009607654321"), (true, true));
        limits.home_prefixes = vec!["0049".into()];
        assert_eq!(c(&limits, "0049301234567"), (false, false));
    }

    /// The recorded fraud: one international call every 0.5 s, each lasting 3.5 s.
    #[test]
    fn a_burst_of_international_calls_trips_within_three_calls() {
        let mut b = Breaker::new(FraudLimits::default());
        let numbers =
            ["00882232332113", "00441664119743", "0096198590318", "0115766836798", "00882773496580"];
        let mut trips = Vec::new();
        let mut events = Vec::new();
        for (i, n) in numbers.iter().enumerate() {
            events.push((i as i64 * 500, call(i as u32, "1002", n)));
            events.push((i as i64 * 500 + 3500, end(i as u32, "1002")));
        }
        events.sort_by_key(|(at, _)| *at);
        for (at, e) in &events {
            trips.extend(b.observe(*at, e));
        }
        let critical = trips.iter().find(|t| t.severity == Severity::Critical).expect("tripped");
        assert!(critical.calls_in_burst <= 3, "{critical:?}");
        assert_eq!(critical.extension, "1002");
        assert_eq!(
            trips.iter().filter(|t| t.severity == Severity::Critical).count(),
            1,
            "told once per burst"
        );
    }

    /// Calls to ordinary national numbers, one after another, also trip: five within a minute.
    #[test]
    fn five_calls_within_a_minute_trip_even_at_home() {
        let mut b = Breaker::new(FraudLimits::default());
        let mut worst = None;
        for i in 0..5 {
            let at = i * 10 * SECOND_MS;
            if let Some(t) = b.observe(at, &call(i as u32, "2001", "5550100")) {
                worst = Some(t);
            }
            b.observe(at + 5 * SECOND_MS, &end(i as u32, "2001"));
        }
        let t = worst.expect("tripped");
        assert_eq!((t.severity, t.calls_in_burst), (Severity::Critical, 5));
    }

    /// After hours (19:00 to 07:00 here) two calls within a minute already stop an
    /// extension; by day the same two calls are ordinary.
    #[test]
    fn after_hours_levels_apply_only_while_the_office_is_closed() {
        let mut limits = FraudLimits::default();
        let strict = Threshold { warning: 0, critical: 2 };
        limits.after_hours = Some(crate::domain::AfterHours {
            from_minute: 19 * 60,
            to_minute: 7 * 60,
            calls_per_minute: strict,
            concurrent_international: limits.concurrent_international,
            high_risk_calls: limits.high_risk_calls,
            same_prefix_calls: limits.same_prefix_calls,
        });
        let two_calls = |start: UnixMs| {
            let mut b = Breaker::new(limits.clone());
            let first = b.observe(start, &call(1, "1001", "5550100"));
            b.observe(start + 5 * SECOND_MS, &end(1, "1001"));
            first.or(b.observe(start + 20 * SECOND_MS, &call(2, "1001", "5550101")))
        };
        let day = 1_796_161_600_000 - 1_796_161_600_000 % DAY_MS;
        for (hour, stopped) in [(3, true), (19, true), (6, true), (7, false), (12, false), (18, false)] {
            let trip = two_calls(day + hour * HOUR_MS);
            assert_eq!(trip.is_some(), stopped, "at {hour}:00");
            if let Some(t) = trip {
                assert_eq!(t.severity, Severity::Critical);
                assert!(t.reason.ends_with("after hours"), "{}", t.reason);
            }
        }
    }

    /// An office: a call every 20 s from two phones, one of them abroad now and then,
    /// each call a few minutes long.
    #[test]
    fn an_office_day_trips_nothing() {
        let mut b = Breaker::new(FraudLimits::default());
        let mut events = Vec::new();
        for i in 0..200u32 {
            let ext = if i % 2 == 0 { "1001" } else { "1003" };
            let number = if i % 7 == 0 { "0049301234567" } else { "5551234" };
            let at = i as i64 * 40 * SECOND_MS;
            events.push((at, call(i, ext, number)));
            events.push((at + 30 * SECOND_MS, end(i, ext)));
        }
        events.sort_by_key(|(at, _)| *at);
        for (at, e) in &events {
            assert_eq!(b.observe(*at, e), None);
        }
    }

    /// Fraud slow enough for the per-minute count: one call to the same satellite range
    /// every 3 minutes.
    #[test]
    fn slow_calls_to_one_destination_trip_within_the_hour() {
        let limits = FraudLimits {
            high_risk_calls: crate::domain::Threshold { warning: 0, critical: 0 },
            ..FraudLimits::default()
        };
        let mut b = Breaker::new(limits);
        let mut trips = Vec::new();
        for i in 0..16u32 {
            let at = i64::from(i) * 3 * MINUTE_MS;
            trips.extend(b.observe(at, &call(i, "1002", &format!("008822323{i:05}"))));
            b.observe(at + 60_000, &end(i, "1002"));
        }
        let severities: Vec<Severity> = trips.iter().map(|t| t.severity).collect();
        assert_eq!(severities, [Severity::Warning, Severity::Critical], "{trips:?}");
        assert!(trips[1].reason.contains("15 calls to one destination"), "{}", trips[1].reason);
    }

    #[test]
    fn later_steps_of_one_call_and_calls_from_trunks_are_not_new_calls() {
        let mut b = Breaker::new(FraudLimits::default());
        for step in 0..10 {
            assert_eq!(b.observe(step, &call(1, "1001", "5551234")), None);
        }
        assert_eq!(b.active_channels("PJSIP", "1001"), ["PJSIP/1001-00000001"]);
        for i in 0..10 {
            let inbound = CallEvent::Start(CallStart {
                channel: format!("PJSIP/provider-{i:08x}"),
                tech: "PJSIP".into(),
                endpoint: "provider".into(),
                number: "00882123456".into(),
                context: "from-trunk".into(),
            });
            assert_eq!(b.observe(i, &inbound), None);
        }
    }
}
