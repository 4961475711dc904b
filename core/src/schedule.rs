//! When something applies: an absolute validity range and/or a weekly window in a zone.

use chrono::{DateTime, Datelike, TimeZone, Timelike, Utc, Weekday};
use chrono_tz::Tz;

/// A weekly window of local wall-clock time. `end <= start` spans midnight and belongs
/// to the day it starts on (`Fri 18:00-08:00` covers Friday night into Saturday).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WeeklyWindow {
    pub tz: Tz,
    /// Bit 0 = Monday … bit 6 = Sunday.
    pub days: u8,
    /// Minutes after local midnight.
    pub start: u16,
    pub end: u16,
}

/// Why [`WeeklyWindow::new`] refused a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WindowError {
    #[error("window start {0} min is not a time of day (24:00 is only an end)")]
    Start(u16),
    #[error("window end {0} min is past 24:00")]
    End(u16),
    #[error("window days {0:#b} name no weekday")]
    Days(u8),
}

/// A moment as a weekly window sees it: the local weekday and minute after midnight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalMinute {
    pub weekday: Weekday,
    pub minute: u16,
}

impl LocalMinute {
    pub fn of(tz: Tz, t: DateTime<Utc>) -> Self {
        let local = tz.from_utc_datetime(&t.naive_utc());
        LocalMinute {
            weekday: local.weekday(),
            minute: (local.hour() * 60 + local.minute()) as u16,
        }
    }
}

impl WeeklyWindow {
    /// A window as a dataset or the database states it. A start of 24:00 is refused: with
    /// `end <= start` meaning "spans midnight" it would quietly cover the whole next day.
    pub fn new(tz: Tz, days: u8, start: u16, end: u16) -> Result<Self, WindowError> {
        if start >= 24 * 60 {
            return Err(WindowError::Start(start));
        }
        if end > 24 * 60 {
            return Err(WindowError::End(end));
        }
        if days == 0 || days > 0x7f {
            return Err(WindowError::Days(days));
        }
        Ok(WeeklyWindow {
            tz,
            days,
            start,
            end,
        })
    }

    pub fn contains(&self, t: DateTime<Utc>) -> bool {
        self.contains_local(LocalMinute::of(self.tz, t))
    }

    /// As [`contains`](Self::contains), for a moment already in this window's zone.
    pub fn contains_local(&self, local: LocalMinute) -> bool {
        let LocalMinute { weekday, minute } = local;
        let day_bit = |d: Weekday| self.days & (1 << d.num_days_from_monday()) != 0;
        if self.start < self.end {
            return day_bit(weekday) && minute >= self.start && minute < self.end;
        }
        // Spans midnight: the evening part belongs to today, the morning part to yesterday.
        (minute >= self.start && day_bit(weekday)) || (minute < self.end && day_bit(weekday.pred()))
    }

    /// Parses `Mon-Fri`, `Sat,Sun`, `*` (every day).
    pub fn parse_days(s: &str) -> Result<u8, String> {
        const NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
        let idx = |n: &str| {
            NAMES
                .iter()
                .position(|x| x.eq_ignore_ascii_case(n.trim()))
                .ok_or_else(|| format!("unknown day {n:?} (use Mon..Sun)"))
        };
        let s = s.trim();
        if s.is_empty() || s == "*" {
            return Ok(0x7f);
        }
        let mut mask = 0u8;
        for part in s.split(',') {
            match part.split_once('-') {
                Some((a, b)) => {
                    let (a, b) = (idx(a)?, idx(b)?);
                    let mut d = a;
                    loop {
                        mask |= 1 << d;
                        if d == b {
                            break;
                        }
                        d = (d + 1) % 7;
                    }
                }
                None => mask |= 1 << idx(part)?,
            }
        }
        Ok(mask)
    }

    /// Parses `HH:MM` or `H:MM` (24:00 allowed as an end).
    pub fn parse_minute(s: &str) -> Result<u16, String> {
        let bad = || format!("bad time of day {s:?} (expected HH:MM)");
        let (h, m) = s.trim().split_once(':').ok_or_else(bad)?;
        // Digits only: `str::parse` would also take a sign, and `+9:00` reads like a
        // UTC offset, not a time of day.
        let digits = |x: &str, len: std::ops::RangeInclusive<usize>| {
            len.contains(&x.len()) && x.bytes().all(|b| b.is_ascii_digit())
        };
        if !digits(h, 1..=2) || !digits(m, 2..=2) {
            return Err(bad());
        }
        let (h, m): (u16, u16) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
        if m >= 60 || h > 24 || (h == 24 && m != 0) {
            return Err(bad());
        }
        Ok(h * 60 + m)
    }
}

