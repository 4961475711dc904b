//! Where an emergency call goes (`warp_emergency()`): the digits its caller dialled and
//! the destinations the script names, tried in order as a vendor's gateways are (a
//! carrier's primary and backup ESRP or PSAP gateway).

use crate::gateways;
use std::borrow::Cow;

/// The digits dialled in `user`, an R-URI's user part: without its parameters (RFC
/// 3966's local number `911;phone-context=+1`, as many PBXs send it) nor a leading `+`;
/// `None` unless 1 to 15 digits.
pub fn dialled(user: &str) -> Option<&str> {
    let number = user.split(';').next().unwrap_or(user);
    let digits = number.strip_prefix('+').unwrap_or(number);
    let valid = (1..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit());
    valid.then_some(digits)
}

/// The destinations of `list`, comma-separated, in order (blanks around each ignored).
pub fn destinations(list: &str) -> impl Iterator<Item = &str> {
    list.split(',').map(str::trim)
}

/// Checks `list` ([`destinations`]): each a `sip:` or `sips:` URI, or a
/// `host[:port][;params]`; why not, in words (the script's mistake).
pub fn check(list: &str) -> Result<(), String> {
    for destination in destinations(list) {
        // `{` and `}` are no URI's (RFC 3261 25.1), and a failover would read them as a
        // dialstring template's placeholders.
        let odd = |b: u8| b.is_ascii_whitespace() || b.is_ascii_control() || b == b'{' || b == b'}';
        let bare_user = !is_uri(destination) && destination.contains('@');
        if destination.is_empty() || bare_user || destination.bytes().any(odd) {
            return Err(format!(
                "emergency destination {destination:?} (of {list:?}) is neither a SIP URI nor a host"
            ));
        }
    }
    Ok(())
}

/// The R-URI a call to `dialled` gets at `destination`: a URI as it is, a host as
/// `sip:<dialled>@host` (the digits alone, whatever parameters the caller's user part had).
pub fn uri<'a>(destination: &'a str, dialled: &str) -> Cow<'a, str> {
    if is_uri(destination) {
        Cow::Borrowed(destination)
    } else {
        Cow::Owned(format!("sip:{dialled}@{destination}"))
    }
}

/// `uris` in the order they are tried: those whose bit is clear in `last` (see
/// [`gateways::last_of`]) first, then those put last, each group in its own order, as a
/// vendor call's gateways are.
pub fn in_turn<T>(uris: &[T], last: u64) -> impl Iterator<Item = &T> {
    let group = move |put_last| {
        (0u32..)
            .zip(uris)
            .filter(move |&(position, _)| gateways::goes_last(last, position) == put_last)
            .map(|(_, uri)| uri)
    };
    group(false).chain(group(true))
}

/// A URI's scheme is case-blind (RFC 3261 19.1.4): `SIP:911@psap` is one.
fn is_uri(destination: &str) -> bool {
    let scheme = |s: &str| {
        destination
            .get(..s.len())
            .is_some_and(|head| head.eq_ignore_ascii_case(s))
    };
    scheme("sip:") || scheme("sips:")
}

#[cfg(test)]
mod tests {
    use super::{check, dialled, in_turn, uri};

    #[test]
    fn the_digits_dialled_leave_the_user_parts_parameters_out() {
        assert_eq!(dialled("911"), Some("911"));
        assert_eq!(dialled("911;phone-context=+1"), Some("911"));
        assert_eq!(dialled("+933"), Some("933"));
        for none in ["", ";phone-context=+1", "9-1-1", "help", "1234567890123456"] {
            assert_eq!(dialled(none), None, "{none:?}");
        }
    }

    #[test]
    fn destinations_are_uris_or_hosts() {
        assert!(check("sip:911@psap.example").is_ok());
        assert!(check("10.0.0.1:5060, [2001:db8::1]:5062;transport=tcp,sips:911@b").is_ok());
        for bad in ["", "a,", "911 at the PSAP", "911@psap", "sip:{number}@psap"] {
            assert!(check(bad).is_err(), "{bad:?}");
        }
        assert_eq!(uri("10.0.0.1:5060", "911"), "sip:911@10.0.0.1:5060");
        assert_eq!(uri("sip:112@psap", "911"), "sip:112@psap");
        assert!(check("SIP:911@psap.example,Sips:911@b").is_ok());
        assert_eq!(uri("SIP:112@psap", "911"), "SIP:112@psap");
    }

    #[test]
    fn destinations_put_last_follow_the_others_in_their_own_order() {
        let uris = ["a", "b", "c", "d"];
        let order = |last| in_turn(&uris, last).copied().collect::<Vec<_>>();
        assert_eq!(order(0), uris);
        assert_eq!(order(0b0101), ["b", "d", "a", "c"]);
        assert_eq!(order(0b1111), uris);
        assert_eq!(order(1), ["b", "c", "d", "a"]);
    }
}
