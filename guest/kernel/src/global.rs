//! A cell for the core's global state.

use core::cell::UnsafeCell;

/// Interior-mutable global. Sound only while one flow of control at a time
/// touches it: each user documents what guarantees that (the scheduler
/// lock, or boot on CPU 0 before the other CPUs run).
pub struct Global<T>(UnsafeCell<T>);

// SAFETY: see the type's doc: every user serialises its accesses.
unsafe impl<T> Sync for Global<T> {}

impl<T> Global<T> {
    pub const fn new(v: T) -> Self {
        Global(UnsafeCell::new(v))
    }

    /// Mutable access to the value.
    ///
    /// # Safety
    /// The caller holds no other reference obtained from this cell, and
    /// does not hold the result across a context switch.
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn get(&self) -> &mut T {
        // SAFETY: exclusivity is the caller's obligation (above).
        unsafe { &mut *self.0.get() }
    }
}
