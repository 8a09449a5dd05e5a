//! Validated cron expressions for recurring experiments (parsed by the `croner` crate).

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use croner::errors::CronError;
use croner::parser::{CronParser, Seconds, Year};
use croner::{CivilDate, CivilDateTime, CivilTime, Cron, CronDateTime, Resolution, Weekday};
use time::OffsetDateTime;

use crate::model::{Timestamp, ValidationError};

/// A recurring experiment's schedule: a standard five-field cron expression, evaluated in UTC.
///
/// The fields are `minute hour day-of-month month day-of-week` (Vixie cron): lists (`1,15`),
/// ranges (`1-5`), steps (`*/15`, `10-50/20`), month and weekday names (`JAN`, `MON-FRI`, either
/// case), `?` as `*`, and `@yearly`, `@annually`, `@monthly`, `@weekly`, `@daily`, `@hourly`.
/// Weekdays are 0–7 with both 0 and 7 Sunday. When both day fields are restricted a day
/// matching **either** fires, as in cron; croner's extensions also work: `L` (last day of the
/// month, or `5L` the last Friday), `W` (nearest weekday), `#` (`1#2`, the second Monday), and a
/// leading `+` in the weekday field to require both day fields.
///
/// There is **no seconds field** (and no year field): a run sends iterations × providers
/// prompts, so the finest grain is one minute, and a six-field (Quartz-style) expression is
/// rejected rather than silently read with a different meaning. An expression that matches no
/// instant at all (`0 0 30 2 *`) is rejected too, since it would end the recurrence at once.
///
/// ```
/// use echo_core::model::Timestamp;
/// use echo_core::runner::CronSchedule;
///
/// let every_monday = CronSchedule::parse("0 9 * * MON")?;
/// let t = Timestamp::from_unix_micros(1_767_225_600_000_000).unwrap(); // Thu 2026-01-01 00:00 UTC
/// assert_eq!(every_monday.next_after(t).unwrap().to_string(), "2026-01-05T09:00:00Z");
/// assert!(CronSchedule::parse("every monday").is_err());
/// # Ok::<(), echo_core::model::ValidationError>(())
/// ```
#[derive(Clone)]
pub struct CronSchedule {
    expr: String,
    cron: Cron,
}

impl CronSchedule {
    /// Longest expression accepted, as [`Experiment::validate`](crate::model::Experiment::validate)
    /// allows.
    pub const MAX_LEN: usize = 200;

    /// Parses and validates `expr` (surrounding whitespace is ignored). Errors name the field
    /// `schedule`.
    pub fn parse(expr: &str) -> Result<Self, ValidationError> {
        let expr = expr.trim();
        if expr.is_empty() || expr.chars().count() > Self::MAX_LEN {
            return Err(ValidationError::new(
                "schedule",
                format!("must be 1 to {} characters", Self::MAX_LEN),
            ));
        }
        let fields = expr.split_whitespace().count();
        if !expr.starts_with('@') && fields != 5 {
            return Err(ValidationError::new(
                "schedule",
                format!(
                    "must have 5 fields (minute hour day-of-month month day-of-week), not {fields}"
                ),
            ));
        }
        let cron = CronParser::builder()
            .seconds(Seconds::Disallowed)
            .year(Year::Disallowed)
            .build()
            .parse(expr)
            .map_err(|e| {
                ValidationError::new("schedule", format!("is not a valid cron expression: {e}"))
            })?;
        // Every accepted expression repeats at least every 28 years (no year field), so one
        // that has no occurrence after 2000 has none at all.
        let probe = Utc(time::macros::datetime!(2000-01-01 00:00 UTC));
        if cron.find_next_occurrence(&probe, true).is_err() {
            return Err(ValidationError::new("schedule", "never matches any date"));
        }
        Ok(Self {
            expr: expr.to_owned(),
            cron,
        })
    }

    /// The first occurrence strictly after `t` (whole minutes, UTC); `None` when there is none
    /// within croner's search range (up to the year 5000).
    pub fn next_after(&self, t: Timestamp) -> Option<Timestamp> {
        self.cron
            .find_next_occurrence(&Utc(t.as_datetime()), false)
            .ok()
            .map(|next| Timestamp::from_datetime(next.0))
            .filter(|next| *next > t)
    }

    /// The expression as given (trimmed).
    pub fn as_str(&self) -> &str {
        &self.expr
    }
}

impl fmt::Debug for CronSchedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("CronSchedule").field(&self.expr).finish()
    }
}

impl fmt::Display for CronSchedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.expr)
    }
}

impl PartialEq for CronSchedule {
    fn eq(&self, other: &Self) -> bool {
        self.expr == other.expr
    }
}

impl Eq for CronSchedule {}

impl FromStr for CronSchedule {
    type Err = ValidationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// A UTC instant as croner searches it: this keeps `echo-core` on the `time` crate instead of
/// pulling in `chrono` for one conversion.
#[derive(Debug, Clone, Copy)]
struct Utc(OffsetDateTime);

impl CronDateTime for Utc {
    fn to_civil(&self) -> CivilDateTime {
        let (date, time) = (self.0.date(), self.0.time());
        CivilDateTime::new(
            CivilDate::from_parts_unchecked(
                date.year(),
                u32::from(u8::from(date.month())),
                u32::from(date.day()),
            ),
            CivilTime::from_parts_unchecked(
                u32::from(time.hour()),
                u32::from(time.minute()),
                u32::from(time.second()),
            ),
        )
    }

