//! Module life cycle (`mod_register`, `mod_init`, `child_init`, `destroy`) and, at the
//! bottom, the tables Kamailio reads from warp.so: version strings, exports (commands,
//! parameters, RPC, pseudo-variables) and the KEMI functions.

use crate::ani::{ki_warp_ani, w_warp_ani};
use crate::calls;
use crate::cdr;
use crate::cluster_calls;
use crate::core_cell::CoreCell;
use crate::dip_async::{self, fixup_route, ki_warp_dip_async, w_warp_dip_async};
use crate::dno::{ki_warp_dno, ki_warp_dno_number, w_warp_dno, w_warp_dno_number};
use crate::e164::{fixup_e164, ki_warp_e164, w_warp_e164};
use crate::failover::{self, ki_warp_next_route, w_warp_next_route};
use crate::gateways;
use crate::guard;
use crate::identify::{
    ki_warp_authenticated, ki_warp_identify, w_warp_authenticated, w_warp_identify,
};
use crate::kamailio_stats;
use crate::kstr;
use crate::limits;
use crate::log::{lm_err, lm_info};
use crate::lrn;
use crate::media_undo::{ki_warp_media_undo, w_warp_media_undo};
use crate::params;
use crate::pv::{pv_get_warp, pv_parse_warp_name};
use crate::redirect::{ki_warp_redirect, w_warp_redirect};
use crate::reply;
use crate::route_cmd::{
    fixup_emergency, ki_warp_emergency, ki_warp_needs_dip, ki_warp_needs_dip_dnis, ki_warp_route,
    ki_warp_route_dnis, w_warp_emergency, w_warp_needs_dip, w_warp_needs_dip_dnis, w_warp_route,
    w_warp_route_dnis,
};
use crate::rpc::{
    rpc_config, rpc_gateways, rpc_reload, rpc_route, rpc_stats, rpc_trunks, rpc_version,
};
use crate::sigbus;
use crate::snapshot;
use crate::stats::{self, Func};
use crate::tm;
use kamailio_sys as k;
use std::ffi::{c_char, c_int, c_uint, c_void};
use std::mem::zeroed;
use std::ptr::null;

/// Called right after dlopen: registers the KEMI functions (`KSR.warp.*`).
#[no_mangle]
pub unsafe extern "C" fn mod_register(
    _path: *mut c_char,
    _dlflags: *mut c_int,
    _p1: *mut c_void,
    _p2: *mut c_void,
) -> c_int {
    guard::entry("mod_register", -1, || {
        guard::install_panic_hook();
        // SAFETY: the table is static and terminated by a zeroed entry.
        unsafe { k::sr_kemi_modules_add(KEMI_EXPORTS.as_ptr().cast()) }
    })
}

/// Main process, before forking: validate parameters, bind sl, allocate shared state.
unsafe extern "C" fn mod_init() -> c_int {
    guard::entry("mod_init", -1, || match init() {
        Ok(()) => 0,
        Err(e) => {
            lm_err!("initialisation failed: {e}");
            -1
        }
    })
}

fn init() -> Result<(), String> {
    let config = params::init()?;
    for (name, value) in config.effective() {
        lm_info!("{name} = {value}");
    }
    reply::bind()?;
    failover::init();
    cluster_calls::init();
    stats::init()?;
    limits::init()?;
    lrn::init()?;
    dip_async::init()?;
    gateways::init()?;
    gateways::schedule_probes(config.gateway_probe_interval)?;
    cdr::init()?;
    calls::init()?;
    sigbus::install()?;
    snapshot::init()?;
    kamailio_stats::register()?;
    snapshot::schedule_checks(config.reload_check)
}

/// Every process after the fork (ranks 1 to 126 are the SIP workers; 127 is any other
/// module's worker that runs routes, such as an RPC or queue consumer), and the main
/// process once before it (`PROC_INIT`).
/// The ranks of processes that route no call: the main process once it has forked the
/// SIP workers (alone, it is `PROC_SIPINIT` next and maps again on its first call),
/// timers, the TCP main process, the attendant. RPC processes route (`warp.route`).
const NEVER_ROUTES: [c_int; 5] = [
    k::PROC_MAIN as c_int,
    k::PROC_TIMER,
    k::PROC_TCP_MAIN,
    k::PROC_UNIXSOCK,
    k::PROC_ATTENDANT,
];

