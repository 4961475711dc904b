//! PostgreSQL's binary forms of `integer`, `numeric` and `timestamptz`, written as
//! JSON text without going through Rust values first.
//!
//! sqlx decodes a `numeric` into a `Vec` of base-10000 digits and then into a `Decimal`
//! (dividing as it goes), which is then formatted again: per CDR page that was about a
//! tenth of the API's CPU. The text written here is PostgreSQL's own (`numeric_out`),
//! which is also what `Decimal`'s `Display` makes of the decoded value.

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use sqlx::error::BoxDynError;

/// Microseconds from the Unix epoch to PostgreSQL's (2000-01-01).
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;
const MICROS_PER_DAY: i64 = 86_400_000_000;

/// A binary `integer`.
pub fn int4(b: &[u8]) -> Result<i32, BoxDynError> {
    Ok(i32::from_be_bytes(b.try_into()?))
}

/// Writes a binary `numeric` as a JSON string of its decimal text, e.g. `"0.011000"`.
pub fn numeric(out: &mut Vec<u8>, b: &[u8]) -> Result<(), BoxDynError> {
    let field = |i: usize| -> Result<u16, BoxDynError> {
        let two = b.get(2 * i..2 * i + 2).ok_or("numeric: short value")?;
        Ok(u16::from_be_bytes([two[0], two[1]]))
    };
    let ndigits = usize::from(field(0)?);
    let weight = i32::from(field(1)? as i16);
    let sign = field(2)?;
    let dscale = usize::from(field(3)?);
    if b.len() != 8 + 2 * ndigits {
        return Err("numeric: length does not match its digit count".into());
    }
    let negative = match sign {
        0x0000 => false,
        0x4000 => true,
        // A row stored before migration 0007 may hold NaN (a CHECK (x >= 0) let it
        // in): it is shown in numeric_out's words, not a failed page.
        0xC000 => return special(out, "NaN"),
        0xD000 => return special(out, "Infinity"),
        0xF000 => return special(out, "-Infinity"),
        _ => return Err("numeric: unknown sign".into()),
    };
    // Base-10000 digit `i` counted from the first; zero beyond those stored.
    let digit = |i: i32| -> Result<u16, BoxDynError> {
        match usize::try_from(i) {
            Ok(i) if i < ndigits => {
                let d = field(4 + i)?;
                if d < 10_000 {
                    Ok(d)
                } else {
                    Err("numeric: digit out of range".into())
                }
            }
            _ => Ok(0),
        }
    };
    out.push(b'"');
    if negative {
        out.push(b'-');
    }
    if weight < 0 {
        out.push(b'0');
    } else {
        let first = digit(0)?;
        out.extend_from_slice(itoa::Buffer::new().format(first).as_bytes());
        for i in 1..=weight {
            padded(out, digit(i)?, 4);
        }
    }
    if dscale > 0 {
        out.push(b'.');
        let mut left = dscale;
        let mut i = weight + 1;
        while left > 0 {
            let group = digit(i)?;
            let take = left.min(4);
            // The group's leading `take` of its four digits.
            padded(out, group / 10u16.pow(4 - take as u32), take as u32);
            left -= take;
            i += 1;
        }
    }
    out.push(b'"');
    Ok(())
}

/// A value with no digits, as the JSON string `"{word}"`.
fn special(out: &mut Vec<u8>, word: &str) -> Result<(), BoxDynError> {
    out.push(b'"');
    out.extend_from_slice(word.as_bytes());
    out.push(b'"');
    Ok(())
}

/// A binary `timestamptz` as (year, month, day, hour, minute, second, microsecond), for
/// years 0 to 9999; `None` outside them (and for ±infinity).
pub fn timestamp(b: &[u8]) -> Result<Option<[u32; 7]>, BoxDynError> {
    let pg = i64::from_be_bytes(b.try_into()?);
    let Some(unix) = pg.checked_add(PG_EPOCH_MICROS) else {
        return Ok(None);
    };
    let days = unix.div_euclid(MICROS_PER_DAY);
    let of_day = unix.rem_euclid(MICROS_PER_DAY);
    // Days from 0001-01-01 (day 1) to 1970-01-01: 719 163.
    let Some(date) = i32::try_from(days + 719_163)
        .ok()
        .and_then(NaiveDate::from_num_days_from_ce_opt)
        .filter(|d| (0..=9999).contains(&d.year()))
    else {
        return Ok(None);
    };
    let secs = of_day / 1_000_000;
    Ok(Some([
        date.year() as u32,
        date.month(),
        date.day(),
        (secs / 3600) as u32,
        (secs / 60 % 60) as u32,
        (secs % 60) as u32,
        (of_day % 1_000_000) as u32,
    ]))
}

