//! Telephone numbers: parsing every form a carrier sees into E.164 digits.
//!
//! Accepted: `+E.164`, NANP 10-digit, `1` + 10 digits, `011` + international, and the
//! user part of `sip:`/`tel:` URIs (parameters and visual separators are ignored). A
//! `(0)` trunk prefix right after the country code (`+44 (0) 20 7946 0000`) is dropped.

use std::fmt;

/// E.164 digits (country code first, no `+`), at most 15 of them.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Number {
    value: u64,
    len: u8,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NumberError {
    #[error("empty number")]
    Empty,
    #[error("invalid character {0:?} in number")]
    BadChar(char),
    #[error("number has {0} digits; E.164 allows 15 at most")]
    TooLong(usize),
    #[error("number {0:?} is not +E.164, NANP 10/11-digit or 011-international")]
    Unrecognised(String),
    #[error("NANP number {0:?} has an invalid NPA or NXX (must start with 2-9)")]
    BadNanp(String),
    #[error("number {0:?} has country code 1 but not 10 national digits")]
    BadNanpLength(String),
    #[error("number has {0} digits; an E.164 number has at least {MIN_DIGITS}")]
    TooShort(usize),
    #[error(
        "prefix {0:?} starts with 0; prefixes are E.164 digits, country code first \
         (no 0, 00 or 011 dialling prefix)"
    )]
    PrefixLeadingZero(String),
}

/// The fewest digits of an E.164 number (country code included): the shortest national
/// numbers (Niue, Saint Helena) have four digits after a three-digit country code.
const MIN_DIGITS: usize = 7;

/// Toll-free NPAs of the NANP.
const TOLL_FREE_NPAS: [u16; 7] = [800, 833, 844, 855, 866, 877, 888];

/// NANP NPAs outside the United States (Canada and the Caribbean). US territories
/// (PR, VI, GU, MP, AS) are domestic, as the LERG lists them with US states. Sorted:
/// every call's zone looks a number up here, by binary search.
const NON_US_NPAS: &[u16] = &[
    204, 226, 236, 242, 246, 249, 250, 257, 263, 264, 268, 284, 289, 306, 343, 345, 354, 365, 367,
    368, 382, 387, 403, 416, 418, 428, 431, 437, 438, 441, 450, 460, 468, 473, 474, 506, 514, 519,
    537, 548, 568, 579, 581, 584, 587, 600, 604, 613, 622, 639, 647, 649, 658, 664, 672, 683, 705,
    709, 721, 742, 753, 758, 767, 778, 780, 782, 784, 807, 809, 819, 825, 829, 849, 867, 868, 869,
    873, 876, 879, 902, 905, 942,
];

impl Number {
    /// Builds a number from already-normalised E.164 digits.
    pub fn from_digits(digits: &str) -> Result<Self, NumberError> {
        if digits.is_empty() {
            return Err(NumberError::Empty);
        }
        if digits.len() > 15 {
            return Err(NumberError::TooLong(digits.len()));
        }
        let mut value = 0u64;
        for c in digits.chars() {
            let d = c.to_digit(10).ok_or(NumberError::BadChar(c))?;
            value = value * 10 + d as u64;
        }
        if digits.starts_with('0') {
            return Err(NumberError::Unrecognised(digits.to_string()));
        }
        Ok(Number {
            value,
            len: digits.len() as u8,
        })
    }

    /// Parses any accepted form (see module docs) and normalises it to E.164.
    /// Allocation-free: it runs on every call's ANI and DNIS.
    pub fn parse(input: &str) -> Result<Self, NumberError> {
        // SIP and CSV whitespace is ASCII; Unicode-aware trimming cost more than the rest.
        let (user, params) = uri_user(input.trim_ascii());
        // A local number is a number in its phone-context (RFC 3966 5.1.5):
        // `tel:2079460000;phone-context=+44` is +44 20 7946 0000, not a NANP number.
        if !params.is_empty() && !user.starts_with('+') {
            if let Some(context) = phone_context(params.as_bytes()) {
                return Self::parse_in_context(context, user, input);
            }
        }
        Self::parse_user(user, input)
    }

