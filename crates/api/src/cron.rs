//! Cron schedules as upstream reads them: robfig/cron v3's standard parser (`cron.ParseStandard`)
//! and its `Next`, on jiff. One parser for the API server, which validates `spec.schedule` with
//! it (upstream's `validateScheduleFormat`), and for the CronJob controller, which runs it.
//!
//! Five fields — minute, hour, day of month, month, day of week — each a comma list of `*`,
//! `?`, `N`, `N-M`, with an optional `/step` (`N/step` means `N-max/step`); months and weekdays
//! also by name (`jan`, `sun`, any case; weekdays 0-6). The descriptors `@yearly`/`@annually`,
//! `@monthly`, `@weekly`, `@daily`/`@midnight`, `@hourly` and `@every <Go duration>`, and a
//! leading `TZ=<zone>` or `CRON_TZ=<zone>` (which the controller itself builds from
//! `spec.timeZone`).
//!
//! Two cron details robfig has and this keeps:
//! - Day of month and day of week: when either field starts with `*` or `?` (and has no step
//!   above 1), a day must match both; otherwise either. So `0 0 1 * MON` runs on the 1st and
//!   on Mondays, `0 0 */2 * MON` on odd days and Mondays, `0 0 * * MON` on Mondays only.
//! - Daylight saving: `next` walks wall-clock fields and resolves wall times as Go's `time.Date`
//!   does, so a time skipped by a spring-forward gap does not run that day, and a repeated
//!   hour in autumn can run twice, as upstream does.

use std::time::Duration;

use jiff::civil::{Date, DateTime};
use jiff::tz::{Offset, TimeZone};
use jiff::{SignedDuration, Timestamp};

/// Why a schedule could not be parsed; the messages are robfig/cron's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The schedule is empty.
    #[error("empty spec string")]
    Empty,
    /// Not five fields.
    #[error("expected exactly 5 fields, found {found}: [{fields}]")]
    FieldCount {
        /// How many there were.
        found: usize,
        /// The fields, space-separated.
        fields: String,
    },
    /// `TZ=` or `CRON_TZ=` names no time zone Go's `time.LoadLocation` loads.
    #[error("provided bad location {name}: {reason}")]
    Location {
        /// The name.
        name: String,
        /// Go's error ([`location_problem`]).
        reason: String,
    },
    /// `TZ=<zone>` with nothing after it: robfig slices up to a space that is not there and
    /// panics, which upstream's `ParseCronScheduleWithPanicRecovery` reports so.
    #[error("invalid schedule format: runtime error: slice bounds out of range [:-1]")]
    ZoneWithoutSchedule,
    /// An `@` word that is no descriptor.
    #[error("unrecognized descriptor: {0}")]
    Descriptor(String),
    /// `@every` with something that is not a Go duration.
    #[error("failed to parse duration {spec}: time: invalid duration \"{duration}\"")]
    Duration {
        /// The whole descriptor.
        spec: String,
        /// What followed `@every `.
        duration: String,
    },
    /// `1-2-3`.
    #[error("too many hyphens: {0}")]
    Hyphens(String),
    /// `1/2/3`.
    #[error("too many slashes: {0}")]
    Slashes(String),
    /// Not a number (nor a name, where names are allowed).
    #[error("failed to parse int from {text}: strconv.Atoi: parsing \"{text}\": {reason}")]
    Number {
        /// The text.
        text: String,
        /// `invalid syntax` or `value out of range`.
        reason: &'static str,
    },
    /// A negative step.
    #[error("negative number ({number}) not allowed: {text}")]
    Negative {
        /// The number.
        number: i64,
        /// Its text.
        text: String,
    },
    /// A range starting below the field's minimum.
    #[error("beginning of range ({start}) below minimum ({min}): {expr}")]
    BelowMinimum {
        /// The start.
        start: u32,
        /// The field's minimum.
        min: u32,
        /// The range.
        expr: String,
    },
    /// A range ending above the field's maximum.
    #[error("end of range ({end}) above maximum ({max}): {expr}")]
    AboveMaximum {
        /// The end.
        end: u32,
        /// The field's maximum.
        max: u32,
        /// The range.
        expr: String,
    },
    /// A range whose start is after its end.
    #[error("beginning of range ({start}) beyond end of range ({end}): {expr}")]
    Reversed {
        /// The start.
        start: u32,
        /// The end.
        end: u32,
        /// The range.
        expr: String,
    },
    /// A step of zero.
    #[error("step of range should be a positive number: {0}")]
    Step(String),
}

