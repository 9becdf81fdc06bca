//! Maintenance windows: when a host may start patching.
//!
//! A window opens at the starts of a recurring schedule on the wall clock of an IANA time zone and
//! stays open for a duration of real time. Two schedule kinds:
//! - `cron`: five fields (minute, hour, day of month, month, day of week) with lists, ranges,
//!   steps and names (`30 2 * * sun`, `0 22 * * mon-fri`); when both day fields are restricted a
//!   day matching either matches (as cron does);
//! - `nth_weekday`: the Nth (1–5, or -1 for the last) weekday of each month plus an offset in days,
//!   at a time of day — "second Tuesday + 6 days" is the Monday after Patch Tuesday.
//!
//! Daylight saving: a start time the clock skips (02:30 on the night clocks go forward) opens the
//! window at the same distance after the change (03:30), so no week loses its window; a start time
//! that occurs twice (the night clocks go back) opens it once, at the first occurrence. The duration
//! is elapsed time: a four-hour window is four hours long on those nights too. (systemd timers skip
//! a skipped start instead; `tests/windows.rs` compares with `systemd-analyze calendar` elsewhere.)
//!
//! Blackouts are periods (wall clock of the window's zone) in which nothing starts; a window that
//! runs into one ends early. A host starts work only when the window is open and the time left
//! before it closes covers the work's expected duration ([`MaintenanceWindow::may_start`]).

use std::collections::BTreeSet;

use jiff::civil::{Date, DateTime, Time, Weekday};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp, ToSpan};
use serde::{Deserialize, Serialize};

/// A window as configured (TOML or JSON).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowSpec {
    pub name: String,
    /// IANA time zone (`Europe/Berlin`, `America/New_York`, `UTC`).
    pub timezone: String,
    pub schedule: ScheduleSpec,
    /// How long the window stays open: `90m`, `4h`, `1d` (elapsed time).
    pub duration: String,
    /// Periods in which nothing starts, as wall-clock times of the window's zone.
    #[serde(default)]
    pub blackouts: Vec<BlackoutSpec>,
    /// The host groups this window applies to.
    #[serde(default)]
    pub groups: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum ScheduleSpec {
    /// `minute hour day-of-month month day-of-week`.
    Cron(String),
    NthWeekday {
        /// 1 to 5, or -1 for the last one of the month.
        nth: i8,
        /// `monday` … `sunday` (or `mon` … `sun`).
        weekday: String,
        /// Days added to that weekday (may be negative).
        #[serde(default)]
        offset_days: i32,
        /// Time of day the window opens, `HH:MM`.
        at: String,
    },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlackoutSpec {
    /// `2026-12-20T00:00`, wall clock of the window's zone.
    pub from: String,
    pub to: String,
    #[serde(default)]
    pub reason: Option<String>,
}

/// A configuration mistake, naming the window and the field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WindowError {
    pub window: String,
    pub field: &'static str,
    pub problem: String,
}

impl std::fmt::Display for WindowError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "maintenance window {:?}: {}: {}",
            self.window, self.field, self.problem
        )
    }
}

impl std::error::Error for WindowError {}

/// One opening of a window: `[start, end)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Opening {
    pub start: Timestamp,
    pub end: Timestamp,
}

/// Whether work expected to take some time may start now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartDecision {
    /// Open, and it stays open long enough; closes at `closes`.
    Start { closes: Timestamp },
    /// Open, but it closes (or a blackout begins) before the work would end.
    TooShort {
        closes: Timestamp,
        next: Option<Opening>,
    },
    /// Not open now (or in a blackout); the next opening long enough for the work.
    Closed { next: Option<Opening> },
}

/// A parsed, checked window.
#[derive(Clone, Debug)]
pub struct MaintenanceWindow {
    pub name: String,
    pub groups: Vec<String>,
    zone: TimeZone,
    schedule: Schedule,
    duration: SignedDuration,
    blackouts: Vec<(Timestamp, Timestamp)>,
}

#[derive(Clone, Debug)]
enum Schedule {
    Cron(Cron),
    NthWeekday {
        nth: i8,
        weekday: Weekday,
        offset_days: i32,
        at: Time,
    },
}

/// How far ahead a search for the next start looks (a `29 2` schedule fires once in four years).
const SEARCH_DAYS: i32 = 366 * 8 + 2;

