//! `$warp(keepalive)` and `$warp(vendor_keepalive)`: whether the two sides of a call are
//! sent in-dialog keepalives (the shipped config asks the dialog module for them, `ka-src`
//! and `ka-dst`, only then). A side whose switch ignores in-dialog OPTIONS takes none:
//! they would end each of its calls a few minutes in.

use crate::decision::{self, Field, Value};
use crate::sipmsg::SipMsg;
use crate::snapshot;
use warp_core::Snapshot;

/// `$warp(keepalive)`: false only when the trunk the caller of `msg` comes from
/// (`$warp(trunk)`, as `warp_identify()` or `warp_route()` found it) says its PBX takes
/// none.
pub fn caller(msg: &SipMsg) -> bool {
    of(msg, Field::Trunk, |s, id| {
        s.trunk_by_id(id).map(|t| t.keepalive)
    })
}

/// `$warp(vendor_keepalive)`: false only when the vendor of the attempt in progress
/// (`$warp(vendor)`: `warp_route()`'s first, after `warp_next_route()` the next) says
/// its switch takes none.
pub fn vendor(msg: &SipMsg) -> bool {
    of(msg, Field::Vendor, |s, id| {
        s.vendor_by_id(id).map(|v| v.keepalive)
    })
}

/// The flag `lookup` finds for `field`'s id in the current snapshot. Without one (no
/// such id set yet, or a new snapshot has none), true, as every side was before it could
/// say: never `$null`, so the script compares it with a number unguarded.
fn of(msg: &SipMsg, field: Field, lookup: impl Fn(&Snapshot, &str) -> Option<bool>) -> bool {
    let Some(snapshot) = snapshot::current() else {
        return true;
    };
    let flag = decision::with(msg, field, |value| match value {
        Some(Value::Str(id)) => lookup(&snapshot, id),
        _ => None,
    });
    flag.filter(|_| snapshot::intact(&snapshot)).unwrap_or(true)
}