/// Set in a field's bits when the field started with `*` or `?` (robfig's `starBit`).
const STAR: u64 = 1 << 63;

/// One field's values, its names, as bits.
struct Bounds {
    min: u32,
    max: u32,
    names: &'static [&'static str],
}

const MINUTES: Bounds = Bounds {
    min: 0,
    max: 59,
    names: &[],
};
const HOURS: Bounds = Bounds {
    min: 0,
    max: 23,
    names: &[],
};
const DAYS_OF_MONTH: Bounds = Bounds {
    min: 1,
    max: 31,
    names: &[],
};
/// Names from 1.
const MONTHS: Bounds = Bounds {
    min: 1,
    max: 12,
    names: &[
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ],
};
/// Names from 0.
const DAYS_OF_WEEK: Bounds = Bounds {
    min: 0,
    max: 6,
    names: &["sun", "mon", "tue", "wed", "thu", "fri", "sat"],
};

/// The bits of every value of `b`, with the star bit (robfig's `all`).
fn all(b: &Bounds) -> u64 {
    bits(b.min, b.max, 1) | STAR
}

fn bits(start: u32, end: u32, step: u32) -> u64 {
    (start..=end)
        .step_by(step as usize)
        .fold(0, |acc, v| acc | 1 << v)
}

/// A parsed schedule: when it fires, in which time zone.
#[derive(Debug, Clone)]
pub struct Schedule {
    kind: Kind,
    time_zone: TimeZone,
}

#[derive(Debug, Clone, PartialEq)]
enum Kind {
    /// Fields as bits; seconds are always 0.
    Fields {
        minute: u64,
        hour: u64,
        day_of_month: u64,
        month: u64,
        day_of_week: u64,
    },
    /// `@every`: a whole number of seconds, at least one.
    Every(Duration),
}

/// The time zone named `name` as Go's `time.LoadLocation`: empty and `UTC` are UTC, `Local` is
/// `local`, anything else is looked up in the tz database — by its exact name, as Go opens
/// the zone's file (jiff would also take `europe/berlin`).
pub fn load_location(name: &str, local: &TimeZone) -> Option<TimeZone> {
    match name {
        "" | "UTC" => Some(TimeZone::UTC),
        "Local" => Some(local.clone()),
        _ => find_zone(name).ok(),
    }
}

/// Why Go's `time.LoadLocation` refuses `name`, in Go's words; `None` when it loads.
pub fn location_problem(name: &str) -> Option<String> {
    match name {
        "" | "UTC" | "Local" => None,
        _ => find_zone(name).err(),
    }
}

/// A zone of the tz database, or Go's error for its name.
fn find_zone(name: &str) -> Result<TimeZone, String> {
    if name.contains("..") || name.starts_with(['/', '\\']) {
        return Err("time: invalid location name".into());
    }
    match jiff::tz::db().get(name) {
        Ok(zone) if zone.iana_name() == Some(name) => Ok(zone),
        _ => Err(format!("unknown time zone {name}")),
    }
}

