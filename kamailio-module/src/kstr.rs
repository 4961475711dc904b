//! Conversions between Kamailio's `str` (pointer + length, not NUL-terminated) and Rust.

use kamailio_sys::{self as k, str_};
use std::borrow::Cow;
use std::ffi::{c_char, CStr};

/// A `str` naming a static C string, for export tables.
pub const fn from_static(s: &'static CStr) -> str_ {
    str_ {
        s: s.as_ptr() as *mut _,
        len: s.count_bytes() as i32,
    }
}

/// A `str` viewing `bytes`; valid while `bytes` is.
pub fn from_bytes(bytes: &[u8]) -> str_ {
    str_ {
        s: bytes.as_ptr() as *mut _,
        len: bytes.len() as i32,
    }
}

/// The bytes a `str` points at (empty for a null or negative-length `str`).
///
/// # Safety
/// `s.s` must point at `s.len` readable bytes that outlive the returned slice.
pub unsafe fn as_bytes<'a>(s: &str_) -> &'a [u8] {
    if s.s.is_null() || s.len <= 0 {
        return &[];
    }
    std::slice::from_raw_parts(s.s as *const u8, s.len as usize)
}

/// The text of a `str`, borrowed when it is valid UTF-8 (lossy copy otherwise).
///
/// # Safety
/// As for [`as_bytes`].
pub unsafe fn as_str<'a>(s: &str_) -> Cow<'a, str> {
    let bytes = as_bytes(s);
    // SIP text is nearly always ASCII, which a word-at-a-time scan proves in a third
    // of UTF-8 validation's time; validating is still quicker than the lossy scan.
    if bytes.is_ascii() {
        // SAFETY: ASCII is UTF-8.
        return Cow::Borrowed(std::str::from_utf8_unchecked(bytes));
    }
    match std::str::from_utf8(bytes) {
        Ok(text) => Cow::Borrowed(text),
        Err(_) => String::from_utf8_lossy(bytes),
    }
}

/// Lossy UTF-8 copy of a `str`.
///
/// # Safety
/// As for [`as_bytes`].
pub unsafe fn to_string(s: &str_) -> String {
    String::from_utf8_lossy(as_bytes(s)).into_owned()
}

/// The text a script function's parameter evaluates to for `msg` (`None` if it does
/// not evaluate): a parameter fixed up by `fixup_spve_null`, which
/// `fixup_get_svalue` (a C macro over `get_str_fparam`) reads.
///
/// # Safety
/// `param` must be the `fparam_t` `fixup_spve_null` built for the calling site; the
/// text is valid while the core handles `msg`.
pub unsafe fn param<'a>(msg: *mut k::sip_msg, param: *mut c_char) -> Option<Cow<'a, str>> {
    let mut value = str_::default();
    (k::get_str_fparam(&mut value, msg, param.cast()) == 0).then(|| as_str(&value))
}
