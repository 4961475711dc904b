//! RPC commands for kamcmd / jsonrpc: `warp.version`, `warp.stats`, `warp.config`,
//! `warp.reload`, `warp.route`, `warp.trunks`, `warp.gateways`.
//! They run in the RPC process (ctl), so everything they report comes from shared
//! memory or from the configuration every process inherited.

use crate::clock;
use crate::gateways;
use crate::guard;
use crate::kamailio_stats::Group;
use crate::limits;
use crate::params;
use crate::record::{self, Attempts, Hop};
use crate::route;
use crate::snapshot;
use crate::stats;
use kamailio_sys as k;
use std::ffi::{c_char, c_void, CStr, CString};
use std::net::IpAddr;
use std::ptr::null_mut;
use warp_core::snapshot::{fill_dialstring, Dialled};

/// One RPC reply under construction.
struct Reply<'a> {
    api: &'a k::rpc_t,
    ctx: *mut c_void,
}

/// An RPC error: code and message, as kamcmd prints them.
struct Fault(i32, String);

impl From<String> for Fault {
    fn from(message: String) -> Self {
        Fault(500, message)
    }
}

impl From<&str> for Fault {
    fn from(message: &str) -> Self {
        Fault(500, message.to_owned())
    }
}

/// The snapshot's file was written over under the mapping an answer was read from.
fn rewritten() -> Fault {
    Fault(503, "snapshot file rewritten in place: try again".into())
}

/// Longest fault text every transport delivers.
const FAULT_MAX: usize = 250;

/// A struct inside the reply (the handle the rpc API gives out).
#[derive(Clone, Copy)]
struct Struct(*mut c_void);

fn cstring(s: &str) -> CString {
    CString::new(s.replace('\0', "")).unwrap_or_default()
}

impl Reply<'_> {
    fn fault(&self, code: i32, message: &str) {
        if let Some(fault) = self.api.fault {
            // ctl's binrpc sends no reply at all for a fault of 255 bytes or more (its
            // fault buffer holds a one-byte string length), so kamcmd would print nothing.
            let mut end = message.len().min(FAULT_MAX);
            while !message.is_char_boundary(end) {
                end -= 1;
            }
            let text = cstring(&message[..end]);
            // SAFETY: printf-style call with a matching "%s" argument.
            unsafe { fault(self.ctx, code, c"%s".as_ptr() as *mut _, text.as_ptr()) };
        }
    }

    /// The next string parameter. Numbers are refused, not converted: kamcmd sends
    /// digits as a C `int`, so a phone number arrives wrapped (14125550123 as
    /// 1240648235) and would be routed as another number.
    fn param(&self, name: &str) -> Result<String, Fault> {
        self.scan(name, c"s")?.ok_or_else(|| {
            Fault(
                400,
                format!("missing parameter {name}, or not a string (kamcmd: s:12125550123)"),
            )
        })
    }

    /// The next parameter, if there is one, as text: a number (kamcmd's `42`) is
    /// converted, where a strict scan would take it for no parameter at all.
    fn optional_param(&self, name: &str) -> Result<Option<String>, Fault> {
        self.scan(name, c"*.s")
    }

    fn scan(&self, name: &str, format: &CStr) -> Result<Option<String>, Fault> {
        let scan = self.api.scan.ok_or("rpc API without scan")?;
        let mut value: *mut c_char = null_mut();
        // SAFETY: "s" (asciiz), optional after "*", converted after ".", stores a pointer
        // valid during the call.
        let read = unsafe { scan(self.ctx, format.as_ptr() as *mut _, &mut value) };
        if read < 0 {
            return Err(Fault(400, format!("parameter {name} is not a string")));
        }
        if read == 0 || value.is_null() {
            return Ok(None);
        }
        // SAFETY: NUL-terminated by the RPC transport.
        Ok(Some(
            unsafe { CStr::from_ptr(value) }
                .to_string_lossy()
                .into_owned(),
        ))
    }

    fn top_struct(&self) -> Result<Struct, String> {
        let add = self.api.add.ok_or("rpc API without add")?;
        let mut handle: *mut c_void = null_mut();
        // SAFETY: "{" stores the new struct's handle through the pointer argument.
        if unsafe { add(self.ctx, c"{".as_ptr() as *mut _, &mut handle) } < 0 {
            return Err("cannot add the reply struct".into());
        }
        Ok(Struct(handle))
    }

    fn nested(&self, parent: Struct, name: &str) -> Result<Struct, String> {
        let add = self.api.struct_add.ok_or("rpc API without struct_add")?;
        let mut handle: *mut c_void = null_mut();
        let name = cstring(name);
        // SAFETY: "{" takes the member name and stores the new handle.
        if unsafe {
            add(
                parent.0,
                c"{".as_ptr() as *mut _,
                name.as_ptr(),
                &mut handle,
            )
        } < 0
        {
            return Err("cannot add a nested struct".into());
        }
        Ok(Struct(handle))
    }

    fn text(&self, st: Struct, name: &str, value: &str) -> Result<(), String> {
        let add = self.api.struct_add.ok_or("rpc API without struct_add")?;
        let (name, value) = (cstring(name), cstring(value));
        // SAFETY: "s" takes the member name and a NUL-terminated string.
        if unsafe { add(st.0, c"s".as_ptr() as *mut _, name.as_ptr(), value.as_ptr()) } < 0 {
            return Err("cannot add a string member".into());
        }
        Ok(())
    }

    fn count(&self, st: Struct, name: &str, value: u64) -> Result<(), String> {
        let add = self.api.struct_add.ok_or("rpc API without struct_add")?;
        let name = cstring(name);
        // SAFETY: "J" takes the member name and an unsigned long long.
        if unsafe { add(st.0, c"J".as_ptr() as *mut _, name.as_ptr(), value) } < 0 {
            return Err("cannot add a number member".into());
        }
        Ok(())
    }
}

