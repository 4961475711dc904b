//! The last decision taken for the message this process is handling: what the
//! `$warp(name)` pseudo-variables read. Per process by design (a Kamailio worker handles
//! one message at a time); a value set for an earlier message is never returned. A
//! routed call is kept as its record and its fields are read from there when asked.

use crate::params;
use crate::record::{self, Call, Hop, LaterAttempts};
use crate::sipmsg::{AniSource, SipMsg};
use std::cell::RefCell;
use std::fmt::Write;
use warp_core::money::Amount;
use warp_core::Number;

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

/// A `$warp(...)` value, borrowed from the state until the script reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Value<'a> {
    Str(&'a str),
    Int(i64),
}

/// Why the last `warp_route()` refused the call.
struct Refusal {
    code: u16,
    reason: &'static str,
    why: String,
}

/// Buffers are cleared, not dropped, between messages: the next call reuses them.
#[derive(Default)]
struct State {
    msg: Option<(u32, i32)>,
    ani: String,
    ani_source: Option<AniSource>,
    /// (trunk id, BAN) `warp_identify()` found; a routed call's record says it too.
    trunk: Option<(String, String)>,
    /// The script vouched for the request's digest credentials (`warp_authenticated()`).
    authenticated: bool,
    /// The username `$warp(ha1)` gave the password hash of, and that hash.
    ha1: Option<(String, String)>,
    refusal: Option<Refusal>,
    /// The call's record (see [`crate::record`]); empty when not routed.
    record: String,
    /// The attempts the record does not list yet (appended when first needed).
    later: Option<LaterAttempts>,
    /// The record has yet to reach the failover AVP ([`crate::failover::flush`]).
    unstored: bool,
    /// `warp_redirect()` made the later attempts branches already.
    redirected: bool,
    /// The number `warp_needs_dip()` found the call would be dipped for.
    dip: Option<Number>,
    /// `$warp(vendor_rate)` and `$warp(customer_rate)` as text, formatted when read:
    /// one buffer each, so a script comparing the two reads both intact.
    rates: [String; 2],
}

impl State {
    /// Forgets what belonged to an earlier message.
    fn enter(&mut self, msg: &SipMsg) {
        if self.msg != Some(msg.identity()) {
            self.msg = Some(msg.identity());
            self.ani.clear();
            self.ani_source = None;
            self.trunk = None;
            self.authenticated = false;
            self.ha1 = None;
            self.refusal = None;
            self.record.clear();
            self.later = None;
            self.unstored = false;
            self.redirected = false;
            self.dip = None;
        }
    }

    /// The record with every attempt listed.
    fn complete(&mut self) -> &str {
        if let Some(later) = self.later.take() {
            later.push_to(&mut self.record);
        }
        &self.record
    }
}

thread_local! {
    static STATE: RefCell<State> = RefCell::default();
}

/// The calling number found in `msg` and where.
pub fn set_ani(msg: &SipMsg, source: AniSource, ani: &str) {
    STATE.with_borrow_mut(|s| {
        s.enter(msg);
        s.ani.clear();
        s.ani.push_str(ani);
        s.ani_source = Some(source);
    });
}

/// The script checked `msg`'s digest credentials and they were right.
pub fn set_authenticated(msg: &SipMsg) {
    STATE.with_borrow_mut(|s| {
        s.enter(msg);
        s.authenticated = true;
    });
}

/// `$warp(ha1)` gave `msg`'s script `ha1`, the password hash of `user`.
pub fn set_ha1(msg: &SipMsg, user: &str, ha1: &str) {
    STATE.with_borrow_mut(|s| {
        s.enter(msg);
        s.ha1 = Some((user.to_owned(), ha1.to_owned()));
    });
}

/// The username `$warp(ha1)` gave `msg`'s script the password hash of, and that hash,
/// if it did.
pub fn ha1(msg: &SipMsg) -> Option<(String, String)> {
    STATE.with_borrow(|s| {
        (s.msg == Some(msg.identity()))
            .then(|| s.ha1.clone())
            .flatten()
    })
}

/// Whether the script vouched for `msg`'s credentials ([`set_authenticated`]).
pub fn authenticated(msg: &SipMsg) -> bool {
    STATE.with_borrow(|s| s.msg == Some(msg.identity()) && s.authenticated)
}

/// `msg`'s call would be dipped for `number` (None: it would not).
pub fn set_dip(msg: &SipMsg, number: Option<Number>) {
    STATE.with_borrow_mut(|s| {
        s.enter(msg);
        s.dip = number;
    });
}

/// The number [`set_dip`] said `msg`'s call would be dipped for, taken.
pub fn take_dip(msg: &SipMsg) -> Option<Number> {
    STATE.with_borrow_mut(|s| {
        (s.msg == Some(msg.identity()))
            .then(|| s.dip.take())
            .flatten()
    })
}

/// The trunk `msg` came from, and its customer.
pub fn set_trunk(msg: &SipMsg, trunk: &str, ban: &str) {
    STATE.with_borrow_mut(|s| {
        s.enter(msg);
        s.trunk = Some((trunk.to_owned(), ban.to_owned()));
    });
}

