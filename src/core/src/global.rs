//! A cell for the core's global state.

use core::cell::UnsafeCell;

/// Interior-mutable global. Sound only while exactly one flow of control
/// touches the core at a time: one vCPU, no interrupts, and no call-table
/// function re-entering another while it holds a borrow. Every borrow is
/// short and never held across a context switch.
pub struct Global<T>(UnsafeCell<T>);

// SAFETY: see the type's doc: the core is single-threaded for now.
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