impl Schedule {
    /// Parses `spec` as `cron.ParseStandard` does; fields are read in `local` unless the spec
    /// starts with `TZ=`/`CRON_TZ=`.
    pub fn parse(spec: &str, local: &TimeZone) -> Result<Schedule, ParseError> {
        if spec.is_empty() {
            return Err(ParseError::Empty);
        }
        let mut spec = spec;
        let mut time_zone = local.clone();
        if spec.starts_with("TZ=") || spec.starts_with("CRON_TZ=") {
            let (prefix, rest) = spec
                .split_once(' ')
                .ok_or(ParseError::ZoneWithoutSchedule)?;
            let name = prefix.split_once('=').map(|(_, n)| n).unwrap_or_default();
            time_zone = load_location(name, local).ok_or_else(|| ParseError::Location {
                name: name.into(),
                reason: location_problem(name).unwrap_or_default(),
            })?;
            spec = rest.trim();
        }
        if spec.starts_with('@') {
            return Ok(Schedule {
                kind: descriptor(spec)?,
                time_zone,
            });
        }
        let fields: Vec<&str> = spec.split_whitespace().collect();
        if fields.len() != 5 {
            return Err(ParseError::FieldCount {
                found: fields.len(),
                fields: fields.join(" "),
            });
        }
        Ok(Schedule {
            kind: Kind::Fields {
                minute: field(fields[0], &MINUTES)?,
                hour: field(fields[1], &HOURS)?,
                day_of_month: field(fields[2], &DAYS_OF_MONTH)?,
                month: field(fields[3], &MONTHS)?,
                day_of_week: field(fields[4], &DAYS_OF_WEEK)?,
            },
            time_zone,
        })
    }

    /// The first time after `after` the schedule fires; `None` when none comes within five
    /// years (`0 0 30 2 *`), where robfig returns Go's zero time.
    pub fn next(&self, after: Timestamp) -> Option<Timestamp> {
        match &self.kind {
            Kind::Every(delay) => {
                let delay = SignedDuration::try_from(*delay).ok()?;
                let nanos = SignedDuration::from_nanos(i64::from(after.subsec_nanosecond()));
                after.checked_add(delay - nanos).ok()
            }
            Kind::Fields {
                minute,
                hour,
                day_of_month,
                month,
                day_of_week,
            } => next_in_fields(
                &self.time_zone,
                after,
                [*minute, *hour, *day_of_month, *month, *day_of_week],
            ),
        }
    }
}

fn descriptor(spec: &str) -> Result<Kind, ParseError> {
    let at = |minute: u64, hour: u64, day_of_month: u64, month: u64, day_of_week: u64| {
        Ok(Kind::Fields {
            minute,
            hour,
            day_of_month,
            month,
            day_of_week,
        })
    };
    match spec {
        "@yearly" | "@annually" => at(1, 1, 1 << 1, 1 << 1, all(&DAYS_OF_WEEK)),
        "@monthly" => at(1, 1, 1 << 1, all(&MONTHS), all(&DAYS_OF_WEEK)),
        "@weekly" => at(1, 1, all(&DAYS_OF_MONTH), all(&MONTHS), 1),
        "@daily" | "@midnight" => at(1, 1, all(&DAYS_OF_MONTH), all(&MONTHS), all(&DAYS_OF_WEEK)),
        "@hourly" => at(
            1,
            all(&HOURS),
            all(&DAYS_OF_MONTH),
            all(&MONTHS),
            all(&DAYS_OF_WEEK),
        ),
        _ => {
            let Some(text) = spec.strip_prefix("@every ") else {
                return Err(ParseError::Descriptor(spec.into()));
            };
            let invalid = || ParseError::Duration {
                spec: spec.into(),
                duration: text.into(),
            };
            // Go's ParseDuration takes a sign; `Every` makes anything under a second one second
            // and drops fractions of a second.
            let (negative, unsigned) = match text.as_bytes().first() {
                Some(b'-') => (true, &text[1..]),
                Some(b'+') => (false, &text[1..]),
                _ => (false, text),
            };
            let duration = crate::duration::parse_go(unsigned).ok_or_else(invalid)?;
            let seconds = if negative { 0 } else { duration.as_secs() };
            Ok(Kind::Every(Duration::from_secs(seconds.max(1))))
        }
    }
}

