//! `$warp(attest)`: the STIR/SHAKEN attestation (ATIS-1000074 5.2.3) the edge can give
//! the current call. "A" (full) when the calling number, as `$warp(ani_e164)` reads it,
//! is one of the DID inventory's numbers assigned to the call's customer (`$warp(ban)`,
//! the trunk's): the edge knows the customer and its right to that number. "B" otherwise
//! (the customer is known, its right to the number is not), also with no snapshot or
//! no customer yet: never more than the edge can vouch for.
//!
//! Worked out when read, not by `warp_route()`: a call the script signs no PASSporT for
//! pays nothing for it.

use crate::ani;
use crate::decision::{self, Field, Value};
use crate::sipmsg::SipMsg;
use crate::snapshot;

pub fn attestation(msg: &SipMsg) -> &'static str {
    if full(msg) {
        "A"
    } else {
        "B"
    }
}

fn full(msg: &SipMsg) -> bool {
    // Before the decision's state is borrowed: finding the ANI records it there.
    let Some(ani) = ani::find_number(msg) else {
        return false;
    };
    let Some(snapshot) = snapshot::current() else {
        return false;
    };
    let assigned = decision::with(msg, Field::Ban, |ban| match ban {
        Some(Value::Str(ban)) => snapshot.is_assigned(ani, ban),
        _ => false,
    });
    // A file rewritten in place under the lookup may have answered for another one.
    assigned && snapshot::intact(&snapshot)
}