/// A binary `timestamptz` as chrono's time. sqlx's own decoding panics on ±infinity
/// (and on the years past chrono's 262143 that PostgreSQL allows): those are errors.
pub fn utc(b: &[u8]) -> Result<DateTime<Utc>, BoxDynError> {
    i64::from_be_bytes(b.try_into()?)
        .checked_add(PG_EPOCH_MICROS)
        .and_then(DateTime::from_timestamp_micros)
        .ok_or_else(|| "timestamp beyond chrono's range".into())
}

/// `n` in decimal, zero-padded to `width` digits (`n` has no more).
pub fn padded(out: &mut Vec<u8>, n: impl Into<u32>, width: u32) {
    let n = n.into();
    for place in (0..width).rev() {
        out.push(b'0' + (n / 10u32.pow(place) % 10) as u8);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, Timelike, Utc};

    /// The binary form PostgreSQL sends for a `numeric` given as text (no exponent).
    fn encode(text: &str) -> Vec<u8> {
        let (negative, text) = match text.strip_prefix('-') {
            Some(t) => (true, t),
            None => (false, text),
        };
        let (int, frac) = text.split_once('.').unwrap_or((text, ""));
        let int = int.trim_start_matches('0');
        // Pad both sides to whole groups of four around the decimal point.
        let lead = (4 - int.len() % 4) % 4;
        let all = format!(
            "{}{int}{frac}{}",
            "0".repeat(lead),
            "0".repeat((4 - frac.len() % 4) % 4)
        );
        let mut groups: Vec<u16> = all
            .as_bytes()
            .chunks(4)
            .map(|c| std::str::from_utf8(c).unwrap().parse().unwrap())
            .collect();
        let mut weight = ((lead + int.len()) / 4) as i16 - 1;
        while groups.first() == Some(&0) {
            groups.remove(0);
            weight -= 1;
        }
        while groups.last() == Some(&0) {
            groups.pop();
        }
        if groups.is_empty() {
            weight = 0;
        }
        let mut b = Vec::new();
        b.extend_from_slice(&(groups.len() as u16).to_be_bytes());
        b.extend_from_slice(&weight.to_be_bytes());
        let sign: u16 = if negative && !groups.is_empty() {
            0x4000
        } else {
            0
        };
        b.extend_from_slice(&sign.to_be_bytes());
        b.extend_from_slice(&(frac.len() as u16).to_be_bytes());
        for g in groups {
            b.extend_from_slice(&g.to_be_bytes());
        }
        b
    }

    #[test]
    fn numerics_read_as_postgresql_prints_them() {
        for text in [
            "0",
            "0.000000",
            "0.011000",
            "0.012345678",
            "1",
            "10000",
            "12345.6789",
            "-0.5",
            "-12.000100",
            "99999999.999999999",
            "0.000000001",
            "100000000.1",
            "7.10",
        ] {
            let mut out = Vec::new();
            numeric(&mut out, &encode(text)).unwrap();
            assert_eq!(String::from_utf8(out).unwrap(), format!("\"{text}\""));
        }
    }

    #[test]
    fn special_numerics_read_as_postgresql_prints_them() {
        for (sign, text) in [
            (0xC000u16, "NaN"),
            (0xD000, "Infinity"),
            (0xF000, "-Infinity"),
        ] {
            // numeric_send: no digits, weight and scale 0.
            let wire = [0u16, 0, sign, 0].map(u16::to_be_bytes).concat();
            let mut out = Vec::new();
            numeric(&mut out, &wire).unwrap();
            assert_eq!(String::from_utf8(out).unwrap(), format!("\"{text}\""));
        }
    }

    #[test]
    fn malformed_numerics_are_errors() {
        let good = encode("1.5");
        for bad in [&good[..7], &good[..good.len() - 1]] {
            assert!(numeric(&mut Vec::new(), bad).is_err());
        }
        let mut unknown = good.clone();
        unknown[4] = 0x80;
        assert!(numeric(&mut Vec::new(), &unknown).is_err());
        let mut big = encode("1");
        big[8] = 0xFF;
        assert!(numeric(&mut Vec::new(), &big).is_err());
    }

    #[test]
    fn timestamps_split_as_chrono_does() {
        let mut micros: i64 = -PG_EPOCH_MICROS - 5 * 365 * MICROS_PER_DAY;
        // Every ~3.7 days for 60 years, with varying times of day.
        while micros < 2_000_000_000_000_000 {
            let t = DateTime::<Utc>::from_timestamp_micros(micros + PG_EPOCH_MICROS).unwrap();
            let parts = timestamp(&micros.to_be_bytes()).unwrap().unwrap();
            let expected = [
                t.year() as u32,
                t.month(),
                t.day(),
                t.hour(),
                t.minute(),
                t.second(),
                t.timestamp_subsec_micros(),
            ];
            assert_eq!(parts, expected, "{t}");
            micros += 320_012_345_678;
        }
        assert_eq!(timestamp(&i64::MAX.to_be_bytes()).unwrap(), None);
        assert!(timestamp(&[0; 7]).is_err());
    }
}
