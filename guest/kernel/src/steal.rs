//! Steal time: how long the host kept this vCPU runnable but not running
//! (KVM's paravirtual steal-time record, which the host updates on every
//! entry). With more vCPUs than host cores, wall time while a task is
//! switched in is not CPU time it got; the core charges tasks the
//! difference, and stamps every event with its CPU's steal so the host's
//! analysis can do the same. Time the host took without counting it as
//! steal (its timer unheard, no preemption point reached: see `heard`) is
//! treated the same way.

use abi::memmap::{MAX_CPUS, STEAL_TIME_ADDR, STEAL_TIME_STRIDE};
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

static ENABLED: AtomicBool = AtomicBool::new(false);

/// Per CPU (each written only by its own CPU): when it last heard its
/// timer or ran the scheduler's tick from a preemption point (TSC), the
/// steal time then, and the time it has gone unheard beyond steal (ns).
static HEARD_TSC: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];
static HEARD_STEAL: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];
static UNHEARD_NS: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];

/// This CPU ran guest code at `tsc`: its timer interrupt arrived, or a
/// running task's preemption point entered the scheduler's tick. A gap
/// since the last such moment of more than two tick periods (`period`,
/// TSC ticks) is time in which nothing in the guest ran: the host
/// delivered no tick and no task reached a preemption point. What of it
/// (beyond the one period a tick may take) steal time does not cover is
/// time the host took without saying so (it kept the vCPU thread busy in
/// its own kernel: a huge page zeroed, a world switch, an interrupt), and
/// is added to the unheard time, which `taken_ns` counts with steal.
/// Measured: with a busy host, a 2-task `rr` run charged one task 100 ms
/// of CPU time in one turn, in which it heard no tick for 88 ms and the
/// host's steal covered only part; the tasks' shares came out 69/31.
pub fn heard(cpu: u32, tsc: u64, period: u64) {
    let c = cpu as usize;
    if c >= MAX_CPUS {
        return;
    }
    let steal = ns(cpu);
    let prev = HEARD_TSC[c].swap(tsc, Ordering::Relaxed);
    let prev_steal = HEARD_STEAL[c].swap(steal, Ordering::Relaxed);
    if prev == 0 || period == 0 || tsc <= prev || tsc - prev <= 2 * period {
        return;
    }
    let beyond = crate::time::ticks_to_ns(tsc - prev - period);
    let unheard = beyond.saturating_sub(steal.saturating_sub(prev_steal));
    UNHEARD_NS[c].fetch_add(unheard, Ordering::Relaxed);
}

/// `ns` of this CPU's time went to the lab itself (waiting for the host
/// to drain a full event ring): counted like unheard time, so no task is
/// charged for it and event stamps include it.
pub fn took(cpu: u32, ns: u64) {
    if let Some(u) = UNHEARD_NS.get(cpu as usize) {
        u.fetch_add(ns, Ordering::Relaxed);
    }
}

/// Time taken from `cpu` so far, ns: its steal time plus the time it went
/// unheard beyond steal (see `heard`). Tasks are not charged for it, and
/// every event is stamped with it.
pub fn taken_ns(cpu: u32) -> u64 {
    let unheard = UNHEARD_NS
        .get(cpu as usize)
        .map_or(0, |u| u.load(Ordering::Relaxed));
    ns(cpu).saturating_add(unheard)
}

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
