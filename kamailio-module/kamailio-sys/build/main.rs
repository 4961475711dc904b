//! Generates the bindings from the Kamailio source tree that matches the installed
//! `kamailio` binary, and compiles the C shim for the macro-only part of its API.
//!
//! Inputs (all re-checked on change): `KAMAILIO_BIN` (default: `kamailio` on PATH, then
//! /usr/sbin/kamailio) and `KAMAILIO_SRC` (default: the cache that
//! scripts/install-deps.sh fills, /var/cache/warp/kamailio-src/<package version>).

mod defines;
mod installed;
mod source;

use std::path::{Path, PathBuf};

fn main() {
    let installed = installed::Installed::probe();
    let src = source::locate(&installed);
    let defines = defines::derive(&installed, &src);
    defines::verify_against_binary(&defines, &installed, &src);

    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR"));
    write_module_strings(&installed, &out.join("module_strings.rs"));
    generate_bindings(&src, &defines, &out.join("bindings.rs"));
    compile_shim(&src, &defines);
}

/// The core refuses a module whose `module_version`/`module_flags` differ from its own.
fn write_module_strings(installed: &installed::Installed, path: &Path) {
    let code = format!(
        "/// `SER_FULL_VERSION` of the Kamailio these bindings were generated for.\n\
         pub const MODULE_VERSION: &::core::ffi::CStr = c{:?};\n\
         /// `SER_COMPILE_FLAGS` of the Kamailio these bindings were generated for.\n\
         pub const MODULE_FLAGS: &::core::ffi::CStr = c{:?};\n",
        installed.version_line, installed.flags_line
    );
    std::fs::write(path, code).expect("write module_strings.rs");
}

fn generate_bindings(src: &Path, defines: &[String], out: &Path) {
    println!("cargo:rerun-if-changed=wrapper.h");
    println!("cargo:rerun-if-changed=shim/warp_shim.h");
    let core = src.join("src");
    bindgen::Builder::default()
        .header("wrapper.h")
        .clang_arg(format!("-I{}", core.display()))
        .clang_arg("-Ishim")
        .clang_args(defines.iter().map(|d| format!("-D{d}")))
        .allowlist_function(
            "sr_kemi_modules_add|find_export|parse_(pai|rpid)_header|parse_from_uri|parse_uri\
             |pv_get_(null|strval|sintval)|rewrite_uri|set_dst_uri|append_branch|set_ruri_q\
             |add_avp|search_first_avp|destroy_avp|get_authorized_cred|parse_credentials|register_script_cb\
             |parse_headers|pv_cache_get|pv_get_spec_value|find_module_by_name|find_param_export\
             |fixup_(spve_null|free_spve_null|spve_spve|free_spve_spve|spve_pvar|free_spve_pvar)|pv_set_spec_value|get_str_fparam|register_timer|warp_.*\
             |async_task_(push|workers_get)|route_lookup|sr_kemi_eng_get|ksr_msg_env_reset|counter_register",
        )
        .allowlist_type(
            "module_exports|sr_kemi_t|rpc_t|rpc_export_t|pv_export_t|sl_api_t|bind_sl_f\
             |p_id_body_t|to_body_t|auth_body_t|dlg_binds|dlg_cb_params|load_dlg_f|script_cb_flag|hdr_types_t\
             |tm_binds|load_tm_f|tmcb_params|request_method|async_task_t|route_list|counter_cbk_f",
        )
        .allowlist_var(
            "(PARAM|PROC|SR_KEMIP|PV_NAME|CNT_F)_[A-Z0-9_]+|L_(ALERT|BUG|CRIT2?|ERR|WARN|NOTICE|INFO|DBG)\
             |[A-Z_]+_ROUTE|SIP_(REQUEST|REPLY)|AF_INET6?|MODULE_INTERFACE_VER|DEFAULT_DLFLAGS\
             |AVP_(NAME|VAL)_STR|DLGCB_[A-Z_]+|TMCB_(REQUEST_IN|REQUEST_FWDED|RESPONSE_READY|LOCAL_COMPLETED)|T_(CANCELED|ASYNC_CONTINUE|ASYNC_SUSPENDED)|F_RB_REPLIED|POST_SCRIPT_CB|REQUEST_CB|PV_VAL_(INT|STR)|process_no|route_type|uid|gid|nr_branches|sr_dst_max_branches|main_rt",
        )
        // Kamailio's C enums are plain ints; keep the C constant names (PVT_OTHER, ...).
        .prepend_enum_name(false)
        .derive_default(true)
        .generate_comments(false)
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()))
        .generate()
        .expect("bindgen failed on Kamailio headers")
        .write_to_file(out)
        .expect("write bindings.rs");
}

fn compile_shim(src: &Path, defines: &[String]) {
    println!("cargo:rerun-if-changed=shim/warp_shim.c");
    let mut build = cc::Build::new();
    build
        .file("shim/warp_shim.c")
        .include(src.join("src"))
        .include("shim")
        // Log lines and memory debug records name the module, as MOD_NAME does for C modules.
        .define("MOD_NAME", "\"warp\"")
        // The LM_* macros otherwise count themselves in `dprint_crit`, a plain int the
        // core's own logging in the same process changes too: a log line from one of
        // warp's threads racing one from the worker could leave it off zero, and the
        // worker would log nothing more. (It guards logging from signal handlers, which
        // warp never does.)
        .define("NO_SIG_DEBUG", None);
    defines::apply(&mut build, defines);
    build.warnings(false).compile("warp_shim");
}
