//! The last decision taken for the message this process is handling: what the
//! `$warp(name)` pseudo-variables read. Per process by design (a Kamailio worker handles
//! one message at a time); a value set for an earlier message is never returned.

use crate::route::{Call, Hop};
use crate::sipmsg::SipMsg;
use std::cell::RefCell;

/// The names `$warp(...)` accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Ani,
    AniSource,
    Code,
    Reason,
    Why,
    Ban,
    Trunk,
    Zone,
    Lrn,
    Vendor,
    VendorRate,
    CustomerRate,
    Partition,
    Attempt,
}

impl Field {
    const ALL: [(Field, &'static str); 14] = [
        (Field::Ani, "ani"),
        (Field::AniSource, "ani_source"),
        (Field::Code, "code"),
        (Field::Reason, "reason"),
        (Field::Why, "why"),
        (Field::Ban, "ban"),
        (Field::Trunk, "trunk"),
        (Field::Zone, "zone"),
        (Field::Lrn, "lrn"),
        (Field::Vendor, "vendor"),
        (Field::VendorRate, "vendor_rate"),
        (Field::CustomerRate, "customer_rate"),
        (Field::Partition, "partition"),
        (Field::Attempt, "attempt"),
    ];

    pub fn parse(name: &str) -> Option<Field> {
        Self::ALL.iter().find(|(_, n)| *n == name).map(|(f, _)| *f)
    }

    pub fn from_index(i: usize) -> Option<Field> {
        Self::ALL.get(i).map(|(f, _)| *f)
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Str(String),
    Int(i64),
}

#[derive(Default)]
struct State {
    msg: Option<(u32, i32)>,
    values: [Option<Value>; Field::ALL.len()],
}

thread_local! {
    static STATE: RefCell<State> = RefCell::default();
}

pub fn set(msg: &SipMsg, field: Field, value: Value) {
    STATE.with_borrow_mut(|s| {
        if s.msg != Some(msg.identity()) {
            *s = State {
                msg: Some(msg.identity()),
                ..State::default()
            };
        }
        s.values[field.index()] = Some(value);
    });
}

/// Calls `f` with the value of `field` for `msg` (None when unset for this message).
pub fn with<R>(msg: &SipMsg, field: Field, f: impl FnOnce(Option<&Value>) -> R) -> R {
    STATE.with_borrow(|s| {
        let current = (s.msg == Some(msg.identity())).then(|| s.values[field.index()].as_ref());
        f(current.flatten())
    })
}

/// The call's customer side: `ban`, `trunk`, `lrn`.
pub fn expose_call(msg: &SipMsg, call: &Call) {
    for (field, value) in [
        (Field::Ban, &call.ban),
        (Field::Trunk, &call.trunk),
        (Field::Lrn, &call.lrn),
    ] {
        set(msg, field, Value::Str(value.clone()));
    }
}

/// The vendor being tried: `attempt` (1 for the first), `vendor`, `zone`, the rates and
/// `partition`.
pub fn expose_hop(msg: &SipMsg, attempt: u32, hop: &Hop) {
    set(msg, Field::Attempt, Value::Int(attempt.into()));
    let fields = [
        (Field::Vendor, Some(&hop.vendor)),
        (Field::Zone, Some(&hop.zone)),
        (Field::VendorRate, Some(&hop.vendor_rate)),
        (Field::CustomerRate, Some(&hop.customer_rate)),
        (Field::Partition, hop.partition.as_ref()),
    ];
    for (field, value) in fields {
        if let Some(v) = value {
            set(msg, field, Value::Str(v.clone()));
        }
    }
}
