//! `warp_identify()`: the trunk, and so the customer, a request comes from — the
//! authenticated user's, else the source address's, as `warp_route()` finds it — for a
//! script that acts on the customer before routing (which auth to ask for, its own
//! policy). Sets `$warp(trunk)` and `$warp(ban)`; refused, `$warp(code)` says 403.
//! `$warp(keepalive)` then says whether that trunk is sent in-dialog keepalives
//! ([`crate::keepalive`]).
//!
//! `warp_authenticated()`: the script's word that the request's digest credentials
//! were checked and right. Only then does their username identify the trunk: the
//! auth module marks the credentials it looks at before it checks the password, so
//! the mark alone would let a wrong password pick a trunk. Checked against
//! `$warp(ha1)`, they count only under the username that hash was looked up for.

use crate::avp;
use crate::decision;
use crate::guard;
use crate::log::lm_warn;
use crate::route;
use crate::sipmsg::SipMsg;
use crate::snapshot;
use crate::stats::Func;
use crate::tm;
use kamailio_sys as k;
use std::borrow::Cow;
use std::ffi::{c_char, c_int};

fn warp_identify(msg: &SipMsg) -> Result<bool, String> {
    let Some(snapshot) = snapshot::current() else {
        decision::unavailable(msg, "no routing snapshot loaded".into());
        return Ok(false);
    };
    let vouched = vouched(msg);
    let credentials = vouched.as_ref().map(Vouched::credentials);
    let trunk = route::trunk(&snapshot, credentials, msg.source_ip());
    if !snapshot::intact(&snapshot) {
        decision::unavailable(msg, "snapshot file rewritten in place".into());
        return Ok(false);
    }
    match trunk {
        Ok(trunk) => {
            decision::set_trunk(msg, trunk.id, trunk.ban);
            Ok(true)
        }
        Err(why) => {
            decision::refuse(msg, 403, "Forbidden", why);
            Ok(false)
        }
    }
}

/// `$warp(ha1)`: the ha1 of the first credentials `msg` offers that the snapshot has
/// one for, for `pv_auth_check()` to check them against, written to `out` — a username
/// it knows (of a trunk whose auth type asks for credentials), with a password set,
/// offered in the realm it was hashed in. The first credentials of all may be another
/// realm's (a proxy on the way challenged too), while the auth module checks the first
/// in its own. The call path reads it from the snapshot, never from a database.
pub fn offered_ha1(msg: &SipMsg, out: &mut String) -> bool {
    out.clear();
    let Some(snapshot) = snapshot::current() else {
        return false;
    };
    let offered = msg.offered_credentials(|user, realm| {
        let ha1 = snapshot
            .credential(user)
            .filter(|c| c.realm == realm)?
            .ha1?;
        out.push_str(ha1);
        Some(user.to_owned())
    });
    let Some(user) = offered.filter(|_| snapshot::intact(&snapshot)) else {
        return false;
    };
    decision::set_ha1(msg, &user, out);
    true
}

/// `msg`'s credentials the script vouched for, as read from the message.
pub struct Vouched<'m> {
    username: Cow<'m, str>,
    /// The hash `$warp(ha1)` gave for them, if the script checked them against it
    /// (`warp_authenticated()` vouches for no others).
    ha1: Option<String>,
}

impl Vouched<'_> {
    pub fn credentials(&self) -> route::Credentials<'_> {
        route::Credentials {
            username: &self.username,
            ha1: self.ha1.as_deref(),
        }
    }
}

/// The credentials of `msg`, if the script vouched for them (in this process, or in
/// the one that handed the call over: [`hand_over`]); a call from an address reads
/// nothing more.
pub fn vouched(msg: &SipMsg) -> Option<Vouched<'_>> {
    let vouched_for = decision::authenticated(msg) || (tm::resumed() && handed_over(msg));
    if !vouched_for {
        return None;
    }
    Some(Vouched {
        username: msg.credentials_user()?,
        ha1: decision::ha1(msg).map(|(_, ha1)| ha1),
    })
}

/// The AVP that carries the script's word on a request's credentials to the process a
/// call is handed to (`warp_dip_async()`): `user` LF `ha1` as `$warp(ha1)` gave them,
/// or empty when no `$warp(ha1)` was read. The word itself lives in this process only.
const VOUCHED: &str = "warp_vouched";

/// Keeps the script's word on `msg`'s credentials, if it gave it, in the AVPs its
/// transaction takes (or holds), for the process that resumes the call.
pub fn hand_over(msg: &SipMsg) -> Result<(), String> {
    if !decision::authenticated(msg) {
        return Ok(());
    }
    let word = decision::ha1(msg).map_or(String::new(), |(user, ha1)| format!("{user}\n{ha1}"));
    avp::clear(VOUCHED);
    avp::push(VOUCHED, &word)
}

/// Takes up what [`hand_over`] kept for `msg`: whether the script vouched for its
/// credentials before the call was handed to this process.
fn handed_over(msg: &SipMsg) -> bool {
    let Some(word) = avp::get(VOUCHED) else {
        return false;
    };
    if let Some((user, ha1)) = word.split_once('\n') {
        decision::set_ha1(msg, user, ha1);
    }
    decision::set_authenticated(msg);
    true
}

fn warp_authenticated(msg: &SipMsg) -> Result<bool, String> {
    let Some(user) = msg.credentials_user() else {
        return Ok(false);
    };
    // The auth module checks the first credentials in its realm, `$warp(ha1)` looked
    // at the first it has a hash for: with a second header, one trunk's hash could
    // pass another username's credentials.
    if let Some((looked_up, _)) = decision::ha1(msg).filter(|(u, _)| *u != user) {
        lm_warn!(
            "credentials of user {user} were checked against the ha1 of user {looked_up}: \
             not vouched for"
        );
        return Ok(false);
    }
    decision::set_authenticated(msg);
    Ok(true)
}

/// kamailio.cfg: `warp_authenticated()`.
pub unsafe extern "C" fn w_warp_authenticated(
    msg: *mut k::sip_msg,
    _: *mut c_char,
    _: *mut c_char,
) -> c_int {
    guard::script(Func::Authenticated, msg, warp_authenticated)
}

/// KEMI: `KSR.warp.warp_authenticated()`.
pub unsafe extern "C" fn ki_warp_authenticated(msg: *mut k::sip_msg) -> c_int {
    guard::kemi(Func::Authenticated, msg, warp_authenticated)
}

/// kamailio.cfg: `warp_identify()`.
pub unsafe extern "C" fn w_warp_identify(
    msg: *mut k::sip_msg,
    _: *mut c_char,
    _: *mut c_char,
) -> c_int {
    guard::script(Func::Identify, msg, warp_identify)
}

/// KEMI: `KSR.warp.warp_identify()`.
pub unsafe extern "C" fn ki_warp_identify(msg: *mut k::sip_msg) -> c_int {
    guard::kemi(Func::Identify, msg, warp_identify)
}