impl MaintenanceWindow {
    pub fn parse(spec: &WindowSpec) -> Result<MaintenanceWindow, WindowError> {
        let err = |field: &'static str, problem: String| WindowError {
            window: spec.name.clone(),
            field,
            problem,
        };
        let zone = TimeZone::get(&spec.timezone).map_err(|e| {
            err(
                "timezone",
                format!("{:?} is not a known IANA time zone ({e})", spec.timezone),
            )
        })?;
        let duration = parse_duration(&spec.duration).map_err(|p| err("duration", p))?;
        let schedule = match &spec.schedule {
            ScheduleSpec::Cron(text) => {
                Schedule::Cron(Cron::parse(text).map_err(|p| err("schedule.cron", p))?)
            }
            ScheduleSpec::NthWeekday {
                nth,
                weekday,
                offset_days,
                at,
            } => {
                if !(1..=5).contains(nth) && *nth != -1 {
                    return Err(err(
                        "schedule.nth_weekday.nth",
                        format!("{nth}: expected 1 to 5, or -1 for the last"),
                    ));
                }
                if offset_days.abs() > 366 {
                    return Err(err(
                        "schedule.nth_weekday.offset_days",
                        format!("{offset_days}: more than a year"),
                    ));
                }
                Schedule::NthWeekday {
                    nth: *nth,
                    weekday: parse_weekday(weekday).ok_or_else(|| {
                        err(
                            "schedule.nth_weekday.weekday",
                            format!("{weekday:?}: not a weekday"),
                        )
                    })?,
                    offset_days: *offset_days,
                    at: parse_time_of_day(at).map_err(|p| err("schedule.nth_weekday.at", p))?,
                }
            }
        };
        let mut blackouts = Vec::new();
        for (i, b) in spec.blackouts.iter().enumerate() {
            let local = |text: &str| -> Result<Timestamp, WindowError> {
                let civil: DateTime = text.parse().map_err(|e| {
                    err(
                        "blackouts",
                        format!(
                            "#{}: {text:?} is not a local date-time like 2026-12-20T00:00 ({e})",
                            i + 1
                        ),
                    )
                })?;
                civil
                    .to_zoned(zone.clone())
                    .map(|z| z.timestamp())
                    .map_err(|e| err("blackouts", format!("#{}: {text:?}: {e}", i + 1)))
            };
            let (from, to) = (local(&b.from)?, local(&b.to)?);
            if to <= from {
                return Err(err(
                    "blackouts",
                    format!("#{}: ends ({}) before it begins ({})", i + 1, b.to, b.from),
                ));
            }
            blackouts.push((from, to));
        }
        blackouts.sort();
        Ok(MaintenanceWindow {
            name: spec.name.clone(),
            groups: spec.groups.clone(),
            zone,
            schedule,
            duration,
            blackouts,
        })
    }

    /// The window's length (elapsed time).
    pub fn duration(&self) -> SignedDuration {
        self.duration
    }

    /// Schedule starts strictly after `after`, in order (before blackouts are applied).
    pub fn starts_after(&self, after: Timestamp) -> impl Iterator<Item = Timestamp> + '_ {
        let mut cursor = after;
        std::iter::from_fn(move || {
            let next = self.next_start(cursor)?;
            cursor = next;
            Some(next)
        })
    }

    /// The first schedule start strictly after `after`.
    fn next_start(&self, after: Timestamp) -> Option<Timestamp> {
        let local_day = after.to_zoned(self.zone.clone()).date();
        match &self.schedule {
            Schedule::Cron(cron) => {
                // From the day before (a shifted start may fall after midnight), day by day.
                let mut day = local_day.checked_sub(1.day()).ok()?;
                for _ in 0..SEARCH_DAYS {
                    if cron.matches_date(day) {
                        for &h in &cron.hours {
                            for &m in &cron.minutes {
                                let t =
                                    self.instant(day, Time::new(h as i8, m as i8, 0, 0).ok()?)?;
                                if t > after {
                                    return Some(t);
                                }
                            }
                        }
                    }
                    day = day.tomorrow().ok()?;
                }
                None
            }
            Schedule::NthWeekday {
                nth,
                weekday,
                offset_days,
                at,
            } => {
                // Months from the one an offset could reach back from.
                let back = (offset_days.unsigned_abs() / 28 + 2) as i32;
                let mut month = local_day.first_of_month().checked_sub(back.months()).ok()?;
                for _ in 0..(SEARCH_DAYS / 28) {
                    let base = month.nth_weekday_of_month(*nth, *weekday).ok();
                    if let Some(day) = base.and_then(|d| d.checked_add(offset_days.days()).ok()) {
                        if let Some(t) = self.instant(day, *at) {
                            if t > after {
                                return Some(t);
                            }
                        }
                    }
                    month = month.checked_add(1.month()).ok()?;
                }
                None
            }
        }
    }

    /// A wall-clock time of the zone as an instant: a skipped time moves forward by the gap, a
    /// repeated one takes its first occurrence (jiff's "compatible" disambiguation).
    fn instant(&self, day: Date, time: Time) -> Option<Timestamp> {
        day.to_datetime(time)
            .to_zoned(self.zone.clone())
            .ok()
            .map(|z| z.timestamp())
    }

    /// The opening containing `t` (start ≤ t < end, cut short by a blackout), if any.
    pub fn opening_at(&self, t: Timestamp) -> Option<Opening> {
        if self.in_blackout(t).is_some() {
            return None;
        }
        // The latest start not after t: starts after t - duration, up to t.
        let since = t.checked_sub(self.duration).ok()?;
        let mut last = None;
        for start in self.starts_after(since) {
            if start > t {
                break;
            }
            last = Some(start);
        }
        let start = last?;
        let end = self.cut_by_blackouts(start, start.checked_add(self.duration).ok()?);
        (t < end).then_some(Opening { start, end })
    }

    /// The first opening after `after` whose length (after blackouts) covers `expected`.
    pub fn next_opening(&self, after: Timestamp, expected: SignedDuration) -> Option<Opening> {
        for start in self.starts_after(after).take(10_000) {
            let end = start.checked_add(self.duration).ok()?;
            // A start inside a blackout opens when the blackout ends (if still before `end`).
            let begin = match self.in_blackout(start) {
                Some(until) => until,
                None => start,
            };
            if begin >= end {
                continue;
            }
            let end = self.cut_by_blackouts(begin, end);
            if end.duration_since(begin) >= expected {
                return Some(Opening { start: begin, end });
            }
        }
        None
    }

    /// Whether work expected to take `expected` may start at `now`.
    pub fn may_start(&self, now: Timestamp, expected: SignedDuration) -> StartDecision {
        match self.opening_at(now) {
            Some(open) if open.end.duration_since(now) >= expected => {
                StartDecision::Start { closes: open.end }
            }
            Some(open) => StartDecision::TooShort {
                closes: open.end,
                next: self.next_opening(now, expected),
            },
            None => StartDecision::Closed {
                next: self.next_opening(now, expected),
            },
        }
    }

    /// The end of the blackout `t` is in, if it is in one.
    fn in_blackout(&self, t: Timestamp) -> Option<Timestamp> {
        self.blackouts
            .iter()
            .filter(|(from, to)| *from <= t && t < *to)
            .map(|(_, to)| *to)
            .max()
    }

    /// `end`, or the start of the first blackout beginning inside `[start, end)`.
    fn cut_by_blackouts(&self, start: Timestamp, end: Timestamp) -> Timestamp {
        self.blackouts
            .iter()
            .filter(|(from, _)| start < *from && *from < end)
            .map(|(from, _)| *from)
            .min()
            .unwrap_or(end)
    }
}