unsafe extern "C" fn child_init(rank: c_int) -> c_int {
    guard::entry("child_init", -1, || {
        if (1..k::PROC_RANK127 as c_int).contains(&rank) {
            stats::worker_started();
        }
        if rank == k::PROC_INIT as c_int {
            if let Err(e) = tm::init() {
                lm_err!("initialisation failed: {e}");
                return -1;
            }
        }
        if rank == k::PROC_SIPINIT as c_int {
            cdr::send_leftovers();
        }
        if NEVER_ROUTES.contains(&rank) {
            snapshot::release();
        }
        if rank == k::PROC_SIPINIT as c_int && params::config().cluster_concurrent {
            cluster_calls::start_heartbeat();
        }
        0
    })
}

unsafe extern "C" fn mod_destroy() {
    guard::entry("destroy", (), || {
        stats::destroy();
        limits::destroy();
        lrn::destroy();
        dip_async::destroy();
        gateways::destroy();
        cdr::destroy();
        snapshot::destroy();
    })
}

// ---------------------------------------------------------------------------------
// Exports. Names are the C symbols the core dlsym()s.

/// Must equal the core's SER_FULL_VERSION, or the module is refused at load time.
#[export_name = "module_version"]
pub static MODULE_VERSION: CoreCell<*const c_char> = CoreCell::new(k::MODULE_VERSION.as_ptr());
/// Must equal the core's SER_COMPILE_FLAGS, or the module is refused at load time.
#[export_name = "module_flags"]
pub static MODULE_FLAGS: CoreCell<*const c_char> = CoreCell::new(k::MODULE_FLAGS.as_ptr());
#[export_name = "module_interface_ver"]
pub static MODULE_INTERFACE_VER: c_uint = k::MODULE_INTERFACE_VER;

const fn cname(s: &'static std::ffi::CStr) -> *mut c_char {
    s.as_ptr() as *mut c_char
}

/// A script function: `function` takes `params` parameters, each fixed up by
/// `fixup_spve_null` (a string with pseudo-variables), in `func`'s routes.
const fn cmd(
    name: &'static std::ffi::CStr,
    function: k::cmd_function,
    params: c_int,
    func: Func,
) -> k::cmd_export_t {
    let (fixup, free_fixup): (k::fixup_function, k::free_fixup_function) = match params {
        0 => (None, None),
        _ => (Some(k::fixup_spve_null), Some(k::fixup_free_spve_null)),
    };
    k::cmd_export_t {
        name: cname(name),
        function,
        param_no: params,
        fixup,
        free_fixup,
        flags: func.routes().0,
    }
}

/// A script function of one parameter whose `fixup` checks it at start-up when it is
/// plain text ([`guard::fixup_checked`]), else fixes it up as [`cmd`] does.
const fn checked_cmd(
    name: &'static std::ffi::CStr,
    function: k::cmd_function,
    fixup: unsafe extern "C" fn(*mut *mut c_void, c_int) -> c_int,
    func: Func,
) -> k::cmd_export_t {
    k::cmd_export_t {
        fixup: Some(fixup),
        ..cmd(name, function, 1, func)
    }
}