    /// `user` read as a global number after `context` (`+44`), composed on the stack.
    fn parse_in_context(context: &str, user: &str, input: &str) -> Result<Self, NumberError> {
        let mut buf = [0u8; 64];
        let Some(composed) = buf.get_mut(..context.len() + user.len()) else {
            let digits = context
                .bytes()
                .chain(user.bytes())
                .filter(u8::is_ascii_digit);
            return Err(NumberError::TooLong(digits.count()));
        };
        composed[..context.len()].copy_from_slice(context.as_bytes());
        composed[context.len()..].copy_from_slice(user.as_bytes());
        // Both halves are whole strings, so their concatenation is UTF-8.
        Self::parse_user(std::str::from_utf8(composed).unwrap_or(user), input)
    }

    /// The user part of a number (`input` as given, for error messages).
    fn parse_user(user: &str, input: &str) -> Result<Self, NumberError> {
        let (plus, body) = match user.strip_prefix('+') {
            Some(b) => (true, b),
            None => (false, user),
        };
        let trunk_zero = if plus {
            trunk_zero(body.as_bytes())
        } else {
            None
        };
        let mut value: u64 = 0;
        let mut len = 0usize;
        for (i, &b) in body.as_bytes().iter().enumerate() {
            if Some(i) == trunk_zero {
                continue;
            }
            let d = b.wrapping_sub(b'0');
            if d < 10 {
                if len == 18 {
                    // Too many for any form; the count is the E.164 number's, so an
                    // `011` access code or a `(0)` trunk prefix is not part of it.
                    let digits = body.bytes().filter(u8::is_ascii_digit).count();
                    let access = if !plus && value / POW10[15] == 11 {
                        3
                    } else {
                        usize::from(trunk_zero.is_some())
                    };
                    return Err(NumberError::TooLong(digits - access));
                }
                value = value * 10 + u64::from(d);
                len += 1;
            } else if !matches!(b, b'-' | b'.' | b'(' | b')' | b' ') {
                // Every byte before `i` was ASCII, so `i` starts a character.
                return Err(NumberError::BadChar(
                    body[i..].chars().next().unwrap_or('?'),
                ));
            }
        }
        let unrecognised = || NumberError::Unrecognised(input.to_string());
        let (value, len) = match len {
            0 => return Err(NumberError::Empty),
            _ if plus => (value, len),
            _ if len > 3 && value / POW10[len - 3] == 11 => (value % POW10[len - 3], len - 3),
            10 => (value + POW10[10], 11),
            11 if value / POW10[10] == 1 => (value, len),
            _ => return Err(unrecognised()),
        };
        if len > 15 {
            return Err(NumberError::TooLong(len));
        }
        // A leading zero (after `+` or `011`) is no E.164 number.
        if value < POW10[len - 1] {
            return Err(unrecognised());
        }
        if len < MIN_DIGITS {
            return Err(NumberError::TooShort(len));
        }
        // Country code 1 is the NANP's, whose numbers all have 10 digits after it: a
        // `+1` number of another length is a mistyped one, not an international call.
        if value / POW10[len - 1] == 1 && len != 11 {
            return Err(NumberError::BadNanpLength(input.to_string()));
        }
        let n = Number {
            value,
            len: len as u8,
        };
        if n.is_nanp() && !n.nanp_well_formed() {
            return Err(NumberError::BadNanp(input.to_string()));
        }
        Ok(n)
    }

    /// Rebuilds a number from its digits' value (E.164 has no leading zero).
    pub fn from_value(value: u64) -> Option<Self> {
        let len = POW10.iter().position(|&p| p > value)?;
        (1..=15).contains(&len).then_some(Number {
            value,
            len: len as u8,
        })
    }

    pub fn value(self) -> u64 {
        self.value
    }

    pub fn len(self) -> usize {
        self.len as usize
    }

    pub fn is_empty(self) -> bool {
        self.len == 0
    }

    /// The first `len` digits as a number (no length marker).
    pub fn prefix_value(self, len: usize) -> u64 {
        debug_assert!(len <= self.len());
        self.value / POW10[self.len() - len]
    }

