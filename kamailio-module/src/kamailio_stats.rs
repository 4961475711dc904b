//! warp's counters in Kamailio's own statistics, group `warp`: what `kamcmd
//! stats.get_statistics warp:` lists and xhttp_prom exports (`kamailio_warp_<name>`).
//! Each statistic is a read callback over the shared counters `warp.stats` reports,
//! so nothing is counted twice. Its name is its `warp.stats` key made flat
//! (`lrn.dips` → `lrn_dips`, `warp_route.calls` → `warp_route_calls`); the latency
//! histogram stays in `warp.stats` (as flat counters it would be no Prometheus
//! histogram), `latency_sum_us` over `calls` gives the mean.

use crate::cdr;
use crate::dip_async;
use crate::gateways;
use crate::guard;
use crate::limits;
use crate::lrn;
use crate::snapshot;
use crate::stats::{self, Func};
use kamailio_sys as k;
use std::ffi::{c_void, CString};

/// A group of `warp.stats`' counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    /// The top level: `workers`.
    Top,
    Snapshot,
    Limits,
    Lrn,
    Gateways,
    Cdr,
    Function(Func),
}

impl Group {
    /// Every group, in `warp.stats`' order.
    fn all() -> impl Iterator<Item = Group> {
        [
            Group::Top,
            Group::Snapshot,
            Group::Limits,
            Group::Lrn,
            Group::Gateways,
            Group::Cdr,
        ]
        .into_iter()
        .chain(Func::ALL.map(Group::Function))
    }

    /// Its name in `warp.stats` (none for the top level).
    pub fn name(self) -> &'static str {
        match self {
            Group::Top => "",
            Group::Snapshot => "snapshot",
            Group::Limits => "limits",
            Group::Lrn => "lrn",
            Group::Gateways => "gateways",
            Group::Cdr => "cdr",
            Group::Function(func) => func.name(),
        }
    }

    /// Its counters now, always in the same order; none for a part of warp that is
    /// off (no gateway table without `gateway_silences`). The snapshot's generation is
    /// 0 while none is loaded.
    pub fn counts(self) -> Vec<(&'static str, u64)> {
        match self {
            Group::Top => vec![("workers", stats::workers())],
            Group::Snapshot => {
                let (epoch, reloads, refused) = snapshot::reload_counts();
                vec![
                    ("generation", snapshot::generation().unwrap_or(0)),
                    ("epoch", epoch),
                    ("reloads", reloads),
                    ("refused", refused),
                ]
            }
            Group::Limits => limits::counts(),
            Group::Lrn => lrn::counts()
                .into_iter()
                .chain(dip_async::counts())
                .collect(),
            Group::Gateways => gateways::counts(),
            Group::Cdr => cdr::counts().to_vec(),
            Group::Function(func) => {
                let f = stats::of(func);
                vec![
                    ("calls", f.calls),
                    ("errors", f.errors),
                    ("panics", f.panics),
                    ("latency_sum_us", f.latency_sum_us),
                ]
            }
        }
    }
}

/// Registers every counter `warp.stats` has now (its name in the `warp` group, how to
/// read it); `mod_init` only, after the counters are allocated and before the fork
/// (the core refuses a statistic later).
pub fn register() -> Result<(), String> {
    for (g, group) in Group::all().enumerate() {
        for (c, (key, _)) in group.counts().into_iter().enumerate() {
            let (name, doc) = match group {
                Group::Top => (key.to_owned(), format!("warp.stats {key}")),
                _ => (
                    format!("{}_{key}", group.name()),
                    format!("warp.stats {}.{key}", group.name()),
                ),
            };
            let text = |s: String| CString::new(s).map_err(|e| e.to_string());
            let (name, doc) = (text(name)?, text(doc)?);
            // SAFETY: the core copies the names; `read` is valid for the process's life.
            let registered = unsafe {
                k::counter_register(
                    std::ptr::null_mut(),
                    c"warp".as_ptr(),
                    name.as_ptr(),
                    k::CNT_F_NO_RESET as i32,
                    Some(read),
                    pack(g, c),
                    doc.as_ptr(),
                    0,
                )
            };
            if registered < 0 {
                return Err(format!(
                    "cannot register the statistic warp:{}",
                    name.to_string_lossy()
                ));
            }
        }
    }
    Ok(())
}

/// The core's read callback's parameter: which counter of which group.
fn pack(group: usize, counter: usize) -> *mut c_void {
    (group << 8 | counter) as *mut c_void
}

/// The core calls it for every read of a statistic (in the process reading: the RPC
/// process for kamcmd, a SIP worker for xhttp_prom); `param` is [`pack`]'s.
unsafe extern "C" fn read(_: k::counter_handle_t, param: *mut c_void) -> k::counter_val_t {
    guard::entry("statistics", 0, || {
        let (group, counter) = (param as usize >> 8, param as usize & 0xff);
        let value = Group::all()
            .nth(group)
            .and_then(|g| g.counts().get(counter).map(|&(_, value)| value))
            .unwrap_or(0);
        k::counter_val_t::try_from(value).unwrap_or(k::counter_val_t::MAX)
    })
}