static CMDS: CoreCell<[k::cmd_export_t; 16]> = CoreCell::new([
    cmd(c"warp_ani", Some(w_warp_ani), 0, Func::Ani),
    cmd(
        c"warp_authenticated",
        Some(w_warp_authenticated),
        0,
        Func::Authenticated,
    ),
    cmd(c"warp_identify", Some(w_warp_identify), 0, Func::Identify),
    cmd(c"warp_dno", Some(w_warp_dno), 0, Func::Dno),
    cmd(c"warp_dno", Some(w_warp_dno_number), 1, Func::Dno),
    cmd(c"warp_route", Some(w_warp_route), 0, Func::Route),
    cmd(c"warp_route", Some(w_warp_route_dnis), 1, Func::Route),
    cmd(c"warp_needs_dip", Some(w_warp_needs_dip), 0, Func::NeedsDip),
    cmd(
        c"warp_needs_dip",
        Some(w_warp_needs_dip_dnis),
        1,
        Func::NeedsDip,
    ),
    checked_cmd(
        c"warp_dip_async",
        Some(w_warp_dip_async),
        fixup_route,
        Func::DipAsync,
    ),
    cmd(
        c"warp_next_route",
        Some(w_warp_next_route),
        0,
        Func::NextRoute,
    ),
    cmd(c"warp_redirect", Some(w_warp_redirect), 0, Func::Redirect),
    checked_cmd(
        c"warp_emergency",
        Some(w_warp_emergency),
        fixup_emergency,
        Func::Emergency,
    ),
    k::cmd_export_t {
        name: cname(c"warp_e164"),
        function: Some(w_warp_e164),
        param_no: 2,
        fixup: Some(fixup_e164),
        free_fixup: Some(k::fixup_free_spve_pvar),
        flags: Func::E164.routes().0,
    },
    // Two strings: fixup_spve_null fixes the first alone.
    k::cmd_export_t {
        fixup: Some(k::fixup_spve_spve),
        free_fixup: Some(k::fixup_free_spve_spve),
        ..cmd(
            c"warp_media_undo",
            Some(w_warp_media_undo),
            2,
            Func::MediaUndo,
        )
    },
    // SAFETY: an all-zero entry terminates the table.
    unsafe { zeroed() },
]);

const fn param(
    name: &'static std::ffi::CStr,
    kind: c_uint,
    cell: *mut c_void,
) -> k::param_export_t {
    k::param_export_t {
        name: cname(name),
        type_: kind,
        param_pointer: cell,
    }
}

static PARAMS: CoreCell<[k::param_export_t; 27]> = CoreCell::new([
    param(
        c"snapshot",
        k::PARAM_STRING,
        params::SNAPSHOT.as_ptr().cast(),
    ),
    param(
        c"redis_url",
        k::PARAM_STRING,
        params::REDIS_URL.as_ptr().cast(),
    ),
    param(
        c"redis_ca",
        k::PARAM_STRING,
        params::REDIS_CA.as_ptr().cast(),
    ),
    param(
        c"lrn_source",
        k::PARAM_STRING,
        params::LRN_SOURCE.as_ptr().cast(),
    ),
    param(
        c"lrn_dip_url",
        k::PARAM_STRING,
        params::LRN_DIP_URL.as_ptr().cast(),
    ),
    param(
        c"lrn_dip_ca",
        k::PARAM_STRING,
        params::LRN_DIP_CA.as_ptr().cast(),
    ),
    param(
        c"lrn_dip_token",
        k::PARAM_STRING,
        params::LRN_DIP_TOKEN.as_ptr().cast(),
    ),
    param(
        c"lrn_timeout",
        k::PARAM_INT,
        params::LRN_TIMEOUT.as_ptr().cast(),
    ),
    param(
        c"lrn_cache_ttl",
        k::PARAM_INT,
        params::LRN_CACHE_TTL.as_ptr().cast(),
    ),
    param(
        c"lrn_breaker_failures",
        k::PARAM_INT,
        params::LRN_BREAKER_FAILURES.as_ptr().cast(),
    ),
    param(
        c"lrn_breaker_cooldown",
        k::PARAM_INT,
        params::LRN_BREAKER_COOLDOWN.as_ptr().cast(),
    ),
    param(
        c"lrn_dip_queue",
        k::PARAM_INT,
        params::LRN_DIP_QUEUE.as_ptr().cast(),
    ),
    param(
        c"gateway_silences",
        k::PARAM_INT,
        params::GATEWAY_SILENCES.as_ptr().cast(),
    ),
    param(
        c"gateway_down_time",
        k::PARAM_INT,
        params::GATEWAY_DOWN_TIME.as_ptr().cast(),
    ),
    param(
        c"gateway_probe_interval",
        k::PARAM_INT,
        params::GATEWAY_PROBE_INTERVAL.as_ptr().cast(),
    ),
    param(
        c"reload_check",
        k::PARAM_INT,
        params::RELOAD_CHECK.as_ptr().cast(),
    ),
    param(
        c"cdr_stream",
        k::PARAM_STRING,
        params::CDR_STREAM.as_ptr().cast(),
    ),
    param(
        c"cdr_buffer",
        k::PARAM_INT,
        params::CDR_BUFFER.as_ptr().cast(),
    ),
    param(
        c"cdr_spool",
        k::PARAM_STRING,
        params::CDR_SPOOL.as_ptr().cast(),
    ),
    param(
        c"cdr_spool_max_mb",
        k::PARAM_INT,
        params::CDR_SPOOL_MAX_MB.as_ptr().cast(),
    ),
    param(
        c"cluster_cps",
        k::PARAM_INT,
        params::CLUSTER_CPS.as_ptr().cast(),
    ),
    param(
        c"cluster_concurrent",
        k::PARAM_INT,
        params::CLUSTER_CONCURRENT.as_ptr().cast(),
    ),
    param(
        c"cluster_timeout",
        k::PARAM_INT,
        params::CLUSTER_TIMEOUT.as_ptr().cast(),
    ),
    param(
        c"fallback_code",
        k::PARAM_INT,
        params::FALLBACK_CODE.as_ptr().cast(),
    ),
    param(
        c"fallback_reason",
        k::PARAM_STRING,
        params::FALLBACK_REASON.as_ptr().cast(),
    ),
    param(
        c"fault_inject",
        k::PARAM_STRING,
        params::FAULT_INJECT.as_ptr().cast(),
    ),
    // SAFETY: an all-zero entry terminates the table.
    unsafe { zeroed() },
]);