/// A comma list of ranges (robfig's `getField`; empty items are skipped).
fn field(text: &str, bounds: &Bounds) -> Result<u64, ParseError> {
    text.split(',')
        .filter(|r| !r.is_empty())
        .try_fold(0, |acc, expr| Ok(acc | range(expr, bounds)?))
}

/// `*`, `?`, `N` or `N-M`, with an optional `/step` (robfig's `getRange`).
fn range(expr: &str, bounds: &Bounds) -> Result<u64, ParseError> {
    let range_and_step: Vec<&str> = expr.split('/').collect();
    let low_and_high: Vec<&str> = range_and_step[0].split('-').collect();
    let (start, mut end, mut star) = if low_and_high[0] == "*" || low_and_high[0] == "?" {
        (bounds.min, bounds.max, STAR)
    } else {
        let start = number_or_name(low_and_high[0], bounds)?;
        let end = match low_and_high.len() {
            1 => start,
            2 => number_or_name(low_and_high[1], bounds)?,
            _ => return Err(ParseError::Hyphens(expr.into())),
        };
        (start, end, 0)
    };
    let step = match range_and_step.len() {
        1 => 1,
        2 => {
            let step = number(range_and_step[1])?;
            // `N/step` means `N-max/step`.
            if low_and_high.len() == 1 {
                end = bounds.max;
            }
            if step > 1 {
                star = 0;
            }
            step
        }
        _ => return Err(ParseError::Slashes(expr.into())),
    };
    if start < bounds.min {
        return Err(ParseError::BelowMinimum {
            start,
            min: bounds.min,
            expr: expr.into(),
        });
    }
    if end > bounds.max {
        return Err(ParseError::AboveMaximum {
            end,
            max: bounds.max,
            expr: expr.into(),
        });
    }
    if start > end {
        return Err(ParseError::Reversed {
            start,
            end,
            expr: expr.into(),
        });
    }
    if step == 0 {
        return Err(ParseError::Step(expr.into()));
    }
    Ok(bits(start, end, step) | star)
}

fn number_or_name(text: &str, bounds: &Bounds) -> Result<u32, ParseError> {
    let lower = text.to_ascii_lowercase();
    match bounds.names.iter().position(|n| *n == lower) {
        // Month names count from 1, weekday names from 0: both from the field's minimum.
        Some(i) => Ok(bounds.min + i as u32),
        None => number(text),
    }
}

/// A non-negative decimal as Go's `strconv.Atoi` reads one (a leading sign is allowed).
fn number(text: &str) -> Result<u32, ParseError> {
    let digits = text.strip_prefix(['+', '-']).unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ParseError::Number {
            text: text.into(),
            reason: "invalid syntax",
        });
    }
    let value: i64 = text.parse().map_err(|_| ParseError::Number {
        text: text.into(),
        reason: "value out of range",
    })?;
    if value < 0 {
        return Err(ParseError::Negative {
            number: value,
            text: text.into(),
        });
    }
    // Anything this large is out of every field's bounds.
    Ok(u32::try_from(value).unwrap_or(u32::MAX))
}

fn has(bits: u64, value: i8) -> bool {
    bits & (1 << value) != 0
}

/// Whether the day fields admit `dt`: both must match when either was a star, else either.
fn day_matches(day_of_month: u64, day_of_week: u64, dt: DateTime) -> bool {
    let dom = has(day_of_month, dt.day());
    let dow = has(day_of_week, dt.weekday().to_sunday_zero_offset());
    if day_of_month & STAR != 0 || day_of_week & STAR != 0 {
        dom && dow
    } else {
        dom || dow
    }
}