    /// Country code 1 with 10 national digits.
    pub fn is_nanp(self) -> bool {
        self.len == 11 && self.value / POW10[10] == 1
    }

    fn nanp_well_formed(self) -> bool {
        let npa_first = (self.value / POW10[9]) % 10;
        let nxx_first = (self.value / POW10[6]) % 10;
        npa_first >= 2 && nxx_first >= 2
    }

    /// NPA of a NANP number.
    pub fn npa(self) -> Option<u16> {
        self.is_nanp()
            .then(|| ((self.value / POW10[7]) % 1000) as u16)
    }

    /// NPA-NXX as 6 digits.
    pub fn npa_nxx(self) -> Option<u32> {
        self.is_nanp()
            .then(|| ((self.value / POW10[4]) % 1_000_000) as u32)
    }

    /// NPA-NXX-X (thousands block) as 7 digits.
    pub fn npa_nxx_x(self) -> Option<u32> {
        self.is_nanp()
            .then(|| ((self.value / POW10[3]) % 10_000_000) as u32)
    }

    pub fn is_toll_free(self) -> bool {
        self.npa().is_some_and(|npa| TOLL_FREE_NPAS.contains(&npa))
    }

    /// NANP but outside the United States (Canada, Caribbean).
    pub fn is_nanp_non_us(self) -> bool {
        self.npa()
            .is_some_and(|npa| NON_US_NPAS.binary_search(&npa).is_ok())
    }

    /// The 10 national digits of a NANP number (what US gateways usually expect).
    pub fn national(self) -> Option<u64> {
        self.is_nanp().then(|| self.value % POW10[10])
    }

    /// Appends the digits as `Display` writes them, without the formatting machinery.
    pub fn push_to(self, out: &mut String) {
        push_digits(out, self.value, self.len());
    }
}

pub(crate) const POW10: [u64; 20] = {
    let mut t = [1u64; 20];
    let mut i = 1;
    while i < 20 {
        t[i] = t[i - 1] * 10;
        i += 1;
    }
    t
};

/// "00" to "99": two digits per division.
const DIGIT_PAIRS: [u8; 200] = {
    let mut t = [0u8; 200];
    let mut i = 0;
    while i < 100 {
        t[2 * i] = b'0' + (i / 10) as u8;
        t[2 * i + 1] = b'0' + (i % 10) as u8;
        i += 1;
    }
    t
};

/// Appends `value` in decimal, zero-padded to `width` digits (at most 20): the call
/// path writes numbers, rates and dialstrings for every call, where the formatting
/// machinery costs several times the digits.
pub fn push_digits(out: &mut String, mut value: u64, width: usize) {
    let mut buf = [b'0'; 20];
    let mut i = buf.len();
    while value >= 100 {
        let pair = (value % 100) as usize * 2;
        value /= 100;
        i -= 2;
        buf[i..i + 2].copy_from_slice(&DIGIT_PAIRS[pair..pair + 2]);
    }
    if value >= 10 {
        let pair = value as usize * 2;
        i -= 2;
        buf[i..i + 2].copy_from_slice(&DIGIT_PAIRS[pair..pair + 2]);
    } else {
        i -= 1;
        buf[i] = b'0' + value as u8;
    }
    let start = i.min(buf.len() - width.min(buf.len()));
    // SAFETY: `buf` holds ASCII digits only.
    out.push_str(unsafe { std::str::from_utf8_unchecked(&buf[start..]) });
}

/// In `+44 (0) 20 7946 0000` the `(0)` right after the country code is the national
/// trunk prefix, written for callers inside the country and no digit of the E.164
/// number: the index in `body` (after the `+`) of that 0.
fn trunk_zero(body: &[u8]) -> Option<usize> {
    let cc = body.iter().take_while(|b| b.is_ascii_digit()).count();
    if !(1..=3).contains(&cc) {
        return None;
    }
    let at = cc + body[cc..].iter().take_while(|&&b| b == b' ').count();
    (body.get(at..at + 3) == Some(b"(0)")).then_some(at + 1)
}