static RPC_VERSION_DOC: CoreCell<[*const c_char; 2]> =
    CoreCell::new([c"Module and Kamailio version".as_ptr(), null()]);
static RPC_STATS_DOC: CoreCell<[*const c_char; 2]> = CoreCell::new([
    c"Calls, errors and panics per function, summed over all processes".as_ptr(),
    null(),
]);
static RPC_CONFIG_DOC: CoreCell<[*const c_char; 2]> = CoreCell::new([
    c"Effective module parameters (secrets masked)".as_ptr(),
    null(),
]);

static RPC_RELOAD_DOC: CoreCell<[*const c_char; 2]> = CoreCell::new([
    c"Verify the snapshot file and switch every process to it".as_ptr(),
    null(),
]);
static RPC_ROUTE_DOC: CoreCell<[*const c_char; 2]> = CoreCell::new([
    c"Simulate a routing decision: warp.route <ban> <ani> <dnis>".as_ptr(),
    null(),
]);

static RPC_TRUNKS_DOC: CoreCell<[*const c_char; 2]> = CoreCell::new([
    c"A trunk's limits and this node's counts: warp.trunks [trunk] (none: the busy ones)".as_ptr(),
    null(),
]);

static RPC_GATEWAYS_DOC: CoreCell<[*const c_char; 2]> = CoreCell::new([
    c"Vendor gateways that went unanswered: warp.gateways (those tried last first)".as_ptr(),
    null(),
]);

static RPC_METHODS: CoreCell<[k::rpc_export_t; 8]> = CoreCell::new([
    k::rpc_export_t {
        name: c"warp.version".as_ptr(),
        function: Some(rpc_version),
        doc_str: RPC_VERSION_DOC.as_ptr().cast(),
        flags: 0,
    },
    k::rpc_export_t {
        name: c"warp.stats".as_ptr(),
        function: Some(rpc_stats),
        doc_str: RPC_STATS_DOC.as_ptr().cast(),
        flags: 0,
    },
    k::rpc_export_t {
        name: c"warp.config".as_ptr(),
        function: Some(rpc_config),
        doc_str: RPC_CONFIG_DOC.as_ptr().cast(),
        flags: 0,
    },
    k::rpc_export_t {
        name: c"warp.reload".as_ptr(),
        function: Some(rpc_reload),
        doc_str: RPC_RELOAD_DOC.as_ptr().cast(),
        flags: 0,
    },
    k::rpc_export_t {
        name: c"warp.route".as_ptr(),
        function: Some(rpc_route),
        doc_str: RPC_ROUTE_DOC.as_ptr().cast(),
        flags: 0,
    },
    k::rpc_export_t {
        name: c"warp.trunks".as_ptr(),
        function: Some(rpc_trunks),
        doc_str: RPC_TRUNKS_DOC.as_ptr().cast(),
        flags: 0,
    },
    k::rpc_export_t {
        name: c"warp.gateways".as_ptr(),
        function: Some(rpc_gateways),
        doc_str: RPC_GATEWAYS_DOC.as_ptr().cast(),
        flags: 0,
    },
    // SAFETY: an all-zero entry terminates the table.
    unsafe { zeroed() },
]);

