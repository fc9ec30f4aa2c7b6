//! Steal time: how long the host kept this vCPU runnable but not running
//! (KVM's paravirtual steal-time record, which the host updates on every
//! entry). With more vCPUs than host cores, wall time while a task is
//! switched in is not CPU time it got; the core charges tasks the
//! difference, and stamps every event with its CPU's steal so the host's
//! analysis can do the same.

use abi::memmap::{STEAL_TIME_ADDR, STEAL_TIME_STRIDE};
use core::sync::atomic::{AtomicBool, Ordering};

static ENABLED: AtomicBool = AtomicBool::new(false);

/// Register this CPU's record with the hypervisor (at boot, per CPU).
pub fn init(cpu: u32) -> bool {
    let ok = crate::entry::enable_steal_time(STEAL_TIME_ADDR + cpu as u64 * STEAL_TIME_STRIDE);
    if ok {
        ENABLED.store(true, Ordering::Relaxed);
    }
    ok
}

/// Total steal time of `cpu` so far, in ns (0 without steal time).
pub fn ns(cpu: u32) -> u64 {
    if !ENABLED.load(Ordering::Relaxed) {
        return 0;
    }
    let base = STEAL_TIME_ADDR + cpu as u64 * STEAL_TIME_STRIDE;
    let steal = base as *const u64;
    let version = (base + 8) as *const u32;
    loop {
        // SAFETY: the record is inside the steal-time region of the map;
        // the host writes it with the version protocol (odd while
        // updating), which this loop follows.
        unsafe {
            let v1 = core::ptr::read_volatile(version);
            core::sync::atomic::fence(Ordering::Acquire);
            let s = core::ptr::read_volatile(steal);
            core::sync::atomic::fence(Ordering::Acquire);
            if v1 & 1 == 0 && core::ptr::read_volatile(version) == v1 {
                return s;
            }
        }
        core::hint::spin_loop();
    }
}
