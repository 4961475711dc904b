//! Rating a call or message: billing increments, connect fee, minimum charge, rounding.

use rust_decimal::{Decimal, RoundingStrategy};

/// Decimal places of a rated record's charge.
pub const CHARGE_DP: u32 = 6;

/// A charge past what a `Decimal` holds (about 7.9e28): only absurd durations, segment
/// counts or rates get there, and a wrong bill or a panic would be worse than refusing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "charge for {quantity} {unit} at {rate} (connect fee {connect_fee}) is too large to compute"
)]
pub struct ChargeOverflow {
    pub quantity: u64,
    pub unit: &'static str,
    pub rate: Decimal,
    pub connect_fee: Decimal,
}

/// How a rate is applied to a duration (`initial/subsequent`, e.g. 6/6, 60/60, 1/1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Increments {
    pub initial: u32,
    pub subsequent: u32,
}

impl Increments {
    pub const PER_SECOND: Increments = Increments {
        initial: 1,
        subsequent: 1,
    };

    pub fn new(initial: u32, subsequent: u32) -> Result<Self, String> {
        if initial == 0 || subsequent == 0 {
            return Err(format!(
                "billing increments {initial}/{subsequent}: both must be at least 1 second"
            ));
        }
        Ok(Increments {
            initial,
            subsequent,
        })
    }

    /// Billed seconds for an answered call of `duration` seconds: at least `initial`,
    /// also for an answer that lasted under a second (unanswered calls are not billed:
    /// see [`Tariff::charge_call`]). Saturates rather than wrap on absurd durations.
    pub fn billed_seconds(self, duration: u64) -> u64 {
        let (i, s) = (self.initial as u64, self.subsequent as u64);
        match duration {
            d if d <= i => i,
            d => i.saturating_add((d - i).div_ceil(s).saturating_mul(s)),
        }
    }
}

/// Everything needed to price one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tariff {
    /// Per minute for voice, per segment for messages.
    pub rate: Decimal,
    pub increments: Increments,
    pub connect_fee: Decimal,
    pub minimum_charge: Decimal,
}

impl Tariff {
    /// Charge for a voice call; unanswered calls cost nothing.
    pub fn charge_call(
        &self,
        answered: bool,
        duration_secs: u64,
    ) -> Result<Decimal, ChargeOverflow> {
        if !answered {
            return Ok(Decimal::ZERO);
        }
        let billed = self.increments.billed_seconds(duration_secs);
        let raw = Decimal::from(billed)
            .checked_mul(self.rate)
            .and_then(|c| c.checked_div(Decimal::from(60)))
            .and_then(|c| c.checked_add(self.connect_fee))
            .ok_or_else(|| self.overflow(billed, "billed seconds"))?;
        Ok(round(raw.max(self.minimum_charge)))
    }

    /// Charge for a message of `segments` segments.
    pub fn charge_message(&self, segments: u32) -> Result<Decimal, ChargeOverflow> {
        let raw = Decimal::from(segments)
            .checked_mul(self.rate)
            .and_then(|c| c.checked_add(self.connect_fee))
            .ok_or_else(|| self.overflow(segments.into(), "segments"))?;
        Ok(round(raw.max(self.minimum_charge)))
    }

    fn overflow(&self, quantity: u64, unit: &'static str) -> ChargeOverflow {
        ChargeOverflow {
            quantity,
            unit,
            rate: self.rate,
            connect_fee: self.connect_fee,
        }
    }
}