/// `90m`, `4h`, `1d`, `3600s`, `2h30m`.
pub fn parse_duration(text: &str) -> Result<SignedDuration, String> {
    let mut total: i64 = 0;
    let mut number = String::new();
    let mut any = false;
    for c in text.trim().chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86400,
            _ => return Err(format!("{text:?}: unknown unit {c:?} (s, m, h, d)")),
        };
        let n: i64 = number
            .parse()
            .map_err(|_| format!("{text:?}: expected a number before {c:?}"))?;
        total = n
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(|| format!("{text:?}: too long"))?;
        number.clear();
        any = true;
    }
    if !number.is_empty() || !any {
        return Err(format!("{text:?}: expected a duration like 90m, 4h or 1d"));
    }
    if total <= 0 {
        return Err(format!("{text:?}: must be longer than zero"));
    }
    Ok(SignedDuration::from_secs(total))
}

fn parse_time_of_day(text: &str) -> Result<Time, String> {
    let (h, m) = text
        .split_once(':')
        .ok_or_else(|| format!("{text:?}: expected HH:MM"))?;
    let (h, m): (i8, i8) = (
        h.parse().map_err(|_| format!("{text:?}: bad hour"))?,
        m.parse().map_err(|_| format!("{text:?}: bad minute"))?,
    );
    Time::new(h, m, 0, 0).map_err(|_| format!("{text:?}: not a time of day"))
}

fn parse_weekday(text: &str) -> Option<Weekday> {
    let t = text.to_ascii_lowercase();
    let all = [
        ("mon", Weekday::Monday),
        ("tue", Weekday::Tuesday),
        ("wed", Weekday::Wednesday),
        ("thu", Weekday::Thursday),
        ("fri", Weekday::Friday),
        ("sat", Weekday::Saturday),
        ("sun", Weekday::Sunday),
    ];
    all.iter()
        .find(|(short, w)| t == *short || t == format!("{w:?}").to_ascii_lowercase())
        .map(|(_, w)| *w)
}

