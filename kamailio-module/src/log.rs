//! Logging through Kamailio's own log machinery (LM_* macros via the C shim), so module
//! lines honour `debug=`, `log_stderror` and per-module debug levels.

use std::ffi::CString;

/// Formats and logs `message()` at `level` (L_ERR, L_INFO, ...) if that level is enabled,
/// attributed to `file:line`.
pub fn emit(level: i32, file: &str, line: u32, message: impl FnOnce() -> String) {
    // SAFETY: the shim only reads the core's log configuration.
    if unsafe { kamailio_sys::warp_log_enabled(level) } == 0 {
        return;
    }
    let c = |s: String| CString::new(s.replace('\0', "\\0")).unwrap_or_default();
    let (file, text) = (c(file.to_owned()), c(message()));
    // SAFETY: both are valid NUL-terminated strings for the duration of the call.
    unsafe { kamailio_sys::warp_log(level, file.as_ptr(), line as i32, text.as_ptr()) };
}

macro_rules! lm_err {
    ($($arg:tt)*) => { $crate::log::emit(kamailio_sys::L_ERR, file!(), line!(), || format!($($arg)*)) };
}
macro_rules! lm_warn {
    ($($arg:tt)*) => { $crate::log::emit(kamailio_sys::L_WARN as i32, file!(), line!(), || format!($($arg)*)) };
}
macro_rules! lm_info {
    ($($arg:tt)*) => { $crate::log::emit(kamailio_sys::L_INFO as i32, file!(), line!(), || format!($($arg)*)) };
}
macro_rules! lm_dbg {
    ($($arg:tt)*) => { $crate::log::emit(kamailio_sys::L_DBG as i32, file!(), line!(), || format!($($arg)*)) };
}
pub(crate) use {lm_dbg, lm_err, lm_info, lm_warn};
