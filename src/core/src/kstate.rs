//! Publishes the run's lifecycle in the introspection area, where the
//! host reads it without any exit.

use core::sync::atomic::{AtomicU32, Ordering};
use shared::boot::BootInfo;
use shared::kstate::{KSTATE_MAGIC, KSTATE_VERSION, KernelStateHeader, RUN_RUNNING};
use shared::memmap::KERNEL_STATE_ADDR;

fn header() -> *mut KernelStateHeader {
    KERNEL_STATE_ADDR as *mut KernelStateHeader
}

pub fn init(info: &BootInfo) {
    let h = KernelStateHeader {
        magic: KSTATE_MAGIC,
        version: KSTATE_VERSION,
        cpu_count: info.cpu_count,
        run_state: shared::kstate::RUN_BOOTING,
        tsc_khz: info.tsc_khz,
        boot_tsc: crate::time::rdtsc(),
        exit_code: 0,
        switches: 0,
        tasks_spawned: 0,
    };
    // SAFETY: KERNEL_STATE_ADDR is the fixed, identity-mapped introspection
    // region, large enough for the header (asserted in shared).
    unsafe { core::ptr::write_volatile(header(), h) };
}

fn run_state() -> &'static AtomicU32 {
    // SAFETY: run_state is a 4-byte aligned u32 inside the header; the
    // host only reads it, so an atomic view of it is sound.
    unsafe { &*(core::ptr::addr_of_mut!((*header()).run_state) as *const AtomicU32) }
}

pub fn set_running() {
    run_state().store(RUN_RUNNING, Ordering::Release);
}

/// Record the end of the run; `state` is RUN_FINISHED or RUN_FAILED.
pub fn set_ended(state: u32, exit_code: i64) {
    // SAFETY: the header region is ours (see init); plain stores before
    // the release store of run_state, which the host reads with acquire.
    unsafe { core::ptr::write_volatile(core::ptr::addr_of_mut!((*header()).exit_code), exit_code) };
    run_state().store(state, Ordering::Release);
}

/// Counters the host may read at any time; a torn read is impossible for
/// an aligned u64 and a slightly stale one is fine.
pub fn set_counters(switches: u64, tasks_spawned: u64) {
    // SAFETY: as in set_ended.
    unsafe {
        core::ptr::write_volatile(core::ptr::addr_of_mut!((*header()).switches), switches);
        core::ptr::write_volatile(
            core::ptr::addr_of_mut!((*header()).tasks_spawned),
            tasks_spawned,
        );
    }
}