/// A five-field cron schedule, evaluated on the civil calendar.
#[derive(Clone, Debug)]
struct Cron {
    minutes: BTreeSet<u8>,
    hours: BTreeSet<u8>,
    days_of_month: BTreeSet<u8>,
    months: BTreeSet<u8>,
    /// 0 = Sunday.
    days_of_week: BTreeSet<u8>,
    dom_restricted: bool,
    dow_restricted: bool,
}

impl Cron {
    fn parse(text: &str) -> Result<Cron, String> {
        let fields: Vec<&str> = text.split_whitespace().collect();
        if fields.len() != 5 {
            return Err(format!(
                "{text:?}: expected five fields (minute hour day-of-month month day-of-week), found {}",
                fields.len()
            ));
        }
        const MONTHS: [&str; 12] = [
            "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
        ];
        const DAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];
        let mut days_of_week = field(fields[4], "day of week", 0, 7, &DAYS, 0)?;
        if days_of_week.remove(&7) {
            days_of_week.insert(0);
        }
        Ok(Cron {
            minutes: field(fields[0], "minute", 0, 59, &[], 0)?,
            hours: field(fields[1], "hour", 0, 23, &[], 0)?,
            days_of_month: field(fields[2], "day of month", 1, 31, &[], 1)?,
            months: field(fields[3], "month", 1, 12, &MONTHS, 1)?,
            days_of_week,
            dom_restricted: fields[2] != "*",
            dow_restricted: fields[4] != "*",
        })
    }

    fn matches_date(&self, day: Date) -> bool {
        if !self.months.contains(&(day.month() as u8)) {
            return false;
        }
        let dom = self.days_of_month.contains(&(day.day() as u8));
        let dow = self
            .days_of_week
            .contains(&(day.weekday().to_sunday_zero_offset() as u8));
        match (self.dom_restricted, self.dow_restricted) {
            (true, true) => dom || dow,
            (true, false) => dom,
            (false, true) => dow,
            (false, false) => true,
        }
    }
}

/// One cron field: `*`, `5`, `1-5`, `*/15`, `10-50/10`, lists of those, names (`mon`, `jan`).
fn field(
    text: &str,
    what: &str,
    min: u8,
    max: u8,
    names: &[&str],
    first_name: u8,
) -> Result<BTreeSet<u8>, String> {
    let value = |v: &str| -> Result<u8, String> {
        let lower = v.to_ascii_lowercase();
        if let Some(i) = names.iter().position(|n| *n == lower) {
            return Ok(i as u8 + first_name);
        }
        let n: u8 = v.parse().map_err(|_| {
            format!(
                "{what} {v:?}: not a number{}",
                if names.is_empty() { "" } else { " or name" }
            )
        })?;
        if n < min || n > max {
            return Err(format!("{what} {n}: outside {min}-{max}"));
        }
        Ok(n)
    };
    let mut out = BTreeSet::new();
    for part in text.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => (
                r,
                s.parse::<u8>()
                    .ok()
                    .filter(|s| *s > 0)
                    .ok_or_else(|| format!("{what} {part:?}: bad step"))?,
            ),
            None => (part, 1),
        };
        let (lo, hi) = if range == "*" {
            (min, max)
        } else if let Some((a, b)) = range.split_once('-') {
            (value(a)?, value(b)?)
        } else {
            let v = value(range)?;
            (v, if part.contains('/') { max } else { v })
        };
        if lo > hi {
            return Err(format!("{what} {part:?}: range runs backwards"));
        }
        out.extend((lo..=hi).step_by(step as usize));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cron_fields_parse_like_cron() {
        let c = Cron::parse("*/15 2,4-5 * jan-mar mon-fri").unwrap();
        assert_eq!(c.minutes, BTreeSet::from([0, 15, 30, 45]));
        assert_eq!(c.hours, BTreeSet::from([2, 4, 5]));
        assert_eq!(c.months, BTreeSet::from([1, 2, 3]));
        assert_eq!(c.days_of_week, BTreeSet::from([1, 2, 3, 4, 5]));
        assert_eq!(
            Cron::parse("0 0 * * 7").unwrap().days_of_week,
            BTreeSet::from([0])
        );
        for bad in [
            "0 0 * *",
            "60 0 * * *",
            "0 0 0 * *",
            "0 0 * * funday",
            "5-1 * * * *",
            "*/0 * * * *",
        ] {
            assert!(Cron::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn durations_need_a_unit_and_a_length() {
        assert_eq!(parse_duration("2h30m"), Ok(SignedDuration::from_secs(9000)));
        assert_eq!(parse_duration("1d"), Ok(SignedDuration::from_secs(86400)));
        for bad in ["", "4", "h", "0h", "4x"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