/// Extracts the user part of a `sip:`, `sips:` or `tel:` URI, and its parameters; other
/// input is a user part already (as Kamailio's `$rU` of a sip: URI without `user=phone`
/// gives it, `+12125550123;npdi;rn=+13035550000`), split at its first `;`.
/// Byte-wise: every call parses two numbers, most of them bare digits.
fn uri_user(s: &str) -> (&str, &str) {
    let s = s.trim_start_matches('<').trim_end_matches('>');
    let b = s.as_bytes();
    let starts = |p: &[u8]| b.get(..p.len()).is_some_and(|h| h.eq_ignore_ascii_case(p));
    let Some(scheme) = [&b"sips:"[..], b"sip:", b"tel:"]
        .into_iter()
        .find(|p| starts(p))
        .map(<[u8]>::len)
    else {
        return s.split_once(';').unwrap_or((s, ""));
    };
    let rest = &b[scheme..];
    let end = rest
        .iter()
        .position(|c| matches!(c, b'@' | b';' | b'?' | b'>'))
        .unwrap_or(rest.len());
    // The telephone-subscriber's parameters: a tel URI's, or a sip user part's before `@`.
    let params = match rest.get(end) {
        Some(b';') => {
            let after = &rest[end + 1..];
            let stop = after
                .iter()
                .position(|c| matches!(c, b'@' | b'?' | b'>'))
                .unwrap_or(after.len());
            &s[scheme + end + 1..scheme + end + 1 + stop]
        }
        _ => "",
    };
    // The scheme and the separators are ASCII, so every end is a character boundary.
    (&s[scheme..scheme + end], params)
}

/// The value of the parameter `name` (either case) among `;`-separated URI or header
/// parameters, trimmed; `None` when absent or without a value.
pub fn param<'a>(params: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    params.split(|&b| b == b';').find_map(|p| {
        let (n, value) = p.split_at(p.iter().position(|&b| b == b'=')?);
        n.trim_ascii()
            .eq_ignore_ascii_case(name)
            .then(|| value[1..].trim_ascii())
    })
}

/// The global-number prefix (`+44`, `+1-303`) a `phone-context` parameter names, if it
/// names one (a domain context names no digits).
pub fn phone_context(params: &[u8]) -> Option<&str> {
    let value = param(params, b"phone-context")?;
    let digits = value.strip_prefix(b"+")?;
    let visual = |b: &u8| b.is_ascii_digit() || matches!(b, b'-' | b'.' | b'(' | b')');
    (!digits.is_empty() && digits.iter().all(visual))
        .then(|| std::str::from_utf8(value).ok())
        .flatten()
}

impl fmt::Display for Number {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:0width$}", self.value, width = self.len())
    }
}

impl fmt::Debug for Number {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "+{self}")
    }
}

/// A digit prefix of E.164 numbers (e.g. of a rate deck row), with its length for matching.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Prefix {
    pub value: u64,
    pub len: u8,
}

impl Prefix {
    pub fn parse(s: &str) -> Result<Self, NumberError> {
        let s = s.trim().trim_start_matches('+');
        if s.is_empty() {
            return Err(NumberError::Empty);
        }
        if s.len() > 15 {
            return Err(NumberError::TooLong(s.len()));
        }
        // Numbers are matched as E.164 digits, which never start with 0: such a prefix
        // could match nothing, and an exclusion written so would silently block nothing.
        if s.starts_with('0') {
            return Err(NumberError::PrefixLeadingZero(s.to_string()));
        }
        let mut value = 0u64;
        for c in s.chars() {
            value = value * 10 + c.to_digit(10).ok_or(NumberError::BadChar(c))? as u64;
        }
        Ok(Prefix {
            value,
            len: s.len() as u8,
        })
    }

    pub fn matches(self, n: Number) -> bool {
        self.len as usize <= n.len() && n.prefix_value(self.len as usize) == self.value
    }

