//! Statics handed to the Kamailio core by address: module parameters it writes while
//! parsing the config, and the export tables it reads (and may adjust) when loading.

use std::cell::UnsafeCell;

/// Same layout as `T`, placed in writable memory.
#[repr(transparent)]
pub struct CoreCell<T>(UnsafeCell<T>);

// SAFETY: the core touches these only while loading the module and parsing the config,
// single-threaded and before any Rust code reads them.
unsafe impl<T> Sync for CoreCell<T> {}

impl<T> CoreCell<T> {
    pub const fn new(value: T) -> Self {
        Self(UnsafeCell::new(value))
    }

    pub const fn as_ptr(&self) -> *mut T {
        self.0.get()
    }
}

impl<T: Copy> CoreCell<T> {
    /// The current value (after config parsing).
    pub fn read(&self) -> T {
        // SAFETY: see the Sync impl.
        unsafe { *self.0.get() }
    }
}
