//! Jurisdiction: which rate column (zone) a call from ANI to DNIS is priced in.

use crate::number::Number;
use serde::Serialize;
use std::fmt;
use std::str::FromStr;

/// A rate column. The discriminant is the column's index in the snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[repr(u8)]
pub enum Zone {
    Interstate = 0,
    Intrastate = 1,
    Local = 2,
    Zone1 = 3,
    #[serde(rename = "TOLLFREE")]
    TollFree = 4,
    International = 5,
}

impl Zone {
    pub const ALL: [Zone; 6] = [
        Zone::Interstate,
        Zone::Intrastate,
        Zone::Local,
        Zone::Zone1,
        Zone::TollFree,
        Zone::International,
    ];

    pub fn from_index(i: u8) -> Option<Zone> {
        Zone::ALL.get(i as usize).copied()
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Zone::Interstate => "INTERSTATE",
            Zone::Intrastate => "INTRASTATE",
            Zone::Local => "LOCAL",
            Zone::Zone1 => "ZONE1",
            Zone::TollFree => "TOLLFREE",
            Zone::International => "INTERNATIONAL",
        }
    }
}

impl fmt::Display for Zone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Zone {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        crate::model::by_name(&Zone::ALL, Zone::as_str, "zone", s)
    }
}

/// The outcome of classification: a zone, or indeterminate (the vendor's policy decides).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Jurisdiction {
    Zone(Zone),
    Indeterminate,
}

impl Jurisdiction {
    /// The zone used for a party whose policy maps indeterminate traffic to `policy`.
    pub fn resolve(self, policy: Zone) -> Zone {
        match self {
            Jurisdiction::Zone(z) => z,
            Jurisdiction::Indeterminate => policy,
        }
    }
}

impl Serialize for Jurisdiction {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl fmt::Display for Jurisdiction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Jurisdiction::Zone(z) => z.fmt(f),
            Jurisdiction::Indeterminate => f.write_str("INDETERMINATE"),
        }
    }
}

/// What the LERG says of one NPA-NXX(-X), as far as jurisdiction needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Place {
    pub state: [u8; 2],
    pub rate_center: u32,
}

/// Classifies a call. `term` is the LERG place of the LRN (or of the DNIS when not
/// ported), `orig` that of the ANI; `local` says whether two rate centres share a
/// local calling area. The caller looks both places up once and reuses them.
pub fn classify(
    ani: Option<Number>,
    dnis: Number,
    term: Option<Place>,
    orig: Option<Place>,
    local: impl Fn(u32, u32) -> bool,
) -> Jurisdiction {
    if dnis.is_toll_free() {
        return Jurisdiction::Zone(Zone::TollFree);
    }
    if !dnis.is_nanp() {
        return Jurisdiction::Zone(Zone::International);
    }
    if dnis.is_nanp_non_us() {
        return Jurisdiction::Zone(Zone::Zone1);
    }
    let (Some(term), Some(orig)) = (term, orig.filter(|_| ani.is_some_and(Number::is_nanp))) else {
        return Jurisdiction::Indeterminate;
    };
    let zone = if orig.rate_center == term.rate_center || local(orig.rate_center, term.rate_center)
    {
        Zone::Local
    } else if orig.state == term.state {
        Zone::Intrastate
    } else {
        Zone::Interstate
    };
    Jurisdiction::Zone(zone)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> Number {
        Number::parse(s).unwrap()
    }

    /// 303-629 Denver CO (rc 1), 303-444 Boulder CO (rc 2, local to Denver),
    /// 719-555 Colorado Springs CO (rc 3), 212-555 New York NY (rc 4).
    fn lerg(x: Number) -> Option<Place> {
        let co = *b"CO";
        match x.npa_nxx()? {
            303629 => Some(Place {
                state: co,
                rate_center: 1,
            }),
            303444 => Some(Place {
                state: co,
                rate_center: 2,
            }),
            719555 => Some(Place {
                state: co,
                rate_center: 3,
            }),
            212555 => Some(Place {
                state: *b"NY",
                rate_center: 4,
            }),
            _ => None,
        }
    }

    fn local(a: u32, b: u32) -> bool {
        matches!((a.min(b), a.max(b)), (1, 2))
    }

    fn zone(ani: Option<&str>, dnis: &str, lrn: Option<&str>) -> Jurisdiction {
        let (d, a) = (n(dnis), ani.map(n));
        let term = lerg(lrn.map(n).unwrap_or(d));
        classify(a, d, term, a.and_then(lerg), local)
    }

    #[test]
    fn follows_the_documented_order() {
        use Jurisdiction::*;
        assert_eq!(
            zone(Some("3036291111"), "8005551234", None),
            Zone(super::Zone::TollFree)
        );
        assert_eq!(
            zone(Some("3036291111"), "+442079460000", None),
            Zone(super::Zone::International)
        );
        assert_eq!(
            zone(Some("3036291111"), "4165551234", None),
            Zone(super::Zone::Zone1)
        );
        assert_eq!(
            zone(Some("3036291111"), "3036292222", None),
            Zone(super::Zone::Local)
        );
        assert_eq!(
            zone(Some("3036291111"), "3034442222", None),
            Zone(super::Zone::Local)
        );
        assert_eq!(
            zone(Some("3036291111"), "7195552222", None),
            Zone(super::Zone::Intrastate)
        );
        assert_eq!(
            zone(Some("3036291111"), "2125552222", None),
            Zone(super::Zone::Interstate)
        );
    }

    #[test]
    fn the_lrn_decides_where_a_ported_number_terminates() {
        // Dialled a New York number that was ported to a Denver switch.
        let j = zone(Some("3036291111"), "2125552222", Some("3034440000"));
        assert_eq!(j, Jurisdiction::Zone(Zone::Local));
    }

    #[test]
    fn unknown_or_foreign_ani_is_indeterminate() {
        assert_eq!(zone(None, "2125552222", None), Jurisdiction::Indeterminate);
        assert_eq!(
            zone(Some("+442079460000"), "2125552222", None),
            Jurisdiction::Indeterminate
        );
        assert_eq!(
            zone(Some("5055551111"), "2125552222", None),
            Jurisdiction::Indeterminate
        );
        assert_eq!(
            Jurisdiction::Indeterminate.resolve(Zone::Intrastate),
            Zone::Intrastate
        );
    }

    #[test]
    fn zone_names_parse() {
        assert_eq!("tollfree".parse::<Zone>().unwrap(), Zone::TollFree);
        assert!("bogus".parse::<Zone>().is_err());
        for z in Zone::ALL {
            assert_eq!(Zone::from_index(z as u8), Some(z));
        }
    }
}
