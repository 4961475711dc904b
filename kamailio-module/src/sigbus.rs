//! A snapshot file truncated under its mapping must not kill Kamailio.
//!
//! Snapshots are published by rename, but an operator's `cp` or `scp` onto the served
//! path truncates the file the workers map, and a worker touching a page past the new
//! end gets SIGBUS, which takes Kamailio down with it. This process-wide handler
//! recognises a fault inside a registered snapshot mapping and maps zero pages over the
//! whole of it, so the faulting read goes on and reads zeros: the engine takes any
//! bytes without panicking, and `Snapshot::rewritten()` (the header no longer reads as
//! it did) tells the caller to throw the answer away. Any other SIGBUS is left to the
//! default action, as before.

use std::ffi::c_int;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

/// Mappings one process can guard at once: the current snapshot and the old ones
/// lookups still hold after a reload.
const SLOTS: usize = 16;

/// A registered range: its start (0: free) and length.
struct Slot {
    start: AtomicUsize,
    len: AtomicUsize,
}

static RANGES: [Slot; SLOTS] = [const {
    Slot {
        start: AtomicUsize::new(0),
        len: AtomicUsize::new(0),
    }
}; SLOTS];

/// Installs the handler (`mod_init`, before the fork: every process inherits it).
pub fn install() -> Result<(), String> {
    // SAFETY: a zeroed sigaction is a valid empty one; the handler has the SA_SIGINFO
    // signature.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_sigbus as *const () as usize;
        action.sa_flags = libc::SA_SIGINFO;
        libc::sigemptyset(&mut action.sa_mask);
        if libc::sigaction(libc::SIGBUS, &action, std::ptr::null_mut()) != 0 {
            return Err(format!(
                "cannot install the SIGBUS handler: {}",
                std::io::Error::last_os_error()
            ));
        }
    }
    Ok(())
}

/// Guards `range` until the returned [`Guard`] drops, which must be before the range
/// is unmapped. `None` when every slot is taken: the mapping is then unguarded.
pub fn guard(range: &[u8]) -> Option<Guard> {
    let start = range.as_ptr() as usize;
    RANGES.iter().enumerate().find_map(|(i, slot)| {
        slot.start
            .compare_exchange(0, start, SeqCst, SeqCst)
            .ok()
            .map(|_| {
                slot.len.store(range.len(), SeqCst);
                Guard(i)
            })
    })
}

/// A registered range; unregisters it on drop.
pub struct Guard(usize);

impl Drop for Guard {
    fn drop(&mut self) {
        let slot = &RANGES[self.0];
        slot.len.store(0, SeqCst);
        slot.start.store(0, SeqCst);
    }
}

/// Async-signal-safe: atomics, `mmap`, `sigaction` and `raise` only.
extern "C" fn on_sigbus(signal: c_int, info: *mut libc::siginfo_t, _: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo to an SA_SIGINFO handler.
    let addr = unsafe { (*info).si_addr() } as usize;
    let hit = RANGES.iter().find_map(|slot| {
        let start = slot.start.load(SeqCst);
        let len = slot.len.load(SeqCst);
        (start != 0 && (start..start + len).contains(&addr)).then_some((start, len))
    });
    if let Some((start, len)) = hit {
        // SAFETY: replaces, in place, a read-only mapping this process registered and
        // has not unmapped (its guard is dropped first); the kernel rounds `len` up.
        let zeros = unsafe {
            libc::mmap(
                start as *mut libc::c_void,
                len,
                libc::PROT_READ,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
                -1,
                0,
            )
        };
        if zeros != libc::MAP_FAILED {
            return;
        }
    }
    // Not ours (or not recoverable): the default action, as without this handler.
    // SAFETY: both calls are async-signal-safe; the signal is blocked until we return.
    unsafe {
        libc::signal(signal, libc::SIG_DFL);
        libc::raise(signal);
    }
}