/// Runs an RPC body; an error or panic becomes a 500 fault.
fn run(api: *mut k::rpc_t, ctx: *mut c_void, body: impl FnOnce(&Reply<'_>) -> Result<(), Fault>) {
    // SAFETY: the core passes its rpc API table, valid during the call.
    let Some(api) = (unsafe { api.as_ref() }) else {
        return;
    };
    let reply = Reply { api, ctx };
    let outcome = guard::entry("rpc", Err("internal error (panic)".into()), || body(&reply));
    if let Err(Fault(code, message)) = outcome {
        reply.fault(code, &message);
    }
}

pub unsafe extern "C" fn rpc_version(api: *mut k::rpc_t, ctx: *mut c_void) {
    run(api, ctx, |r| {
        let st = r.top_struct()?;
        r.text(st, "module", concat!("warp ", env!("CARGO_PKG_VERSION")))?;
        r.text(st, "kamailio", &k::MODULE_VERSION.to_string_lossy())?;
        Ok(())
    })
}

pub unsafe extern "C" fn rpc_stats(api: *mut k::rpc_t, ctx: *mut c_void) {
    run(api, ctx, |r| {
        let st = r.top_struct()?;
        r.count(st, "workers", stats::workers())?;
        let snap = r.nested(st, "snapshot")?;
        let generation = snapshot::generation().map_or("none".into(), |g| g.to_string());
        r.text(snap, "generation", &generation)?;
        let (epoch, reloads, refused) = snapshot::reload_counts();
        r.count(snap, "epoch", epoch)?;
        r.count(snap, "reloads", reloads)?;
        r.count(snap, "refused", refused)?;
        for group in [Group::Limits, Group::Lrn, Group::Gateways, Group::Cdr] {
            let g = r.nested(st, group.name())?;
            for (name, value) in group.counts() {
                r.count(g, name, value)?;
            }
        }
        for f in stats::per_function() {
            let fs = r.nested(st, f.func.name())?;
            r.count(fs, "calls", f.calls)?;
            r.count(fs, "errors", f.errors)?;
            r.count(fs, "panics", f.panics)?;
            r.count(fs, "latency_sum_us", f.latency_sum_us)?;
            // Bucket `le_<bound>`: calls that took at most <bound> µs (and more than the
            // bound before); `gt_<last bound>`: the rest.
            let hist = r.nested(fs, "latency_us")?;
            let bounds = stats::LATENCY_BOUNDS_US;
            for (i, n) in f.latency.iter().enumerate() {
                let name = match bounds.get(i) {
                    Some(b) => format!("le_{b}"),
                    None => format!("gt_{}", bounds[bounds.len() - 1]),
                };
                r.count(hist, &name, *n)?;
            }
        }
        Ok(())
    })
}

pub unsafe extern "C" fn rpc_config(api: *mut k::rpc_t, ctx: *mut c_void) {
    run(api, ctx, |r| {
        let st = r.top_struct()?;
        params::config()
            .effective()
            .iter()
            .try_for_each(|(name, value)| r.text(st, name, value))?;
        Ok(())
    })
}

/// `warp.reload`: publishes the snapshot file (after verifying it) to every process.
pub unsafe extern "C" fn rpc_reload(api: *mut k::rpc_t, ctx: *mut c_void) {
    run(api, ctx, |r| {
        let done = snapshot::reload()?;
        let st = r.top_struct()?;
        let previous = done.previous.map_or("none".into(), |g| g.to_string());
        r.text(st, "previous", &previous)?;
        r.count(st, "generation", done.generation)?;
        r.text(st, "millis", &format!("{:.3}", done.millis))?;
        Ok(())
    })
}

/// `warp.trunks [trunk]`: a trunk's limits and this node's counts for it; without one,
/// every trunk of the snapshot with a call in progress or refused here.
pub unsafe extern "C" fn rpc_trunks(api: *mut k::rpc_t, ctx: *mut c_void) {
    run(api, ctx, |r| {
        let wanted = r.optional_param("trunk")?;
        let snapshot = snapshot::current().ok_or(Fault(503, "no snapshot loaded".into()))?;
        let shown: Vec<_> = (snapshot.all_trunks())
            .map(|trunk| (trunk, limits::usage(trunk.id)))
            .filter(|(trunk, usage)| match &wanted {
                Some(id) => trunk.id == id,
                None => *usage != limits::Usage::default(),
            })
            .collect();
        if !snapshot::intact(&snapshot) {
            return Err(rewritten());
        }
        if let (Some(id), true) = (&wanted, shown.is_empty()) {
            return Err(Fault(404, format!("no trunk {id} in the snapshot")));
        }
        let st = r.top_struct()?;
        for (trunk, usage) in shown {
            let t = r.nested(st, trunk.id)?;
            r.text(t, "ban", trunk.ban)?;
            r.count(t, "enabled", trunk.enabled.into())?;
            r.count(t, "max_concurrent", trunk.max_concurrent.into())?;
            r.count(t, "max_cps", trunk.max_cps.into())?;
            r.count(t, "keepalive", trunk.keepalive.into())?;
            r.count(t, "active", usage.active)?;
            r.count(t, "refused_cps", usage.refused_cps)?;
            r.count(t, "refused_concurrent", usage.refused_concurrent)?;
        }
        Ok(())
    })
}

/// `warp.gateways`: the vendor gateways that went unanswered on this node, those tried
/// last (`last_for_ms` > 0) first, and how many times one was put last.
pub unsafe extern "C" fn rpc_gateways(api: *mut k::rpc_t, ctx: *mut c_void) {
    run(api, ctx, |r| {
        let (mut rows, marked) = gateways::rows();
        rows.sort_by(|a, b| {
            b.last_for_ms
                .cmp(&a.last_for_ms)
                .then(a.gateway.cmp(&b.gateway))
        });
        let st = r.top_struct()?;
        r.count(st, "put_last", marked)?;
        // Numbered, not named: a gateway's `host:port` is no key kamcmd's text shows
        // plainly.
        for (i, row) in rows.into_iter().enumerate() {
            let g = r.nested(st, &(i + 1).to_string())?;
            r.text(g, "gateway", &row.gateway)?;
            r.count(g, "silences", row.silences.into())?;
            r.count(g, "last_for_ms", row.last_for_ms.unsigned_abs())?;
        }
        Ok(())
    })
}

/// `warp.route <ban|source address> <ani> <dnis>`: the decision a call would get now,
/// with every route; from an address, for the trunk its ACL names, as a call from it
/// would find it (`trunk` in the reply). A refusal is a fault carrying the SIP code the
/// call would be answered with.
pub unsafe extern "C" fn rpc_route(api: *mut k::rpc_t, ctx: *mut c_void) {
    run(api, ctx, |r| {
        let (from, ani, dnis) = (r.param("ban")?, r.param("ani")?, r.param("dnis")?);
        let snapshot = snapshot::current().ok_or(Fault(503, "no snapshot loaded".into()))?;
        let ani = Some(ani.as_str()).filter(|a| !a.is_empty() && *a != "-");
        let trunk = match from.parse::<IpAddr>() {
            Ok(source) => Some(
                route::trunk(&snapshot, None, Some(source))
                    .map_err(|why| Fault(403, format!("Forbidden: {why}")))?,
            ),
            Err(_) => None,
        };
        let ban = trunk.as_ref().map_or(from.as_str(), |t| t.ban);
        let decision =
            route::lookup(&snapshot, ban, ani, &dnis, chrono::Utc::now()).map_err(|reject| {
                let (code, reason) = reject.sip();
                Fault(code.into(), format!("{reason}: {reject}"))
            })?;
        if !snapshot::intact(&snapshot) {
            return Err(rewritten());
        }
        let st = r.top_struct()?;
        r.count(st, "generation", decision.generation)?;
        if let Some(trunk) = &trunk {
            r.text(st, "trunk", trunk.id)?;
        }
        r.text(st, "ban", decision.ban)?;
        let ani = decision.ani.map(|a| a.to_string()).unwrap_or_default();
        r.text(st, "ani", &ani)?;
        r.text(st, "dnis", &decision.dnis.to_string())?;
        r.text(st, "lrn", &decision.lrn.to_string())?;
        r.text(
            st,
            "lrn_source",
            &format!("{:?}", decision.lrn_source).to_lowercase(),
        )?;
        r.text(st, "zone", decision.customer_zone.as_str())?;
        r.text(st, "customer_rate", &decision.customer_rate.to_string())?;
        let routes = r.nested(st, "routes")?;
        // The hop lines a routed call's record would hold.
        // In the order a call gets them now: gateways gone silent last.
        let mut hops = String::new();
        let last = gateways::put_last(&decision, clock::now_ms());
        record::push_hops(&mut hops, &decision, Attempts::All, last);
        let mut uri = String::new();
        let dialled = Dialled {
            number: decision.dnis,
            lrn: decision.lrn,
        };
        for (i, hop) in hops.lines().skip(1).filter_map(Hop::parse).enumerate() {
            let h = r.nested(routes, &hop.attempt.to_string())?;
            r.text(h, "vendor", hop.vendor)?;
            // Past the first attempt the record keeps templates until their turn.
            uri.clear();
            match i {
                0 => uri.push_str(hop.uri),
                _ => fill_dialstring(&mut uri, hop.uri, dialled),
            }
            r.text(h, "uri", &uri)?;
            r.text(h, "zone", hop.zone)?;
            r.text(h, "vendor_rate", &hop.vendor_rate.to_string())?;
            r.text(h, "customer_rate", &hop.customer_rate.to_string())?;
            r.text(h, "partition", hop.partition.unwrap_or(""))?;
            // As $warp(vendor_keepalive) would say for this attempt.
            let keepalive = snapshot
                .vendor_by_id(hop.vendor)
                .is_none_or(|v| v.keepalive);
            r.count(h, "keepalive", keepalive.into())?;
        }
        Ok(())
    })
}
