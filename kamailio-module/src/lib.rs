//! `warp.so`, WARP's native Kamailio module: script functions for kamailio.cfg, the same
//! functions for KEMI scripts (`KSR.warp.*`), the `$warp(...)` pseudo-variables and the
//! `warp.*` RPC commands. See README.md for the configuration reference.
//!
//! Layout follows Kamailio's own modules: `warp_mod.rs` holds the module life cycle and,
//! at its bottom, the export tables; each script function, the RPC commands, the
//! pseudo-variables and the shared statistics live in their own file.

mod ani;
mod attest;
mod avp;
mod calls;
mod cdr;
mod cdr_spool;
mod clock;
mod cluster_calls;
mod core_cell;
mod decision;
mod dip_async;
mod dno;
mod e164;
mod emergency;
mod endpoint;
mod failover;
mod gateways;
mod guard;
mod http;
mod identify;
mod kamailio_stats;
mod keepalive;
mod kstr;
mod limits;
mod log;
mod lrn;
mod lrn_cache;
mod media_undo;
mod params;
mod pv;
mod record;
mod redirect;
mod redis;
mod redis_link;
mod reply;
mod route;
mod route_cmd;
mod rpc;
mod shm;
mod sigbus;
mod sipmsg;
mod snapshot;
mod stats;
mod timer;
mod tm;
mod transport;
mod warp_mod;