/// `msg`'s call was refused: `code`/`reason` to answer, `why` in words.
pub fn refuse(msg: &SipMsg, code: u16, reason: &'static str, why: String) {
    STATE.with_borrow_mut(|s| {
        s.enter(msg);
        s.refusal = Some(Refusal { code, reason, why });
    });
}

/// `msg` cannot be decided (`why`: no snapshot loaded, a caught panic): the
/// configured fallback reply.
pub fn unavailable(msg: &SipMsg, why: String) {
    let config = params::config();
    refuse(msg, config.fallback_code, &config.fallback_reason, why);
}

/// An empty buffer for `msg`'s record, to be given back with [`put_record`] (it keeps
/// its capacity from call to call). A new decision: an earlier refusal is forgotten.
pub fn take_record(msg: &SipMsg) -> String {
    STATE.with_borrow_mut(|s| {
        s.enter(msg);
        s.refusal = None;
        let mut record = std::mem::take(&mut s.record);
        record.clear();
        s.later = None;
        s.unstored = false;
        s.redirected = false;
        record
    })
}

/// `msg`'s call is routed as `record` says (empty: not routed); `unstored` when it has
/// yet to reach the failover AVP, `later` the attempts it does not list yet.
pub fn put_record(msg: &SipMsg, record: String, later: Option<LaterAttempts>, unstored: bool) {
    STATE.with_borrow_mut(|s| {
        s.enter(msg);
        s.record = record;
        s.later = later;
        s.unstored = unstored;
    });
}

/// Calls `f` with `msg`'s record, every attempt listed, if it has yet to reach the
/// failover AVP, and marks it stored; `None` if nothing waits.
pub fn take_unstored<R>(msg: &SipMsg, f: impl FnOnce(&str) -> R) -> Option<R> {
    STATE.with_borrow_mut(|s| {
        if s.msg != Some(msg.identity()) || !s.unstored {
            return None;
        }
        s.unstored = false;
        Some(f(s.complete()))
    })
}

/// Calls `f` with `msg`'s record, every attempt listed; `None` if `msg` was not routed.
pub fn with_record<R>(msg: &SipMsg, f: impl FnOnce(&str) -> R) -> Option<R> {
    STATE.with_borrow_mut(|s| {
        if s.msg != Some(msg.identity()) || s.record.is_empty() {
            return None;
        }
        Some(f(s.complete()))
    })
}

/// Marks `msg`'s routed call as made branches by `warp_redirect()`; false if it was
/// already (a second call must not list the attempts twice).
pub fn first_redirect(msg: &SipMsg) -> bool {
    STATE.with_borrow_mut(|s| {
        s.enter(msg);
        !std::mem::replace(&mut s.redirected, true)
    })
}

/// Calls `f` with the value of `field` for `msg` (None when unset for this message).
pub fn with<R>(msg: &SipMsg, field: Field, f: impl FnOnce(Option<Value<'_>>) -> R) -> R {
    STATE.with_borrow_mut(|s| {
        if s.msg != Some(msg.identity()) {
            return f(None);
        }
        let (call, hop) = match record::split(&s.record) {
            Some((call, hop, _)) => (Call::parse(call), Hop::parse(hop)),
            None => (None, None),
        };
        let refusal = s.refusal.as_ref();
        let [vendor_rate, customer_rate] = &mut s.rates;
        let rate = |text: &'_ mut String, amount: Amount| {
            text.clear();
            let _ = write!(text, "{amount}");
        };
        let value = match field {
            Field::Ani => s.ani_source.map(|_| Value::Str(&s.ani)),
            Field::AniSource => s.ani_source.map(|a| Value::Str(a.name())),
            Field::Code => refusal.map(|r| Value::Int(r.code.into())),
            Field::Reason => refusal.map(|r| Value::Str(r.reason)),
            Field::Why => refusal
                .filter(|r| !r.why.is_empty())
                .map(|r| Value::Str(&r.why)),
            Field::Ban => call
                .map(|c| c.ban)
                .or(s.trunk.as_ref().map(|(_, ban)| ban.as_str()))
                .map(Value::Str),
            Field::Trunk => call
                .map(|c| c.trunk)
                .or(s.trunk.as_ref().map(|(trunk, _)| trunk.as_str()))
                .map(Value::Str),
            Field::Lrn => call.map(|c| Value::Str(c.lrn)),
            Field::Vendor => hop.map(|h| Value::Str(h.vendor)),
            Field::Zone => hop.map(|h| Value::Str(h.zone)),
            Field::VendorRate => hop.map(|h| {
                rate(vendor_rate, h.vendor_rate);
                Value::Str(vendor_rate)
            }),
            Field::CustomerRate => hop.map(|h| {
                rate(customer_rate, h.customer_rate);
                Value::Str(customer_rate)
            }),
            Field::Partition => hop.and_then(|h| h.partition).map(Value::Str),
            Field::Attempt => hop.map(|h| Value::Int(h.attempt.into())),
        };
        f(value)
    })
}
