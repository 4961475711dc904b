//! String AVPs on the message being processed. tm moves a request's AVPs into its
//! transaction, so what `warp_route()` stores here is what a `failure_route` — run by
//! whichever process sees the failure — reads back.

use crate::kstr;
use kamailio_sys as k;
use std::ptr::null_mut;

const FLAGS: u32 = k::AVP_NAME_STR | k::AVP_VAL_STR;

fn name(name: &str) -> k::int_str {
    k::int_str {
        s: kstr::from_bytes(name.as_bytes()),
    }
}

/// Adds `name = value` in front of the AVPs of that name (the core copies both).
pub fn push(avp: &str, value: &str) -> Result<(), String> {
    let value = k::int_str {
        s: kstr::from_bytes(value.as_bytes()),
    };
    // SAFETY: the core copies name and value into its own (pkg or shm) memory.
    if unsafe { k::add_avp(FLAGS, name(avp), value) } < 0 {
        return Err(format!("cannot add AVP {avp}"));
    }
    Ok(())
}

/// The most recently added value of `name`, and its AVP.
fn first(avp: &str) -> Option<(String, *mut k::avp_t)> {
    let mut value = k::int_str { n: 0 };
    // SAFETY: searches the current AVP list; `value` receives a view into the AVP.
    let found = unsafe { k::search_first_avp(FLAGS, name(avp), &mut value, null_mut()) };
    if found.is_null() {
        return None;
    }
    // SAFETY: a string AVP's value is a str inside the AVP, alive until it is destroyed.
    Some((unsafe { kstr::to_string(&value.s) }, found))
}

/// The most recently added value of `name`.
pub fn get(avp: &str) -> Option<String> {
    first(avp).map(|(value, _)| value)
}

/// Removes every value of `name`.
pub fn clear(avp: &str) {
    while let Some((_, found)) = first(avp) {
        // SAFETY: `found` is in the current list.
        unsafe { k::destroy_avp(found) };
    }
}