/// Half-up (away from zero) to six places, per record.
pub fn round(d: Decimal) -> Decimal {
    d.round_dp_with_strategy(CHARGE_DP, RoundingStrategy::MidpointAwayFromZero)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rust_decimal_macros::dec;

    fn tariff(rate: Decimal, i: u32, s: u32) -> Tariff {
        Tariff {
            rate,
            increments: Increments::new(i, s).unwrap(),
            connect_fee: Decimal::ZERO,
            minimum_charge: Decimal::ZERO,
        }
    }

    #[test]
    fn increments_follow_the_formula() {
        let six = Increments::new(6, 6).unwrap();
        // Answered, if for under a second: the first increment (ARCHITECTURE.md).
        assert_eq!(six.billed_seconds(0), 6);
        assert_eq!(six.billed_seconds(1), 6);
        assert_eq!(six.billed_seconds(6), 6);
        assert_eq!(six.billed_seconds(7), 12);
        let sixty = Increments::new(60, 60).unwrap();
        assert_eq!(sixty.billed_seconds(61), 120);
        let thirty_six = Increments::new(30, 6).unwrap();
        assert_eq!(thirty_six.billed_seconds(31), 36);
        assert_eq!(Increments::PER_SECOND.billed_seconds(245), 245);
        assert!(Increments::new(0, 6).is_err());
        assert_eq!(six.billed_seconds(u64::MAX), u64::MAX);
    }

    #[test]
    fn charges_round_half_up_to_six_places() {
        // 7 s at 0.0085/min = 0.00099166.. -> 0.000992
        assert_eq!(
            tariff(dec!(0.0085), 1, 1).charge_call(true, 7).unwrap(),
            dec!(0.000992)
        );
        // 1 s at 0.00003/min = 0.0000005 exactly: half rounds up.
        assert_eq!(
            tariff(dec!(0.00003), 1, 1).charge_call(true, 1).unwrap(),
            dec!(0.000001)
        );
        assert_eq!(
            tariff(dec!(0.0085), 1, 1).charge_call(false, 70).unwrap(),
            dec!(0)
        );
        let t = Tariff {
            rate: dec!(0.012),
            increments: Increments::new(60, 6).unwrap(),
            connect_fee: dec!(0.001),
            minimum_charge: dec!(0.02),
        };
        assert_eq!(t.charge_call(true, 5).unwrap(), dec!(0.02)); // minimum wins
        assert_eq!(t.charge_call(true, 125).unwrap(), dec!(0.0262)); // 126 s = 0.0252 + 0.001
        assert_eq!(
            tariff(dec!(0.0075), 1, 1).charge_message(3).unwrap(),
            dec!(0.0225)
        );
    }

    #[test]
    fn a_charge_too_large_for_a_decimal_is_an_error_not_a_panic() {
        // The largest rate a deck or the snapshot holds (i64 nano-units).
        let most = dec!(9223372036.854775807);
        let e = tariff(most, 1, 1).charge_call(true, u64::MAX).unwrap_err();
        assert!(
            e.to_string()
                .contains("18446744073709551615 billed seconds"),
            "{e}"
        );
        assert!(tariff(Decimal::MAX, 1, 1).charge_call(true, 120).is_err());
        let e = tariff(Decimal::MAX, 1, 1)
            .charge_message(u32::MAX)
            .unwrap_err();
        assert!(e.to_string().contains("4294967295 segments"), "{e}");
        let fee = Tariff {
            connect_fee: Decimal::MAX,
            ..tariff(dec!(1), 60, 60)
        };
        assert!(fee.charge_call(true, 60).is_err());
        assert!(fee.charge_message(1).is_err());
        // Large but representable: still charged exactly.
        assert_eq!(
            tariff(dec!(0.000001), 1, 1).charge_call(true, u64::MAX),
            Ok(dec!(307445734561.825860))
        );
    }

    proptest! {
        #[test]
        fn billed_is_minimal_cover(i in 1u32..120, s in 1u32..120, d in 0u64..100_000) {
            let b = Increments::new(i, s).unwrap().billed_seconds(d);
            prop_assert!(b >= d && b >= i as u64);
            prop_assert!(b == i as u64 || (b - i as u64).is_multiple_of(s as u64));
            prop_assert!(b < d + s as u64 || b == i as u64);
        }

        #[test]
        fn charge_is_monotonic_in_duration(d in 0u64..10_000, rate in 0u32..100_000) {
            let t = tariff(Decimal::new(rate as i64, 6), 6, 6);
            prop_assert!(t.charge_call(true, d).unwrap() <= t.charge_call(true, d + 1).unwrap());
            prop_assert!(t.charge_call(true, d).unwrap().scale() <= CHARGE_DP);
        }
    }
}
