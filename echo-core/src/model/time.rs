//! UTC timestamps with a precision every backend can store exactly.

use std::fmt;
use std::ops::{Add, Sub};

use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime, UtcOffset};

/// A UTC instant, truncated to whole microseconds.
///
/// PostgreSQL's `timestamptz` keeps microseconds and SQLite stores Echo's timestamps as integer
/// microseconds, so truncating at construction makes a value read back from any store compare
/// equal to the value written.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timestamp(#[serde(with = "time::serde::rfc3339")] OffsetDateTime);

impl Timestamp {
    /// The current time.
    pub fn now() -> Self {
        Self::from_datetime(OffsetDateTime::now_utc())
    }

    /// Converts any offset to UTC and truncates to microseconds.
    pub fn from_datetime(dt: OffsetDateTime) -> Self {
        let utc = dt.to_offset(UtcOffset::UTC);
        let micros = utc.microsecond();
        // Replacing the sub-second part with the same microsecond value cannot fail.
        Self(utc.replace_microsecond(micros).unwrap_or(utc))
    }

    /// Microseconds since the Unix epoch (the SQLite storage form).
    pub fn unix_micros(&self) -> i64 {
        // i128 → i64 holds for every year between -292,000 and 292,000.
        (self.0.unix_timestamp_nanos() / 1_000) as i64
    }

    /// The inverse of [`Timestamp::unix_micros`]; `None` when out of range.
    pub fn from_unix_micros(micros: i64) -> Option<Self> {
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1_000)
            .ok()
            .map(Self)
    }

    /// The underlying date-time (always UTC).
    pub fn as_datetime(&self) -> OffsetDateTime {
        self.0
    }

    /// Adds `months` calendar months, clamping the day to the target month's length
    /// (Jan 31 + 1 month = Feb 28 or 29).
    pub fn add_months(&self, months: u32) -> Self {
        let date = self.0.date();
        let total = date.year() * 12 + (date.month() as i32 - 1) + months as i32;
        let (year, month0) = (total.div_euclid(12), total.rem_euclid(12));
        let month = time::Month::try_from(month0 as u8 + 1).unwrap_or(time::Month::January);
        let last_day = time::util::days_in_month(month, year);
        let day = date.day().min(last_day);
        match time::Date::from_calendar_date(year, month, day) {
            Ok(d) => Self(self.0.replace_date(d)),
            Err(_) => *self,
        }
    }

    /// `self + duration`, or `None` past the representable range (year ±9999). The `+`
    /// operator panics there, so use this for durations that come from input or config.
    pub fn checked_add(&self, duration: Duration) -> Option<Self> {
        self.0.checked_add(duration).map(Self::from_datetime)
    }

    /// The start (00:00 UTC) of this instant's day.
    pub fn start_of_day(&self) -> Self {
        Self(self.0.replace_time(time::Time::MIDNIGHT))
    }
}

impl From<OffsetDateTime> for Timestamp {
    fn from(dt: OffsetDateTime) -> Self {
        Self::from_datetime(dt)
    }
}

impl Add<Duration> for Timestamp {
    type Output = Timestamp;
    fn add(self, rhs: Duration) -> Timestamp {
        Self::from_datetime(self.0 + rhs)
    }
}

impl Sub<Duration> for Timestamp {
    type Output = Timestamp;
    fn sub(self, rhs: Duration) -> Timestamp {
        Self::from_datetime(self.0 - rhs)
    }
}

impl Sub for Timestamp {
    type Output = Duration;
    fn sub(self, rhs: Timestamp) -> Duration {
        self.0 - rhs.0
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self
            .0
            .format(&time::format_description::well_known::Rfc3339)
        {
            Ok(s) => f.write_str(&s),
            Err(_) => write!(f, "{}", self.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn micros_round_trip_and_truncate() {
        let t = Timestamp::from_datetime(datetime!(2026-01-02 03:04:05.123456789 UTC));
        assert_eq!(t.as_datetime().nanosecond(), 123_456_000);
        assert_eq!(Timestamp::from_unix_micros(t.unix_micros()), Some(t));
    }

    #[test]
    fn add_months_clamps_day() {
        let t = Timestamp::from_datetime(datetime!(2024-01-31 10:00 UTC));
        assert_eq!(
            t.add_months(1).as_datetime(),
            datetime!(2024-02-29 10:00 UTC)
        );
        assert_eq!(
            t.add_months(13).as_datetime(),
            datetime!(2025-02-28 10:00 UTC)
        );
        assert_eq!(t.add_months(0), t);
    }
}
