//! Money and rates: `rust_decimal` in the model, fixed-point nano-units in the snapshot.
//!
//! Nine decimal places hold every rate a deck carries exactly (decks use four to six),
//! and an `i64` of nanos keeps the snapshot's records small and `Pod`.

use rust_decimal::Decimal;

/// Decimal places kept in the snapshot.
pub const SCALE: u32 = 9;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("{0:?} is not a decimal amount")]
    Parse(String),
    #[error("{0} has more than {SCALE} decimal places")]
    TooPrecise(String),
    #[error("{0} is out of range")]
    OutOfRange(Decimal),
    #[error("{0} is negative")]
    Negative(Decimal),
}

/// Parses a non-negative decimal amount such as `0.0045`: ASCII digits with at most one
/// decimal point. `rust_decimal` alone would also take `1_000`, `1e-3` and `+1`, which in
/// a rate deck are more likely typos than amounts.
pub fn parse_amount(s: &str) -> Result<Decimal, MoneyError> {
    let t = s.trim();
    let unsigned = t.strip_prefix('-').unwrap_or(t);
    let (whole, fraction) = unsigned.split_once('.').unwrap_or((unsigned, ""));
    let digits = |part: &str| part.bytes().all(|b| b.is_ascii_digit());
    if whole.len() + fraction.len() == 0 || !digits(whole) || !digits(fraction) {
        return Err(MoneyError::Parse(s.to_string()));
    }
    // Checked on the text: `Decimal` rounds a fraction past 28 digits, so
    // `1.00000000000000000000000000001` would parse as 1 and pass `to_nanos`.
    if fraction.trim_end_matches('0').len() > SCALE as usize {
        return Err(MoneyError::TooPrecise(t.to_string()));
    }
    let d: Decimal = t.parse().map_err(|_| MoneyError::Parse(s.to_string()))?;
    if d.is_sign_negative() && !d.is_zero() {
        return Err(MoneyError::Negative(d));
    }
    to_nanos(d)?;
    Ok(d)
}

/// Exact conversion to nano-units; refuses what would lose a digit.
pub fn to_nanos(d: Decimal) -> Result<i64, MoneyError> {
    let n = d.normalize();
    if n.scale() > SCALE {
        return Err(MoneyError::TooPrecise(d.to_string()));
    }
    let mut m = n.mantissa();
    for _ in n.scale()..SCALE {
        m = m.checked_mul(10).ok_or(MoneyError::OutOfRange(d))?;
    }
    i64::try_from(m).map_err(|_| MoneyError::OutOfRange(d))
}

pub fn from_nanos(n: i64) -> Decimal {
    Decimal::new(n, SCALE).normalize()
}

/// An amount in nano-units as the snapshot holds it: copying it costs nothing on the
/// call path; it turns into a `Decimal` (or text) only when someone looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Amount(pub i64);

impl Amount {
    pub fn to_decimal(self) -> Decimal {
        from_nanos(self.0)
    }
}

impl std::fmt::Display for Amount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.to_decimal().fmt(f)
    }
}

impl serde::Serialize for Amount {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    #[test]
    fn nanos_round_trip_exactly() {
        for d in [
            dec!(0),
            dec!(0.0045),
            dec!(1.25),
            dec!(0.000000001),
            dec!(9000000),
        ] {
            assert_eq!(from_nanos(to_nanos(d).unwrap()), d.normalize());
        }
        assert_eq!(to_nanos(dec!(0.0045)).unwrap(), 4_500_000);
    }

    #[test]
    fn amounts_print_without_trailing_zeros() {
        assert_eq!(Amount(4_500_000).to_string(), "0.0045");
        assert_eq!(Amount(-1).to_string(), "-0.000000001");
        assert_eq!(serde_json::to_string(&Amount(0)).unwrap(), "\"0\"");
    }

    #[test]
    fn refuses_lossy_or_bad_amounts() {
        assert!(matches!(
            to_nanos(dec!(0.0000000001)),
            Err(MoneyError::TooPrecise(_))
        ));
        for typo in ["abc", "1_000", "1e-3", "1E3", "+1", ".", "-", "1.2.3", ""] {
            assert!(
                matches!(parse_amount(typo), Err(MoneyError::Parse(_))),
                "{typo:?}"
            );
        }
        assert_eq!(parse_amount(".5").unwrap(), dec!(0.5));
        // Past `Decimal`'s 28 places the parser would round them away unseen.
        for lossy in [
            "0.0000000001",
            "1.00000000000000000000000000001",
            "0.000000000000000000000000000000001",
        ] {
            let e = parse_amount(lossy).expect_err(lossy);
            assert_eq!(
                e.to_string(),
                format!("{lossy} has more than 9 decimal places")
            );
        }
        assert_eq!(
            parse_amount("0.123456789000000000000000000000000").unwrap(),
            dec!(0.123456789)
        );
        assert!(matches!(
            parse_amount("-0.01"),
            Err(MoneyError::Negative(_))
        ));
        assert!(matches!(
            parse_amount("99999999999999999"),
            Err(MoneyError::OutOfRange(_))
        ));
        assert_eq!(parse_amount(" 0.0100 ").unwrap(), dec!(0.01));
    }
}
