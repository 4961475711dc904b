//! RPC commands for kamcmd / jsonrpc: `warp.version`, `warp.stats`, `warp.config`.
//! They run in the RPC process (ctl), so everything they report comes from shared
//! memory or from the configuration every process inherited.

use crate::guard;
use crate::params;
use crate::stats;
use kamailio_sys as k;
use std::ffi::{c_void, CString};
use std::ptr::null_mut;

/// One RPC reply under construction.
struct Reply<'a> {
    api: &'a k::rpc_t,
    ctx: *mut c_void,
}

/// A struct inside the reply (the handle the rpc API gives out).
#[derive(Clone, Copy)]
struct Struct(*mut c_void);

fn cstring(s: &str) -> CString {
    CString::new(s.replace('\0', "")).unwrap_or_default()
}

impl Reply<'_> {
    fn fault(&self, message: &str) {
        if let Some(fault) = self.api.fault {
            let text = cstring(message);
            // SAFETY: printf-style call with a matching "%s" argument.
            unsafe { fault(self.ctx, 500, c"%s".as_ptr() as *mut _, text.as_ptr()) };
        }
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
fn run(api: *mut k::rpc_t, ctx: *mut c_void, body: impl FnOnce(&Reply<'_>) -> Result<(), String>) {
    // SAFETY: the core passes its rpc API table, valid during the call.
    let Some(api) = (unsafe { api.as_ref() }) else {
        return;
    };
    let reply = Reply { api, ctx };
    let outcome = guard::entry("rpc", Err("internal error (panic)".to_string()), || {
        body(&reply)
    });
    if let Err(e) = outcome {
        reply.fault(&e);
    }
}

pub unsafe extern "C" fn rpc_version(api: *mut k::rpc_t, ctx: *mut c_void) {
    run(api, ctx, |r| {
        let st = r.top_struct()?;
        r.text(st, "module", concat!("warp ", env!("CARGO_PKG_VERSION")))?;
        r.text(st, "kamailio", &k::MODULE_VERSION.to_string_lossy())
    })
}

pub unsafe extern "C" fn rpc_stats(api: *mut k::rpc_t, ctx: *mut c_void) {
    run(api, ctx, |r| {
        let st = r.top_struct()?;
        r.count(st, "workers", stats::workers())?;
        for (func, calls, errors, panics) in stats::per_function() {
            let f = r.nested(st, func.name())?;
            r.count(f, "calls", calls)?;
            r.count(f, "errors", errors)?;
            r.count(f, "panics", panics)?;
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
            .try_for_each(|(name, value)| r.text(st, name, value))
    })
}