static PV_ITEMS: CoreCell<[k::pv_export_t; 2]> = CoreCell::new([
    k::pv_export_t {
        name: kstr::from_static(c"warp"),
        type_: k::PVT_OTHER,
        getf: Some(pv_get_warp),
        setf: None,
        parse_name: Some(pv_parse_warp_name),
        parse_index: None,
        init_param: None,
        iparam: 0,
    },
    // SAFETY: an all-zero entry terminates the table.
    unsafe { zeroed() },
]);

const fn kemi(name: &'static std::ffi::CStr, func: *mut c_void, p1: c_uint) -> k::sr_kemi_t {
    let none = k::SR_KEMIP_NONE as c_int;
    k::sr_kemi_t {
        mname: kstr::from_static(c"warp"),
        fname: kstr::from_static(name),
        rtype: k::SR_KEMIP_INT as c_int,
        func,
        ptypes: [p1 as c_int, none, none, none, none, none],
    }
}

/// [`kemi`] of a function taking two strings.
const fn kemi_str_str(name: &'static std::ffi::CStr, func: *mut c_void) -> k::sr_kemi_t {
    let mut export = kemi(name, func, k::SR_KEMIP_STR);
    export.ptypes[1] = k::SR_KEMIP_STR as c_int;
    export
}

static KEMI_EXPORTS: CoreCell<[k::sr_kemi_t; 16]> = CoreCell::new([
    kemi(c"warp_ani", ki_warp_ani as *mut c_void, k::SR_KEMIP_NONE),
    kemi(
        c"warp_authenticated",
        ki_warp_authenticated as *mut c_void,
        k::SR_KEMIP_NONE,
    ),
    kemi(
        c"warp_identify",
        ki_warp_identify as *mut c_void,
        k::SR_KEMIP_NONE,
    ),
    kemi(c"warp_dno", ki_warp_dno as *mut c_void, k::SR_KEMIP_NONE),
    kemi(
        c"warp_dno_number",
        ki_warp_dno_number as *mut c_void,
        k::SR_KEMIP_STR,
    ),
    kemi(
        c"warp_route",
        ki_warp_route as *mut c_void,
        k::SR_KEMIP_NONE,
    ),
    kemi(
        c"warp_route_dnis",
        ki_warp_route_dnis as *mut c_void,
        k::SR_KEMIP_STR,
    ),
    kemi(
        c"warp_needs_dip",
        ki_warp_needs_dip as *mut c_void,
        k::SR_KEMIP_NONE,
    ),
    kemi(
        c"warp_needs_dip_dnis",
        ki_warp_needs_dip_dnis as *mut c_void,
        k::SR_KEMIP_STR,
    ),
    kemi(
        c"warp_dip_async",
        ki_warp_dip_async as *mut c_void,
        k::SR_KEMIP_STR,
    ),
    kemi(
        c"warp_next_route",
        ki_warp_next_route as *mut c_void,
        k::SR_KEMIP_NONE,
    ),
    kemi(
        c"warp_redirect",
        ki_warp_redirect as *mut c_void,
        k::SR_KEMIP_NONE,
    ),
    kemi(
        c"warp_emergency",
        ki_warp_emergency as *mut c_void,
        k::SR_KEMIP_STR,
    ),
    kemi_str_str(c"warp_e164", ki_warp_e164 as *mut c_void),
    kemi_str_str(c"warp_media_undo", ki_warp_media_undo as *mut c_void),
    // SAFETY: an all-zero entry terminates the table.
    unsafe { zeroed() },
]);

#[export_name = "exports"]
pub static EXPORTS: CoreCell<k::module_exports> = CoreCell::new(k::module_exports {
    name: cname(c"warp"),
    dlflags: k::DEFAULT_DLFLAGS,
    cmds: CMDS.as_ptr().cast(),
    params: PARAMS.as_ptr().cast(),
    rpc_methods: RPC_METHODS.as_ptr().cast(),
    pv_items: PV_ITEMS.as_ptr().cast(),
    response_f: None,
    init_mod_f: Some(mod_init),
    init_child_f: Some(child_init),
    destroy_mod_f: Some(mod_destroy),
});
