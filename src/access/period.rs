//! The calendar periods budgets are counted in: the UTC day and the UTC month.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::config::calendar::{civil_from_days, days_from_civil};

/// A budget's period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    /// The UTC day.
    Day,
    /// The UTC calendar month.
    Month,
}

impl Period {
    /// The `period` label and the admin API's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Period::Day => "day",
            Period::Month => "month",
        }
    }
}

/// The current day and month at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    /// Microseconds since the Unix epoch.
    pub micros: u64,
    /// Days since the Unix epoch.
    pub day: i64,
    /// Months since year 0 (`year * 12 + month - 1`).
    pub month: i64,
}

impl Now {
    /// The system clock's now.
    pub fn current() -> Self {
        let micros = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as u64);
        Self::at(micros)
    }

    /// The periods at `micros` since the Unix epoch.
    pub fn at(micros: u64) -> Self {
        let day = (micros / 86_400_000_000) as i64;
        let (year, month, _) = civil_from_days(day);
        Self {
            micros,
            day,
            month: year * 12 + i64::from(month) - 1,
        }
    }

    /// The period's id (days or months since their epoch).
    pub fn id(&self, period: Period) -> i64 {
        match period {
            Period::Day => self.day,
            Period::Month => self.month,
        }
    }

    /// Whole seconds (at least 1) until the period ends: a budget's `Retry-After`.
    pub fn seconds_left(&self, period: Period) -> u64 {
        let next_day = match period {
            Period::Day => self.day + 1,
            Period::Month => {
                let next = self.month + 1;
                days_from_civil(next.div_euclid(12), (next.rem_euclid(12) + 1) as u32, 1)
            }
        };
        let end = next_day as u64 * 86_400_000_000;
        end.saturating_sub(self.micros).div_ceil(1_000_000).max(1)
    }
}

/// A period's name: `2026-12-03` for a day, `2026-12` for a month.
pub fn label(period: Period, id: i64) -> String {
    match period {
        Period::Day => {
            let (year, month, day) = civil_from_days(id);
            format!("{year:04}-{month:02}-{day:02}")
        }
        Period::Month => format!("{:04}-{:02}", id.div_euclid(12), id.rem_euclid(12) + 1),
    }
}

/// Reads a period's name back (`2026-12-03` or `2026-12`).
pub fn parse(text: &str) -> Option<(Period, i64)> {
    let mut parts = text.split('-');
    let year: i64 = parts.next()?.parse().ok()?;
    let month: u32 = parts.next()?.parse().ok()?;
    if !(1..=12).contains(&month) || !(0..=9999).contains(&year) {
        return None;
    }
    match parts.next() {
        None => Some((Period::Month, year * 12 + i64::from(month) - 1)),
        Some(day) => {
            let day: u32 = day.parse().ok()?;
            let id = days_from_civil(year, month, day);
            (parts.next().is_none() && civil_from_days(id) == (year, month, day))
                .then_some((Period::Day, id))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_and_months_in_utc() {
        // 2026-12-31T23:59:59.5Z
        let now = Now::at(1_798_761_599_500_000);
        assert_eq!(label(Period::Day, now.day), "2026-12-31");
        assert_eq!(label(Period::Month, now.month), "2026-12");
        assert_eq!(now.seconds_left(Period::Day), 1);
        assert_eq!(now.seconds_left(Period::Month), 1);
        let next = Now::at(1_798_761_600_000_000);
        assert_eq!(label(Period::Month, next.month), "2027-01");
        assert_eq!(next.seconds_left(Period::Month), 31 * 86_400);
    }

    #[test]
    fn names_read_back() {
        assert_eq!(parse("2026-12-03"), Some((Period::Day, 20_790)));
        assert_eq!(parse("2026-12"), Some((Period::Month, 2026 * 12 + 11)));
        assert_eq!(parse("2026-02-30"), None);
        assert_eq!(parse("2026-13"), None);
        assert_eq!(parse("today"), None);
        for text in ["2028-02-29", "1999-01"] {
            let (period, id) = parse(text).unwrap();
            assert_eq!(label(period, id), text);
        }
    }
}