    /// Packed key with the length in the top bits, unique per (value, len).
    pub fn key(self) -> u64 {
        (self.len as u64) << 58 | self.value
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:0width$}", self.value, width = self.len as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn p(s: &str) -> String {
        Number::parse(s).unwrap().to_string()
    }

    #[test]
    fn accepts_every_documented_form() {
        assert_eq!(p("+13036291234"), "13036291234");
        assert_eq!(p("3036291234"), "13036291234");
        assert_eq!(p("13036291234"), "13036291234");
        assert_eq!(p("01144207946000"), "44207946000");
        assert_eq!(p("+44 20 7946 000"), "44207946000");
        assert_eq!(
            p("sip:+13036291234@10.0.0.1:5060;user=phone"),
            "13036291234"
        );
        assert_eq!(p("<sip:3036291234@carrier.example>"), "13036291234");
        assert_eq!(p("tel:+1-303-629-1234;phone-context=x"), "13036291234");
        // A local number in its phone-context (RFC 3966), as a tel URI or a sip user.
        assert_eq!(p("tel:2079460000;phone-context=+44"), "442079460000");
        assert_eq!(p("<tel:629-1234;phone-context=+1-303>"), "13036291234");
        assert_eq!(
            p("sip:2079460000;phone-context=+44@gw.example;user=phone"),
            "442079460000"
        );
        assert_eq!(p("tel:3036291234;phone-context=example.com"), "13036291234");
        assert_eq!(p("sip:3036291234@h;phone-context=+44"), "13036291234");
        assert!(matches!(
            Number::parse("tel:2079460000;phone-context=+44444444444444444444444444444444444444444444444444444444444"),
            Err(NumberError::TooLong(_))
        ));
        assert_eq!(p("(303) 629-1234"), "13036291234");
        // A sip: user part with its telephone-subscriber parameters, as Kamailio's
        // `$rU` gives it without `user=phone` (RFC 4694 number portability).
        assert_eq!(p("+13036291234;npdi;rn=+17205550000"), "13036291234");
        assert_eq!(p("sip:+13036291234;npdi;rn=+17205550000@h"), "13036291234");
        assert_eq!(p("2079460000;phone-context=+44"), "442079460000");
    }

    #[test]
    fn rejects_garbage_with_clear_errors() {
        assert_eq!(Number::parse(""), Err(NumberError::Empty));
        assert_eq!(Number::parse("sip:@host"), Err(NumberError::Empty));
        assert!(matches!(
            Number::parse("30362912a4"),
            Err(NumberError::BadChar('a'))
        ));
        assert!(matches!(
            Number::parse("12345"),
            Err(NumberError::Unrecognised(_))
        ));
        assert!(matches!(
            Number::parse("+1234567890123456"),
            Err(NumberError::TooLong(16))
        ));
        assert!(matches!(
            Number::parse("1303129"),
            Err(NumberError::Unrecognised(_))
        ));
        assert!(matches!(
            Number::parse("0303629123"),
            Err(NumberError::BadNanp(_))
        ));
        assert!(matches!(
            Number::parse("3031291234"),
            Err(NumberError::BadNanp(_))
        ));
        assert!(matches!(
            Number::parse("sip:alice@host"),
            Err(NumberError::BadChar('a'))
        ));
        // Country code 1 with 9 or 11 national digits, in both international forms.
        for short_or_long in ["+1303629123", "+130362912345", "0111303629123"] {
            assert!(
                matches!(
                    Number::parse(short_or_long),
                    Err(NumberError::BadNanpLength(_))
                ),
                "{short_or_long}"
            );
        }
        for tiny in ["+4", "0114", "+44207"] {
            assert!(
                matches!(Number::parse(tiny), Err(NumberError::TooShort(_))),
                "{tiny}"
            );
        }
        assert_eq!(Number::parse("303–629"), Err(NumberError::BadChar('–')));
    }

    #[test]
    fn a_trunk_zero_after_the_country_code_is_dropped() {
        for s in [
            "+44 (0) 20 7946 0000",
            "+44 (0)20 7946 0000",
            "+44(0)2079460000",
            "sip:+44(0)2079460000@gw.example",
        ] {
            assert_eq!(p(s), "442079460000", "{s}");
        }
        assert_eq!(p("+49 (0)30 1234567"), "49301234567");
        // Only a literal (0) right after a leading +CC; other parsing is unchanged.
        assert_eq!(p("+44 20 (0)7946 0000"), "4420079460000");
        assert_eq!(p("+44 (00) 20 7946 000"), "4400207946000");
        assert_eq!(p("011 44 (0) 20 7946 000"), "440207946000");
        assert!(matches!(
            Number::parse("(0) 44 20 7946 0000"),
            Err(NumberError::Unrecognised(_))
        ));
        assert_eq!(
            Number::parse("+(0)44"),
            Err(NumberError::Unrecognised("+(0)44".into()))
        );
        assert_eq!(Number::parse("+44 (0)"), Err(NumberError::TooShort(2)));
        assert_eq!(
            Number::parse("+44 (0) 1234 5678 9012 3456 7"),
            Err(NumberError::TooLong(19))
        );
    }

    #[test]
    fn too_long_counts_the_e164_digits_not_the_011_prefix() {
        // 011 + 16 digits: the number dialled has 16 digits, the access code is no part of it.
        assert_eq!(
            Number::parse("0114412345678901234"),
            Err(NumberError::TooLong(16))
        );
        assert_eq!(
            Number::parse("011 44 1234 5678 9012 3456"),
            Err(NumberError::TooLong(18))
        );
        assert_eq!(
            Number::parse("+4412345678901234567"),
            Err(NumberError::TooLong(19))
        );
    }

    #[test]
    fn non_us_npas_are_sorted_for_binary_search() {
        assert!(NON_US_NPAS.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn nanp_parts() {
        let n = Number::parse("3036291234").unwrap();
        assert_eq!(n.npa(), Some(303));
        assert_eq!(n.npa_nxx(), Some(303629));
        assert_eq!(n.npa_nxx_x(), Some(3036291));
        assert_eq!(n.national(), Some(3036291234));
        assert!(!n.is_toll_free());
        assert!(Number::parse("8005551234").unwrap().is_toll_free());
        assert!(Number::parse("4165551234").unwrap().is_nanp_non_us());
        assert!(!Number::parse("7875551234").unwrap().is_nanp_non_us());
        assert_eq!(Number::parse("+442079460000").unwrap().npa(), None);
    }

    #[test]
    fn prefixes_keep_their_length() {
        let a = Prefix::parse("1303").unwrap();
        assert!(a.matches(Number::parse("3036291234").unwrap()));
        assert!(!a.matches(Number::parse("3046291234").unwrap()));
        assert_ne!(
            Prefix::parse("1").unwrap().key(),
            Prefix::parse("10").unwrap().key()
        );
        assert!(Prefix::parse("12x").is_err());
    }

    #[test]
    fn a_prefix_with_a_dialling_zero_is_refused_as_it_could_match_nothing() {
        for s in ["01144", "0044", "0", "+07"] {
            let e = Prefix::parse(s).unwrap_err();
            assert!(matches!(e, NumberError::PrefixLeadingZero(_)), "{s}: {e}");
            assert!(e.to_string().contains("starts with 0"), "{e}");
        }
        assert_eq!(Prefix::parse("+44").unwrap(), Prefix::parse("44").unwrap());
    }

    proptest! {
        #[test]
        fn parse_never_panics(s in "\\PC{0,40}") {
            let _ = Number::parse(&s);
        }

        #[test]
        fn nanp_forms_agree(npa in 200u64..1000, nxx in 200u64..1000, line in 0u64..10000) {
            let ten = format!("{npa}{nxx}{line:04}");
            let a = Number::parse(&ten).unwrap();
            prop_assert_eq!(a, Number::parse(&format!("1{ten}")).unwrap());
            prop_assert_eq!(a, Number::parse(&format!("+1{ten}")).unwrap());
            prop_assert_eq!(a, Number::parse(&format!("sip:{ten}@h")).unwrap());
            prop_assert_eq!(a.to_string(), format!("1{ten}"));
        }

        #[test]
        fn digits_match_the_formatter(value in any::<u64>(), width in 0usize..24) {
            let mut out = String::from("x");
            push_digits(&mut out, value, width);
            prop_assert_eq!(out, format!("x{value:0w$}", w = width.min(20)));
        }
    }
}