/// A wall time in `tz` as Go's `time.Date` resolves it: the offset in force at the wall time
/// read as UTC, corrected once if that offset does not hold at the result. (In a gap or a
/// fold this picks one side or the other depending on the offsets' signs, as Go does.)
fn go_date(tz: &TimeZone, dt: DateTime) -> Option<Timestamp> {
    let as_utc = Offset::UTC.to_timestamp(dt).ok()?;
    let first = tz.to_offset(as_utc);
    let utc = first.to_timestamp(dt).ok()?;
    let second = tz.to_offset(utc);
    if second == first {
        Some(utc)
    } else {
        second.to_timestamp(dt).ok()
    }
}

/// `t.AddDate(0, months, days)` in `tz`: the wall fields moved, days and months overflowing as
/// Go normalises them.
fn add_date(tz: &TimeZone, t: Timestamp, months: i32, days: i32) -> Option<Timestamp> {
    let dt = tz.to_datetime(t);
    let month0 = i32::from(dt.month()) - 1 + months;
    let year = i32::from(dt.year()) + month0.div_euclid(12);
    let first = Date::new(
        i16::try_from(year).ok()?,
        i8::try_from(month0.rem_euclid(12) + 1).ok()?,
        1,
    )
    .ok()?;
    let date = first
        .checked_add(jiff::Span::new().days(i64::from(dt.day()) - 1 + i64::from(days)))
        .ok()?;
    go_date(tz, date.to_datetime(dt.time()))
}

