//! Per-CPU event rings in the kernel-state area: every switch, wake-up,
//! migration, spawn and exit, stamped with the TSC, for the host's exact
//! metrics. Written only by the owning CPU with preemption disabled (the
//! scheduler lock is held at every call site); a full ring drops the event
//! and counts it rather than stall the scheduler on the host.

use abi::kstate::{
    EVENT_RING_ENTRIES, EVENT_RING_HEADER_SIZE, EVENT_RING_LOST_OFFSET, EVENT_RING_READ_OFFSET,
    EVENT_RING_WRITE_OFFSET, Event, EventRingHeader, event_ring_addr,
};
use core::sync::atomic::{AtomicU64, Ordering};

fn word(cpu: u32, off: u64) -> &'static AtomicU64 {
    // SAFETY: the header words are 8-byte aligned u64s inside this CPU's
    // ring header in the kernel-state region, alive for the whole run.
    unsafe { &*((event_ring_addr(cpu) + off) as *const AtomicU64) }
}

pub fn init(cpu: u32) {
    // SAFETY: the ring header is inside the fixed kernel-state region.
    unsafe {
        core::ptr::write_volatile(
            event_ring_addr(cpu) as *mut EventRingHeader,
            EventRingHeader::new(),
        )
    };
}

pub fn emit(kind: u16, pid: u32, arg: u32, arg2: u32) {
    emit_at(crate::time::rdtsc(), kind, pid, arg, arg2)
}

/// [`emit`] stamped `tsc`: a path that already read the TSC (a switch, a
/// wake-up) stamps its event with that reading, the same instant its
/// accounting uses, and saves a `rdtsc` (hot in a tick-sampled profile
/// of the guest on this host).
pub fn emit_at(tsc: u64, kind: u16, pid: u32, arg: u32, arg2: u32) {
    let cpu = crate::percpu::cpu_id();
    let write = word(cpu, EVENT_RING_WRITE_OFFSET);
    let w = write.load(Ordering::Relaxed);
    if w - word(cpu, EVENT_RING_READ_OFFSET).load(Ordering::Acquire) >= EVENT_RING_ENTRIES {
        word(cpu, EVENT_RING_LOST_OFFSET).fetch_add(1, Ordering::Relaxed);
        return;
    }
    let e = Event {
        tsc,
        kind,
        cpu: cpu as u16,
        pid,
        arg,
        arg2,
        steal_ns: crate::steal::taken_ns(cpu),
    };
    let slot = event_ring_addr(cpu)
        + EVENT_RING_HEADER_SIZE
        + (w % EVENT_RING_ENTRIES) * core::mem::size_of::<Event>() as u64;
    // SAFETY: slot is inside this CPU's ring (index < EVENT_RING_ENTRIES)
    // and free (checked against read above); only this CPU writes here.
    unsafe { core::ptr::write_volatile(slot as *mut Event, e) };
    write.store(w + 1, Ordering::Release);
}
