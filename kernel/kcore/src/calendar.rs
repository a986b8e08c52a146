//! Calendar arithmetic for the real-time clock: a broken-down UTC date and time to seconds
//! since 1970-01-01, and the checks an RTC reading must pass first.

/// A UTC date and time as an RTC reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateTime {
    /// Full year (e.g. 2026).
    pub year: u16,
    /// 1..=12.
    pub month: u8,
    /// 1..=31.
    pub day: u8,
    /// 0..=23.
    pub hour: u8,
    /// 0..=59.
    pub minute: u8,
    /// 0..=59.
    pub second: u8,
}

fn leap(year: u32) -> bool {
    (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400)
}

fn days_in_month(year: u32, month: u8) -> u8 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap(year) => 29,
        2 => 28,
        _ => 0,
    }
}

impl DateTime {
    /// Seconds since 1970-01-01 00:00:00 UTC, or `None` for an impossible date or one before
    /// 1970.
    pub fn unix_seconds(&self) -> Option<u64> {
        let year = u32::from(self.year);
        let valid = year >= 1970
            && (1..=12).contains(&self.month)
            && self.day >= 1
            && self.day <= days_in_month(year, self.month)
            && self.hour < 24
            && self.minute < 60
            && self.second < 60;
        if !valid {
            return None;
        }
        let mut days: u64 = (1970..year).map(|y| if leap(y) { 366 } else { 365 }).sum();
        for m in 1..self.month {
            days += u64::from(days_in_month(year, m));
        }
        days += u64::from(self.day - 1);
        Some(
            days * 86_400
                + u64::from(self.hour) * 3600
                + u64::from(self.minute) * 60
                + u64::from(self.second),
        )
    }
}

/// Decodes a binary-coded-decimal byte (`0x59` -> 59), or `None` if a digit is above 9.
pub fn from_bcd(v: u8) -> Option<u8> {
    let (hi, lo) = (v >> 4, v & 0x0F);
    (hi <= 9 && lo <= 9).then_some(hi * 10 + lo)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dt(year: u16, month: u8, day: u8, hour: u8, minute: u8, second: u8) -> DateTime {
        DateTime {
            year,
            month,
            day,
            hour,
            minute,
            second,
        }
    }

    #[test]
    fn known_instants() {
        assert_eq!(dt(1970, 1, 1, 0, 0, 0).unix_seconds(), Some(0));
        assert_eq!(dt(2000, 1, 1, 0, 0, 0).unix_seconds(), Some(946_684_800));
        assert_eq!(dt(2000, 2, 29, 12, 0, 0).unix_seconds(), Some(951_825_600));
        assert_eq!(
            dt(2026, 11, 30, 3, 20, 5).unix_seconds(),
            Some(1_796_008_805)
        );
        assert_eq!(dt(2100, 3, 1, 0, 0, 0).unix_seconds(), Some(4_107_542_400));
    }

    #[test]
    fn impossible_dates_are_refused() {
        assert_eq!(dt(2023, 2, 29, 0, 0, 0).unix_seconds(), None);
        assert_eq!(dt(1900, 2, 29, 0, 0, 0).unix_seconds(), None);
        assert_eq!(dt(1969, 12, 31, 23, 59, 59).unix_seconds(), None);
        assert_eq!(dt(2026, 13, 1, 0, 0, 0).unix_seconds(), None);
        assert_eq!(dt(2026, 4, 31, 0, 0, 0).unix_seconds(), None);
        assert_eq!(dt(2026, 1, 1, 24, 0, 0).unix_seconds(), None);
    }

    #[test]
    fn bcd() {
        assert_eq!(from_bcd(0x59), Some(59));
        assert_eq!(from_bcd(0x00), Some(0));
        assert_eq!(from_bcd(0x5A), None);
    }
}