    fn civil_weekday(&self) -> Weekday {
        Weekday::from_days_from_sunday(u32::from(self.0.weekday().number_days_from_sunday()))
    }

    fn resolve_civil(&self, civil: CivilDateTime) -> Result<Resolution<Self>, CronError> {
        let month = u8::try_from(civil.month())
            .ok()
            .and_then(|m| time::Month::try_from(m).ok())
            .ok_or(CronError::InvalidDate)?;
        let day = u8::try_from(civil.day()).map_err(|_| CronError::InvalidDate)?;
        let date = time::Date::from_calendar_date(civil.year(), month, day)
            .map_err(|_| CronError::InvalidDate)?;
        let part = |v: u32| u8::try_from(v).map_err(|_| CronError::InvalidTime);
        let time = time::Time::from_hms(
            part(civil.hour())?,
            part(civil.minute())?,
            part(civil.second())?,
        )
        .map_err(|_| CronError::InvalidTime)?;
        // UTC has no daylight saving time: every wall clock time happens exactly once.
        Ok(Resolution::Single(Utc(time::PrimitiveDateTime::new(
            date, time,
        )
        .assume_utc())))
    }

    fn checked_add_seconds(&self, seconds: i64) -> Option<Self> {
        self.0
            .checked_add(time::Duration::seconds(seconds))
            .map(Utc)
    }

    fn cmp_instant(&self, other: &Self) -> Ordering {
        self.0.cmp(&other.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use time::macros::datetime;

    fn at(dt: OffsetDateTime) -> Timestamp {
        Timestamp::from_datetime(dt)
    }

    #[test]
    fn standard_expressions_fire_when_cron_would() {
        let t = at(datetime!(2026-03-10 10:17:42.5 UTC)); // a Tuesday
        let cases = [
            ("* * * * *", datetime!(2026-03-10 10:18 UTC)),
            ("*/15 * * * *", datetime!(2026-03-10 10:30 UTC)),
            ("0 9 * * MON-FRI", datetime!(2026-03-11 09:00 UTC)),
            ("0 9 * * mon", datetime!(2026-03-16 09:00 UTC)),
            ("30 6 1 * *", datetime!(2026-04-01 06:30 UTC)),
            ("0 0 1 JAN *", datetime!(2027-01-01 00:00 UTC)),
            ("0 12 * * 7", datetime!(2026-03-15 12:00 UTC)),
            ("0 12 * * 0", datetime!(2026-03-15 12:00 UTC)),
            ("0 0 L * *", datetime!(2026-03-31 00:00 UTC)),
            ("@hourly", datetime!(2026-03-10 11:00 UTC)),
            ("@daily", datetime!(2026-03-11 00:00 UTC)),
            ("@weekly", datetime!(2026-03-15 00:00 UTC)),
            ("  0 0 29 2 *  ", datetime!(2028-02-29 00:00 UTC)),
        ];
        for (expr, expected) in cases {
            let schedule = CronSchedule::parse(expr).unwrap();
            assert_eq!(schedule.next_after(t), Some(at(expected)), "{expr}");
            assert_eq!(schedule.as_str(), expr.trim());
        }
    }

    #[test]
    fn next_is_strictly_after_even_on_an_occurrence() {
        let schedule = CronSchedule::parse("0 * * * *").unwrap();
        let on_the_hour = at(datetime!(2026-01-01 10:00 UTC));
        assert_eq!(
            schedule.next_after(on_the_hour),
            Some(at(datetime!(2026-01-01 11:00 UTC)))
        );
        let just_before = at(datetime!(2026-01-01 09:59:59.999999 UTC));
        assert_eq!(schedule.next_after(just_before), Some(on_the_hour));
    }

    #[test]
    fn garbage_is_rejected_naming_the_schedule_field() {
        for expr in [
            "",
            "   ",
            "every monday",
            "* * * *",
            "0 * * * * *",
            "0 0 * * * * 2030",
            "61 * * * *",
            "* 24 * * *",
            "* * 32 * *",
            "* * * 13 *",
            "* * * * 8",
            "a b c d e",
            "*/0 * * * *",
            "@every_minute",
            "0 0 30 2 *",
            &"1,".repeat(150),
        ] {
            let err = CronSchedule::parse(expr).unwrap_err();
            assert_eq!(err.field, "schedule", "{expr:?}");
        }
    }

    proptest! {
        #[test]
        fn arbitrary_strings_never_panic(s in "\\PC{0,80}") {
            if let Ok(schedule) = CronSchedule::parse(&s) {
                let t = Timestamp::now();
                if let Some(next) = schedule.next_after(t) {
                    prop_assert!(next > t);
                }
            }
        }

        #[test]
        fn cron_like_strings_never_panic_and_next_is_after(
            fields in proptest::collection::vec(
                "[0-9*/,#LW?+-]{1,6}|MON|fri|JAN|dec|L|5L|1#3|15W|\\*/7|1-5/2",
                0..8,
            ),
            offset in 0i64..4_000_000_000,
        ) {
            let expr = fields.join(" ");
            if let Ok(schedule) = CronSchedule::parse(&expr) {
                let t = Timestamp::from_unix_micros(offset * 1_000_000).unwrap();
                let next = schedule.next_after(t);
                prop_assert!(next.is_some(), "{expr} has occurrences but none after {t}");
                prop_assert!(next.unwrap() > t);
            }
        }
    }
}
