//! Kamailio shared memory holding state all processes share (counters, the reload
//! epoch, trunk limits, calls in progress).
//!
//! [`Block`]s are allocated in `mod_init`, before the workers fork, so every process
//! sees them at the same address; only atomics live inside. Per-call state ([`new`])
//! is allocated later by any process and handed to others through the dialog module.

use std::cell::UnsafeCell;
use std::mem::{align_of, size_of};
use std::ptr::null_mut;
use std::sync::atomic::{
    AtomicBool, AtomicPtr, Ordering::Acquire, Ordering::Relaxed, Ordering::Release,
};

/// One shared value of type `T`, allocated once per Kamailio run.
pub struct Block<T>(AtomicPtr<T>);

impl<T> Block<T> {
    pub const fn new() -> Self {
        Self(AtomicPtr::new(null_mut()))
    }

    /// Moves `value` into fresh shared memory; `mod_init` only.
    pub fn alloc(&self, value: T) -> Result<&'static T, String> {
        let block = new(value)?;
        self.0.store(block, Relaxed);
        // SAFETY: initialised by `new`; valid until `free` at shutdown.
        Ok(unsafe { &*block })
    }

    pub fn get(&self) -> Option<&'static T> {
        // SAFETY: set once before fork and valid until `free` at shutdown.
        unsafe { self.0.load(Relaxed).as_ref() }
    }

    /// Frees the block; `destroy` only (main process, at shutdown, no reader left).
    pub fn free(&self) {
        let block = self.0.swap(null_mut(), Relaxed);
        if !block.is_null() {
            // SAFETY: allocated by `alloc`; no reader is left.
            unsafe { delete(block) };
        }
    }
}

/// Moves `value` into fresh shared memory (plain data: it is never dropped).
pub fn new<T>(value: T) -> Result<*mut T, String> {
    // Kamailio's allocators (tlsf, qm, fm) align blocks to 8 bytes, no more: a type
    // that needs more must not compile here.
    const { assert!(align_of::<T>() <= 8, "shm blocks are 8-byte aligned") };
    let bytes = size_of::<T>();
    // SAFETY: plain allocation from the core's shm pool.
    let block = unsafe { kamailio_sys::warp_shm_malloc(bytes) } as *mut T;
    if block.is_null() {
        return Err(format!("out of shared memory ({bytes} bytes)"));
    }
    // SAFETY: fresh, large enough and aligned (8 bytes, checked above).
    unsafe { block.write(value) };
    Ok(block)
}

/// Frees what [`new`] allocated.
///
/// # Safety
/// `block` came from [`new`] and nothing uses it any more.
pub unsafe fn delete<T>(block: *mut T) {
    kamailio_sys::warp_shm_free(block.cast());
}

/// A value processes share, read and written under a spin lock: the writer in one
/// process may race a reader in another. Hold it only for copies and a few stores.
/// Lives inside a [`Block`] or another shm allocation.
#[repr(C)]
pub struct Locked<T> {
    busy: AtomicBool,
    value: UnsafeCell<T>,
}

// SAFETY: every access to the cell goes through `with`.
unsafe impl<T: Send> Sync for Locked<T> {}

impl<T> Locked<T> {
    pub const fn new(value: T) -> Self {
        Locked {
            busy: AtomicBool::new(false),
            value: UnsafeCell::new(value),
        }
    }

    pub fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        let mut spins = 0u32;
        while self
            .busy
            .compare_exchange_weak(false, true, Acquire, Relaxed)
            .is_err()
        {
            // A holder the kernel preempted needs a CPU to finish: after a while, give
            // ours up, as Kamailio's own locks do after 1024 tries.
            spins += 1;
            if spins.is_multiple_of(1024) {
                std::thread::yield_now();
            } else {
                std::hint::spin_loop();
            }
        }
        // Released even if `f` panics, or every process would spin here for good.
        struct Unlock<'a>(&'a AtomicBool);
        impl Drop for Unlock<'_> {
            fn drop(&mut self) {
                self.0.store(false, Release);
            }
        }
        let _unlock = Unlock(&self.busy);
        // SAFETY: the lock gives exclusive access.
        f(unsafe { &mut *self.value.get() })
    }
}

/// Text of at most `N` bytes that processes share (e.g. written by a dialog callback in
/// one process, read in another).
#[repr(C)]
pub struct Text<const N: usize>(Locked<(usize, [u8; N])>);

impl<const N: usize> Text<N> {
    pub fn new(text: &str) -> Result<Self, String> {
        let t = Text(Locked::new((0, [0; N])));
        t.set(text)?;
        Ok(t)
    }

    pub fn set(&self, text: &str) -> Result<(), String> {
        if text.len() > N {
            return Err(format!("{} bytes do not fit in {N}", text.len()));
        }
        self.0.with(|(len, bytes)| {
            bytes[..text.len()].copy_from_slice(text.as_bytes());
            *len = text.len();
        });
        Ok(())
    }

    pub fn get(&self) -> String {
        // Copied out under the spin lock, allocated after it: other processes spin
        // while it is held.
        let mut copy = [0; N];
        let len = self.0.with(|(len, bytes)| {
            copy[..*len].copy_from_slice(&bytes[..*len]);
            *len
        });
        String::from_utf8_lossy(&copy[..len]).into_owned()
    }
}
