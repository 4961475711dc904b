//! Raw bindings to the installed Kamailio (see build/main.rs for how they are generated).
//!
//! [`MODULE_VERSION`] and [`MODULE_FLAGS`] are the installed binary's own strings, which
//! a module must export for the core's load-time check; the `warp_*` functions are the C
//! shim over macro-only API (shm allocator, logging).

mod bindings {
    #![allow(
        non_upper_case_globals,
        non_camel_case_types,
        non_snake_case,
        dead_code,
        unnecessary_transmutes,
        clippy::all,
        clippy::pedantic
    )]
    include!(concat!(env!("OUT_DIR"), "/bindings.rs"));
}

pub use bindings::*;

include!(concat!(env!("OUT_DIR"), "/module_strings.rs"));