/// Validity `[from, to)` plus an optional weekly window; an empty schedule always applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Schedule {
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub window: Option<WeeklyWindow>,
}

impl Schedule {
    pub fn applies(&self, t: DateTime<Utc>) -> bool {
        self.from.is_none_or(|f| t >= f)
            && self.to.is_none_or(|e| t < e)
            && self.window.is_none_or(|w| w.contains(t))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn business_hours() -> WeeklyWindow {
        WeeklyWindow {
            tz: chrono_tz::America::New_York,
            days: WeeklyWindow::parse_days("Mon-Fri").unwrap(),
            start: 9 * 60,
            end: 17 * 60,
        }
    }

    #[test]
    fn weekly_window_in_local_time() {
        let w = business_hours();
        // Wed 2026-03-04 09:30 EST = 14:30Z
        assert!(w.contains(utc("2026-03-04T14:30:00Z")));
        assert!(!w.contains(utc("2026-03-04T13:59:00Z")));
        // Saturday
        assert!(!w.contains(utc("2026-03-07T15:00:00Z")));
    }

    #[test]
    fn follows_daylight_saving_changes() {
        let w = business_hours();
        // Fri 2026-03-06 is EST (UTC-5): 09:00 local = 14:00Z.
        assert!(w.contains(utc("2026-03-06T14:00:00Z")));
        assert!(!w.contains(utc("2026-03-06T13:30:00Z")));
        // Mon 2026-03-09, after the 8 March spring-forward, is EDT (UTC-4): 09:00 = 13:00Z.
        assert!(w.contains(utc("2026-03-09T13:30:00Z")));
        assert!(!w.contains(utc("2026-03-09T21:00:00Z"))); // 17:00 EDT
                                                           // Mon 2026-11-02, after the 1 November fall-back, is EST again.
        assert!(!w.contains(utc("2026-11-02T13:30:00Z")));
        assert!(w.contains(utc("2026-11-02T14:00:00Z")));
    }

    #[test]
    fn overnight_window_belongs_to_its_start_day() {
        let w = WeeklyWindow {
            tz: chrono_tz::UTC,
            days: WeeklyWindow::parse_days("Fri").unwrap(),
            start: 18 * 60,
            end: 8 * 60,
        };
        assert!(w.contains(utc("2026-03-06T19:00:00Z"))); // Fri evening
        assert!(w.contains(utc("2026-03-07T07:59:00Z"))); // Sat early
        assert!(!w.contains(utc("2026-03-07T19:00:00Z"))); // Sat evening
        assert!(!w.contains(utc("2026-03-06T07:00:00Z"))); // Fri early (Thu night)
    }

    #[test]
    fn parses_days_and_times() {
        assert_eq!(WeeklyWindow::parse_days("*").unwrap(), 0x7f);
        assert_eq!(WeeklyWindow::parse_days("Sat,Sun").unwrap(), 0b110_0000);
        assert_eq!(WeeklyWindow::parse_days("Fri-Mon").unwrap(), 0b111_0001);
        assert!(WeeklyWindow::parse_days("Funday").is_err());
        assert_eq!(WeeklyWindow::parse_minute("08:30").unwrap(), 510);
        assert!(WeeklyWindow::parse_minute("25:00").is_err());
        assert!(WeeklyWindow::parse_minute("8").is_err());
    }

    #[test]
    fn a_window_starts_within_the_day() {
        let utc = chrono_tz::UTC;
        assert!(WeeklyWindow::new(utc, 1, 24 * 60, 24 * 60).is_err());
        assert!(WeeklyWindow::new(utc, 1, 0, 24 * 60 + 1).is_err());
        assert!(WeeklyWindow::new(utc, 0, 0, 60).is_err());
        assert_eq!(
            WeeklyWindow::new(utc, 1, 0, 24 * 60),
            Ok(WeeklyWindow {
                tz: utc,
                days: 1,
                start: 0,
                end: 24 * 60
            })
        );
    }

    #[test]
    fn validity_range_is_half_open() {
        let s = Schedule {
            from: Some(utc("2026-01-01T00:00:00Z")),
            to: Some(utc("2026-02-01T00:00:00Z")),
            window: None,
        };
        assert!(s.applies(utc("2026-01-01T00:00:00Z")));
        assert!(!s.applies(utc("2026-02-01T00:00:00Z")));
        assert!(Schedule::default().applies(utc("1999-01-01T00:00:00Z")));
    }
}