/// robfig's `SpecSchedule.Next`: from the next whole second, find the first month, day, hour,
/// minute and second that match, resetting the smaller fields when a larger one moves and
/// starting over when a field wraps.
fn next_in_fields(tz: &TimeZone, after: Timestamp, fields: [u64; 5]) -> Option<Timestamp> {
    let [minute, hour, day_of_month, month, day_of_week] = fields;
    let hours = |n: i64| SignedDuration::from_hours(n);
    let wall = |t: Timestamp| tz.to_datetime(t);
    let mut t = after
        .checked_add(SignedDuration::from_secs(1))
        .ok()?
        .checked_sub(SignedDuration::from_nanos(i64::from(
            after.subsec_nanosecond(),
        )))
        .ok()?;
    let mut added = false;
    let year_limit = wall(t).year() + 5;
    'wrap: loop {
        if wall(t).year() > year_limit {
            return None;
        }
        while !has(month, wall(t).month()) {
            if !added {
                added = true;
                let dt = wall(t);
                t = go_date(
                    tz,
                    DateTime::new(dt.year(), dt.month(), 1, 0, 0, 0, 0).ok()?,
                )?;
            }
            t = add_date(tz, t, 1, 0)?;
            if wall(t).month() == 1 {
                continue 'wrap;
            }
        }
        while !day_matches(day_of_month, day_of_week, wall(t)) {
            if !added {
                added = true;
                t = go_date(
                    tz,
                    wall(t).date().to_datetime(jiff::civil::Time::midnight()),
                )?;
            }
            t = add_date(tz, t, 0, 1)?;
            // Where DST moved midnight, get back to it.
            let hour = i64::from(wall(t).hour());
            if hour > 12 {
                t = t.checked_add(hours(24 - hour)).ok()?;
            } else if hour > 0 {
                t = t.checked_sub(hours(hour)).ok()?;
            }
            if wall(t).day() == 1 {
                continue 'wrap;
            }
        }
        while !has(hour, wall(t).hour()) {
            if !added {
                added = true;
                let dt = wall(t);
                t = go_date(
                    tz,
                    DateTime::new(dt.year(), dt.month(), dt.day(), dt.hour(), 0, 0, 0).ok()?,
                )?;
            }
            t = t.checked_add(hours(1)).ok()?;
            if wall(t).hour() == 0 {
                continue 'wrap;
            }
        }
        while !has(minute, wall(t).minute()) {
            if !added {
                added = true;
                t = Timestamp::from_second(t.as_second().div_euclid(60) * 60).ok()?;
            }
            t = t.checked_add(SignedDuration::from_mins(1)).ok()?;
            if wall(t).minute() == 0 {
                continue 'wrap;
            }
        }
        // Seconds: always 0 in the standard format.
        while wall(t).second() != 0 {
            if !added {
                added = true;
                t = Timestamp::from_second(t.as_second()).ok()?;
            }
            t = t.checked_add(SignedDuration::from_secs(1)).ok()?;
            if wall(t).second() == 0 {
                continue 'wrap;
            }
        }
        return Some(t);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> Timestamp {
        s.parse().expect("timestamp")
    }

    fn zone(name: &str) -> TimeZone {
        TimeZone::get(name).expect("zone")
    }

    /// The next `n` times after `from` as RFC 3339 in `tz`.
    fn nexts(spec: &str, tz: &TimeZone, from: &str, n: usize) -> Vec<String> {
        let schedule = Schedule::parse(spec, tz).expect(spec);
        let mut t = utc(from);
        (0..n)
            .map(|_| {
                t = schedule.next(t).expect("next");
                t.to_zoned(tz.clone()).strftime("%FT%T%:z").to_string()
            })
            .collect()
    }

    #[test]
    fn fields_lists_ranges_steps_and_names() {
        let cases: &[(&str, &str, &[&str])] = &[
            (
                "*/15 * * * *",
                "2024-01-01T10:07:00Z",
                &["2024-01-01T10:15:00+00:00", "2024-01-01T10:30:00+00:00"],
            ),
            (
                "5,10-12 3 * * *",
                "2024-01-01T03:11:30Z",
                &["2024-01-01T03:12:00+00:00", "2024-01-02T03:05:00+00:00"],
            ),
            (
                "0 9-17/4 * * *",
                "2024-01-01T09:00:00Z",
                &["2024-01-01T13:00:00+00:00", "2024-01-01T17:00:00+00:00"],
            ),
            // `N/step` is `N-max/step`.
            (
                "50/5 0 * * *",
                "2024-01-01T00:00:00Z",
                &["2024-01-01T00:50:00+00:00", "2024-01-01T00:55:00+00:00"],
            ),
            (
                "0 0 1 FEB,jun *",
                "2024-01-15T00:00:00Z",
                &["2024-02-01T00:00:00+00:00", "2024-06-01T00:00:00+00:00"],
            ),
            (
                "30 8 ? * Mon-FRI",
                "2024-01-05T09:00:00Z",
                &["2024-01-08T08:30:00+00:00", "2024-01-09T08:30:00+00:00"],
            ),
            (
                "0 0 29 2 *",
                "2024-03-01T00:00:00Z",
                &["2028-02-29T00:00:00+00:00"],
            ),
            (
                "@hourly",
                "2024-01-01T10:59:59.5Z",
                &["2024-01-01T11:00:00+00:00", "2024-01-01T12:00:00+00:00"],
            ),
            (
                "@daily",
                "2024-01-01T10:00:00Z",
                &["2024-01-02T00:00:00+00:00"],
            ),
            (
                "@midnight",
                "2024-01-01T00:00:00Z",
                &["2024-01-02T00:00:00+00:00"],
            ),
            // 2024-01-01 is a Monday.
            (
                "@weekly",
                "2024-01-01T00:00:00Z",
                &["2024-01-07T00:00:00+00:00"],
            ),
            (
                "@monthly",
                "2024-01-01T00:00:00Z",
                &["2024-02-01T00:00:00+00:00"],
            ),
            (
                "@yearly",
                "2024-01-01T00:00:00Z",
                &["2025-01-01T00:00:00+00:00"],
            ),
            (
                "@annually",
                "2024-06-01T00:00:00Z",
                &["2025-01-01T00:00:00+00:00"],
            ),
            (
                "@every 90m",
                "2024-01-01T00:00:00.25Z",
                &["2024-01-01T01:30:00+00:00", "2024-01-01T03:00:00+00:00"],
            ),
            (
                "@every 1500ms",
                "2024-01-01T00:00:00Z",
                &["2024-01-01T00:00:01+00:00", "2024-01-01T00:00:02+00:00"],
            ),
        ];
        for (spec, from, want) in cases {
            assert_eq!(
                nexts(spec, &TimeZone::UTC, from, want.len()),
                *want,
                "{spec} from {from}"
            );
        }
    }

    #[test]
    fn day_of_month_and_day_of_week_match_either_unless_one_is_a_star() {
        let cases: &[(&str, &[&str])] = &[
            // Both restricted: the 1st or a Friday (2024-03-01 is a Friday).
            (
                "0 0 1 * FRI",
                &[
                    "2024-03-08T00:00:00+00:00",
                    "2024-03-15T00:00:00+00:00",
                    "2024-03-22T00:00:00+00:00",
                    "2024-03-29T00:00:00+00:00",
                    "2024-04-01T00:00:00+00:00",
                    "2024-04-05T00:00:00+00:00",
                ],
            ),
            // A star: Fridays only.
            ("0 0 * * 5", &["2024-03-08T00:00:00+00:00"]),
            ("0 0 ? * 5", &["2024-03-08T00:00:00+00:00"]),
            // `*/1` keeps the star; `*/2` drops it, so odd days or Fridays.
            ("0 0 */1 * 5", &["2024-03-08T00:00:00+00:00"]),
            (
                "0 0 */2 * 5",
                &["2024-03-03T00:00:00+00:00", "2024-03-05T00:00:00+00:00"],
            ),
        ];
        for (spec, want) in cases {
            assert_eq!(
                nexts(spec, &TimeZone::UTC, "2024-03-01T00:00:00Z", want.len()),
                *want,
                "{spec}"
            );
        }
    }

    #[test]
    fn time_zones_move_the_wall_clock() {
        let berlin = zone("Europe/Berlin");
        assert_eq!(
            nexts("0 9 * * *", &berlin, "2024-01-01T00:00:00Z", 1),
            ["2024-01-01T09:00:00+01:00"]
        );
        // TZ= in the schedule wins over the local zone.
        let schedule = Schedule::parse("TZ=Asia/Tokyo 0 9 * * *", &berlin).expect("parse");
        assert_eq!(
            schedule.next(utc("2024-01-01T00:00:00Z")),
            Some(utc("2024-01-02T00:00:00Z"))
        );
        let schedule = Schedule::parse("CRON_TZ=UTC @daily", &berlin).expect("parse");
        assert_eq!(
            schedule.next(utc("2024-01-01T12:00:00Z")),
            Some(utc("2024-01-02T00:00:00Z"))
        );
        // Spring forward (02:00 → 03:00 on 2024-03-31): 02:30 does not happen that day.
        assert_eq!(
            nexts("30 2 * * *", &berlin, "2024-03-30T12:00:00Z", 2),
            ["2024-04-01T02:30:00+02:00", "2024-04-02T02:30:00+02:00"]
        );
        // Fall back (03:00 → 02:00 on 2024-10-27): 02:30 happens twice, and runs twice.
        assert_eq!(
            nexts("30 2 * * *", &berlin, "2024-10-26T12:00:00Z", 3),
            [
                "2024-10-27T02:30:00+02:00",
                "2024-10-27T02:30:00+01:00",
                "2024-10-28T02:30:00+01:00"
            ]
        );
        // Hourly through a spring-forward gap: 01:00, then 03:00.
        let new_york = zone("America/New_York");
        assert_eq!(
            nexts("0 * * * *", &new_york, "2024-03-10T05:30:00Z", 2),
            ["2024-03-10T01:00:00-05:00", "2024-03-10T03:00:00-04:00"]
        );
    }

    #[test]
    fn impossible_dates_have_no_next() {
        let schedule = Schedule::parse("0 0 30 2 *", &TimeZone::UTC).expect("parse");
        assert_eq!(schedule.next(utc("2024-01-01T00:00:00Z")), None);
    }

    #[test]
    fn bad_schedules_say_why_as_robfig() {
        let cases = [
            ("", "empty spec string"),
            ("* * * *", "expected exactly 5 fields, found 4: [* * * *]"),
            (
                "0 * * * * *",
                "expected exactly 5 fields, found 6: [0 * * * * *]",
            ),
            ("@fortnightly", "unrecognized descriptor: @fortnightly"),
            (
                "@every soon",
                "failed to parse duration @every soon: time: invalid duration \"soon\"",
            ),
            (
                "TZ=Mars/Olympus * * * * *",
                "provided bad location Mars/Olympus: unknown time zone Mars/Olympus",
            ),
            ("60 * * * *", "end of range (60) above maximum (59): 60"),
            ("* * 0 * *", "beginning of range (0) below minimum (1): 0"),
            ("* * * * 7", "end of range (7) above maximum (6): 7"),
            (
                "5-1 * * * *",
                "beginning of range (5) beyond end of range (1): 5-1",
            ),
            (
                "CRON_TZ=../etc/passwd * * * * *",
                "provided bad location ../etc/passwd: time: invalid location name",
            ),
            (
                "TZ=europe/berlin * * * * *",
                "provided bad location europe/berlin: unknown time zone europe/berlin",
            ),
            (
                "TZ=UTC",
                "invalid schedule format: runtime error: slice bounds out of range [:-1]",
            ),
            ("1-2-3 * * * *", "too many hyphens: 1-2-3"),
            ("*/2/3 * * * *", "too many slashes: */2/3"),
            (
                "*/0 * * * *",
                "step of range should be a positive number: */0",
            ),
            ("*/-1 * * * *", "negative number (-1) not allowed: -1"),
            (
                "x * * * *",
                "failed to parse int from x: strconv.Atoi: parsing \"x\": invalid syntax",
            ),
            (
                "* * * foo *",
                "failed to parse int from foo: strconv.Atoi: parsing \"foo\": invalid syntax",
            ),
        ];
        for (spec, want) in cases {
            let error = Schedule::parse(spec, &TimeZone::UTC).expect_err(spec);
            assert_eq!(error.to_string(), want, "{spec}");
        }
    }

    #[test]
    fn go_dates_resolve_gaps_and_folds_as_go() {
        let at = |tz: &TimeZone, s: &str| {
            go_date(tz, s.parse().expect("datetime"))
                .expect("resolved")
                .to_zoned(tz.clone())
                .strftime("%FT%T%:z")
                .to_string()
        };
        // East of UTC: a gap resolves after it, a fold to its second pass.
        let berlin = zone("Europe/Berlin");
        assert_eq!(at(&berlin, "2024-03-31T02:30"), "2024-03-31T03:30:00+02:00");
        assert_eq!(at(&berlin, "2024-10-27T02:30"), "2024-10-27T02:30:00+01:00");
        // West of UTC: the other way round.
        let new_york = zone("America/New_York");
        assert_eq!(
            at(&new_york, "2024-03-10T02:30"),
            "2024-03-10T01:30:00-05:00"
        );
        assert_eq!(
            at(&new_york, "2024-11-03T01:30"),
            "2024-11-03T01:30:00-04:00"
        );
    }

    #[test]
    fn locations_load_as_go_loads_them() {
        for name in [
            "UTC",
            "",
            "Local",
            "Europe/Berlin",
            "US/Eastern",
            "Etc/GMT+5",
            "GMT",
            "EST5EDT",
            "America/Argentina/Buenos_Aires",
        ] {
            assert_eq!(location_problem(name), None, "{name}");
        }
        for (name, why) in [
            ("europe/berlin", "unknown time zone europe/berlin"),
            ("Mars/Olympus", "unknown time zone Mars/Olympus"),
            ("../etc/passwd", "time: invalid location name"),
            ("/etc/localtime", "time: invalid location name"),
            ("local", "unknown time zone local"),
        ] {
            assert_eq!(location_problem(name).as_deref(), Some(why), "{name}");
        }
    }
}
