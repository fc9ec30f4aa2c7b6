//! A window onto the guest's introspection area (`abi::kstate`) that the
//! monitor thread reads while vCPUs run. Every access is an atomic load or
//! store on a bounds-checked, aligned offset: the guest writes the same
//! memory concurrently, and what it writes is never trusted.
//!
//! vm-memory's `Bytes::load` would do the same through a region lookup on
//! every call; the monitor does tens of millions of these per second at
//! high sample rates, so it resolves the host address once instead.

use crate::vm::memory::GuestRam;
use abi::memmap::{KERNEL_STATE_ADDR, KERNEL_STATE_SIZE};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// What keeps the viewed memory alive.
enum Backing {
    Ram(#[allow(dead_code)] Arc<GuestRam>),
    /// Synthetic memory the view owns (tests and fuzzing).
    Owned(#[allow(dead_code)] Box<[AtomicU64]>),
}

pub struct KstateView {
    base: *const u8,
    len: u64,
    _backing: Backing,
}

// SAFETY: the view only hands out shared references to atomics inside
// memory that `_backing` keeps mapped for the view's whole life; atomics may
// be used from any thread, and concurrently.
unsafe impl Send for KstateView {}
// SAFETY: as above: all access goes through atomics.
unsafe impl Sync for KstateView {}

impl KstateView {
    /// The introspection area of a VM's RAM (offset 0 = KERNEL_STATE_ADDR).
    pub fn of_ram(ram: Arc<GuestRam>) -> Option<Self> {
        if ram.size() < KERNEL_STATE_ADDR + KERNEL_STATE_SIZE {
            return None;
        }
        let base = (ram.host_base() + KERNEL_STATE_ADDR) as *const u8;
        Some(KstateView {
            base,
            len: KERNEL_STATE_SIZE,
            _backing: Backing::Ram(ram),
        })
    }

    /// Zeroed synthetic memory of `len` bytes (rounded up to 8): a guest
    /// that tests and the fuzzer play by writing into it, so the monitor's
    /// reading code runs over hostile contents without a VM.
    pub fn synthetic(len: u64) -> Self {
        let words: Box<[AtomicU64]> = (0..len.div_ceil(8)).map(|_| AtomicU64::new(0)).collect();
        KstateView {
            base: words.as_ptr().cast(),
            len: words.len() as u64 * 8,
            _backing: Backing::Owned(words),
        }
    }

    /// The atomic at `off`, if it is inside the view and naturally aligned.
    fn at<T>(&self, off: u64) -> Option<&T> {
        let size = size_of::<T>() as u64;
        if !off.is_multiple_of(size) || off.checked_add(size)? > self.len {
            return None;
        }
        // SAFETY: [off, off + size) is inside the view (checked above) and
        // aligned (base is at least 8-aligned: a 2 MiB-aligned RAM mapping
        // plus KERNEL_STATE_ADDR, or a Box of AtomicU64); the memory stays
        // mapped while `self` lives (`_backing`). T is AtomicU32 or
        // AtomicU64, for which any bit pattern is valid and concurrent
        // writes by the guest are not undefined behaviour for us.
        Some(unsafe { &*self.base.add(off as usize).cast::<T>() })
    }

    pub fn load_u64(&self, off: u64, order: Ordering) -> Option<u64> {
        self.at::<AtomicU64>(off).map(|a| a.load(order))
    }

    pub fn load_u32(&self, off: u64, order: Ordering) -> Option<u32> {
        self.at::<AtomicU32>(off).map(|a| a.load(order))
    }

    /// Returns false if `off` is outside the view.
    pub fn store_u64(&self, off: u64, v: u64, order: Ordering) -> bool {
        self.at::<AtomicU64>(off)
            .map(|a| a.store(v, order))
            .is_some()
    }

    /// Returns false if `off` is outside the view.
    pub fn store_u32(&self, off: u64, v: u32, order: Ordering) -> bool {
        self.at::<AtomicU32>(off)
            .map(|a| a.store(v, order))
            .is_some()
    }

    /// Copy `out.len()` words starting at `off` with relaxed loads (the
    /// caller orders them, e.g. with a seqlock). False if out of range.
    pub fn copy_words(&self, off: u64, out: &mut [u64]) -> bool {
        let Some(end) = off.checked_add(out.len() as u64 * 8) else {
            return false;
        };
        if end > self.len || !off.is_multiple_of(8) {
            return false;
        }
        for (i, w) in out.iter_mut().enumerate() {
            match self.load_u64(off + i as u64 * 8, Ordering::Relaxed) {
                Some(v) => *w = v,
                None => return false,
            }
        }
        true
    }

    /// Write words (tests and the fuzzer build synthetic guest state with
    /// this). False if any word is outside the view.
    pub fn write_words(&self, off: u64, words: &[u64]) -> bool {
        words
            .iter()
            .enumerate()
            .all(|(i, w)| self.store_u64(off + i as u64 * 8, *w, Ordering::Relaxed))
    }
}

/// Offset inside the introspection area of guest address `addr`.
pub const fn kstate_off(addr: u64) -> u64 {
    addr - KERNEL_STATE_ADDR
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accesses_are_bounds_and_alignment_checked() {
        let v = KstateView::synthetic(64);
        assert!(v.store_u64(56, 7, Ordering::Release));
        assert_eq!(v.load_u64(56, Ordering::Acquire), Some(7));
        assert_eq!(
            v.load_u32(56, Ordering::Acquire),
            Some(7),
            "little-endian low half"
        );
        assert_eq!(v.load_u64(60, Ordering::Relaxed), None, "misaligned");
        assert_eq!(v.load_u64(64, Ordering::Relaxed), None, "past the end");
        assert_eq!(v.load_u64(u64::MAX - 7, Ordering::Relaxed), None);
        assert!(!v.store_u64(64, 1, Ordering::Relaxed));
        let mut w = [0u64; 2];
        assert!(v.copy_words(48, &mut w));
        assert_eq!(w, [0, 7]);
        assert!(!v.copy_words(56, &mut w), "would run past the end");
        assert!(!v.copy_words(u64::MAX - 8, &mut w));
    }

    #[test]
    fn ram_view_starts_at_the_kernel_state_area() {
        use vm_memory::{Bytes, GuestAddress};
        let ram = Arc::new(GuestRam::new(abi::memmap::GUEST_RAM_MIN).unwrap());
        ram.memory()
            .write_obj(0xfeed_u64, GuestAddress(KERNEL_STATE_ADDR + 8))
            .unwrap();
        let v = KstateView::of_ram(ram.clone()).unwrap();
        assert_eq!(v.load_u64(8, Ordering::Acquire), Some(0xfeed));
        assert_eq!(v.load_u64(KERNEL_STATE_SIZE, Ordering::Acquire), None);
        let small = Arc::new(GuestRam::new(2 << 20).unwrap());
        assert!(KstateView::of_ram(small).is_none());
    }
}
