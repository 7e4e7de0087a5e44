//! The UTC calendar: dates of keys' expiry and the days and months budgets are counted in.
//!
//! Days since the epoch to civil dates and back (Howard Hinnant's algorithms, exact over the
//! proleptic Gregorian calendar); a dependency for a dozen lines of arithmetic was not worth it.

/// Days from 1970-01-01 to `year-month-day`.
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month = i64::from(month);
    let day_of_year =
        (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The date `days` after 1970-01-01: (year, month 1-12, day 1-31).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let days = days + 719_468;
    let era = days.div_euclid(146_097);
    let day_of_era = days - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// A TOML date or date-time as seconds since the Unix epoch: a date alone is its midnight UTC;
/// a date-time without an offset is read as UTC. `None` for a time alone or before 1970.
pub fn unix_seconds_of(at: &toml::value::Datetime) -> Option<u64> {
    let date = at.date?;
    let days = days_from_civil(
        i64::from(date.year),
        u32::from(date.month),
        u32::from(date.day),
    );
    let mut seconds = days * 86_400;
    if let Some(time) = at.time {
        seconds +=
            i64::from(time.hour) * 3600 + i64::from(time.minute) * 60 + i64::from(time.second);
    }
    if let Some(toml::value::Offset::Custom { minutes }) = at.offset {
        seconds -= i64::from(minutes) * 60;
    }
    u64::try_from(seconds).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_dates() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(civil_from_days(20_790), (2026, 12, 3));
        assert_eq!(civil_from_days(days_from_civil(2028, 2, 29)), (2028, 2, 29));
    }

    #[test]
    fn reads_toml_dates() {
        let at = |text: &str| {
            let value: toml::Value = toml::from_str(&format!("at = {text}")).unwrap();
            unix_seconds_of(value["at"].as_datetime().unwrap())
        };
        assert_eq!(at("2027-01-31"), Some(1_801_353_600));
        assert_eq!(at("2027-01-31T00:00:00Z"), Some(1_801_353_600));
        assert_eq!(at("2027-01-31T02:00:00+02:00"), Some(1_801_353_600));
        assert_eq!(at("2027-01-31T01:00:00"), Some(1_801_357_200));
        assert_eq!(at("10:00:00"), None);
    }

    proptest! {
        #[test]
        fn days_and_dates_round_trip(days in -1_000_000i64..1_000_000) {
            let (year, month, day) = civil_from_days(days);
            prop_assert_eq!(days_from_civil(year, month, day), days);
        }
    }
}
