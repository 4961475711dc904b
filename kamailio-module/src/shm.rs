//! Blocks of Kamailio shared memory holding state all processes share (counters, the
//! reload epoch, trunk limits).
//!
//! Allocated in `mod_init`, before the workers fork, so every process sees the block at
//! the same address; only atomics live inside, so no lock is needed to touch them.

use std::mem::size_of;
use std::ptr::null_mut;
use std::sync::atomic::{AtomicPtr, Ordering::Relaxed};

/// One shared value of type `T`, allocated once per Kamailio run.
pub struct Block<T>(AtomicPtr<T>);

impl<T> Block<T> {
    pub const fn new() -> Self {
        Self(AtomicPtr::new(null_mut()))
    }

    /// Moves `value` into fresh shared memory; `mod_init` only.
    pub fn alloc(&self, value: T) -> Result<&'static T, String> {
        let bytes = size_of::<T>();
        // SAFETY: plain allocation from the core's shm pool.
        let block = unsafe { kamailio_sys::warp_shm_malloc(bytes) } as *mut T;
        if block.is_null() {
            return Err(format!("out of shared memory ({bytes} bytes)"));
        }
        // SAFETY: fresh, large enough and aligned (shm_malloc aligns for any type);
        // valid until `free` at shutdown.
        unsafe {
            block.write(value);
            self.0.store(block, Relaxed);
            Ok(&*block)
        }
    }

    pub fn get(&self) -> Option<&'static T> {
        // SAFETY: set once before fork and valid until `free` at shutdown.
        unsafe { self.0.load(Relaxed).as_ref() }
    }

    /// Frees the block; `destroy` only (main process, at shutdown, no reader left).
    pub fn free(&self) {
        let block = self.0.swap(null_mut(), Relaxed);
        if !block.is_null() {
            // SAFETY: allocated by `alloc` with shm_malloc.
            unsafe { kamailio_sys::warp_shm_free(block.cast()) };
        }
    }
}
