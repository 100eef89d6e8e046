//! Season names from a time, in UTC, by integer date math (no calendar crate): a day
//! `2026-12-05`, an ISO week `2026-W49`, a month `2026-12`.
//!
//! Days are counted from the Unix epoch; `civil_from_days` and `days_from_civil` are Howard
//! Hinnant's proleptic-Gregorian algorithms, exact for every `i64` millisecond time.

const MS_PER_DAY: i64 = 86_400_000;

/// The day (since 1970-01-01) holding `now_ms`; times before 1970 count backwards.
pub fn day_of(now_ms: i64) -> i64 {
    now_ms.div_euclid(MS_PER_DAY)
}

/// `(year, month 1..=12, day 1..=31)` of a day since 1970-01-01.
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * month_index + 2) / 5 + 1) as u32;
    let month = if month_index < 10 { month_index + 3 } else { month_index - 9 } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// The day since 1970-01-01 of a calendar date.
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year.rem_euclid(400);
    let month = i64::from(month);
    let day_of_year = (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The ISO 8601 week `(week-based year, week 1..=53)` of a day: weeks start on Monday, and week 1
/// is the one holding the year's first Thursday.
pub fn iso_week(days: i64) -> (i64, u32) {
    // 1970-01-01 was a Thursday: weekday 0 = Monday.
    let weekday = (days + 3).rem_euclid(7);
    let thursday = days - weekday + 3;
    let (year, _, _) = civil_from_days(thursday);
    let week = (thursday - days_from_civil(year, 1, 1)) / 7 + 1;
    (year, week as u32)
}

/// `2026-12-05`
pub fn day_name(now_ms: i64) -> String {
    let (year, month, day) = civil_from_days(day_of(now_ms));
    format!("{year:04}-{month:02}-{day:02}")
}

/// `2026-W49`
pub fn week_name(now_ms: i64) -> String {
    let (year, week) = iso_week(day_of(now_ms));
    format!("{year:04}-W{week:02}")
}

/// `2026-12`
pub fn month_name(now_ms: i64) -> String {
    let (year, month, _) = civil_from_days(day_of(now_ms));
    format!("{year:04}-{month:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(year: i64, month: u32, day: u32, hour: i64) -> i64 {
        days_from_civil(year, month, day) * MS_PER_DAY + hour * 3_600_000
    }

    #[test]
    fn dates_round_trip_across_centuries() {
        for days in (-800_000..800_000).step_by(97) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days, "{y}-{m}-{d}");
        }
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        assert_eq!(civil_from_days(days_from_civil(2024, 2, 29)), (2024, 2, 29));
        assert_eq!(days_from_civil(2024, 3, 1) - days_from_civil(2024, 2, 28), 2, "2024 is a leap year");
        assert_eq!(days_from_civil(2100, 3, 1) - days_from_civil(2100, 2, 28), 1, "2100 is not");
        assert_eq!(days_from_civil(2000, 3, 1) - days_from_civil(2000, 2, 28), 2, "2000 is");
    }

    #[test]
    fn days_and_months_turn_at_midnight_utc() {
        assert_eq!(day_name(ms(2026, 12, 5, 0)), "2026-12-05");
        assert_eq!(day_name(ms(2026, 12, 5, 0) - 1), "2026-12-04");
        assert_eq!(month_name(ms(2026, 12, 1, 0)), "2026-12");
        assert_eq!(month_name(ms(2026, 12, 1, 0) - 1), "2026-11");
        assert_eq!(month_name(ms(2027, 1, 1, 0) - 1), "2026-12");
        assert_eq!(month_name(ms(2027, 1, 1, 0)), "2027-01");
        assert_eq!(day_name(-1), "1969-12-31");
        assert!(day_name(i64::MAX).len() > 10, "far times still name a day");
        assert!(!day_name(i64::MIN).is_empty());
    }

    #[test]
    fn iso_weeks_at_year_boundaries() {
        // 2026-01-01 is a Thursday: week 1 starts Monday 2025-12-29.
        assert_eq!(week_name(ms(2025, 12, 29, 0)), "2026-W01");
        assert_eq!(week_name(ms(2025, 12, 29, 0) - 1), "2025-W52");
        assert_eq!(week_name(ms(2026, 12, 5, 12)), "2026-W49");
        // 2027-01-01 is a Friday: it belongs to 2026's week 53.
        assert_eq!(week_name(ms(2027, 1, 1, 0)), "2026-W53");
        assert_eq!(week_name(ms(2027, 1, 3, 23)), "2026-W53");
        assert_eq!(week_name(ms(2027, 1, 4, 0)), "2027-W01");
        // 2021-01-01 (Friday) is in 2020-W53; 2019-12-30 (Monday) starts 2020-W01.
        assert_eq!(week_name(ms(2021, 1, 1, 0)), "2020-W53");
        assert_eq!(week_name(ms(2019, 12, 30, 0)), "2020-W01");
        assert_eq!(week_name(ms(2019, 12, 29, 23)), "2019-W52");
        assert_eq!(week_name(0), "1970-W01");
    }
}
