//! Per-CPU event rings in the kernel-state area: every switch, wake-up,
//! migration, spawn and exit, stamped with the TSC, for the host's exact
//! metrics. Written only by the owning CPU with preemption disabled (the
//! scheduler lock is held at every call site). A full ring makes the CPU
//! wait for the host's monitor to drain it, up to EVENT_RING_WAIT_MAX_NS,
//! and that wait is time taken from the CPU (`steal::took`), charged to no
//! task; only a monitor gone for longer costs events, which are counted
//! (`lost`), and the CPU then stops waiting until the ring has room.

use abi::kstate::{
    EVENT_RING_ENTRIES, EVENT_RING_HEADER_SIZE, EVENT_RING_LOST_OFFSET, EVENT_RING_READ_OFFSET,
    EVENT_RING_WAIT_MAX_NS, EVENT_RING_WAITED_OFFSET, EVENT_RING_WRITE_OFFSET, Event,
    EventRingHeader, event_ring_addr,
};
use abi::memmap::MAX_CPUS;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Per CPU: a wait for room timed out, so events drop without waiting
/// until the ring is half empty again (a monitor that is gone must not
/// cost every event the full wait).
static GAVE_UP: [AtomicBool; MAX_CPUS] = [const { AtomicBool::new(false) }; MAX_CPUS];

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
    // Stamped as of `tsc`, before any wait below: a wait for room comes
    // after the event's instant, so it falls in the interval the event
    // opens, and its steal difference there takes the wait out.
    let steal_ns = crate::steal::taken_ns(cpu);
    let used = w - word(cpu, EVENT_RING_READ_OFFSET).load(Ordering::Acquire);
    if used >= EVENT_RING_ENTRIES && !wait_for_room(cpu, w) {
        word(cpu, EVENT_RING_LOST_OFFSET).fetch_add(1, Ordering::Relaxed);
        return;
    }
    // The host caught up: wait again the next time the ring is full.
    if used <= EVENT_RING_ENTRIES / 2
        && let Some(g) = GAVE_UP.get(cpu as usize)
        && g.load(Ordering::Relaxed)
    {
        g.store(false, Ordering::Relaxed);
    }
    let e = Event {
        tsc,
        kind,
        cpu: cpu as u16,
        pid,
        arg,
        arg2,
        steal_ns,
    };
    let slot = event_ring_addr(cpu)
        + EVENT_RING_HEADER_SIZE
        + (w % EVENT_RING_ENTRIES) * core::mem::size_of::<Event>() as u64;
    // SAFETY: slot is inside this CPU's ring (index < EVENT_RING_ENTRIES)
    // and free (checked against read above); only this CPU writes here.
    unsafe { core::ptr::write_volatile(slot as *mut Event, e) };
    write.store(w + 1, Ordering::Release);
}

/// Wait for the host to drain `cpu`'s full ring (write index `w`): true
/// once there is room, false if there was none within
/// EVENT_RING_WAIT_MAX_NS (or this CPU gave up waiting earlier and the
/// ring has not been half empty since). The wait is time taken from the
/// CPU, counted in the ring header for the host to report.
fn wait_for_room(cpu: u32, w: u64) -> bool {
    let c = cpu as usize;
    let read = word(cpu, EVENT_RING_READ_OFFSET);
    // Gave up earlier, and the ring has not been half empty since (see
    // emit_at): drop without waiting.
    if GAVE_UP.get(c).is_some_and(|g| g.load(Ordering::Relaxed)) {
        return false;
    }
    let start = crate::time::rdtsc();
    let limit = crate::time::ns_to_ticks(EVENT_RING_WAIT_MAX_NS);
    let room = loop {
        if w - read.load(Ordering::Acquire) < EVENT_RING_ENTRIES {
            break true;
        }
        if crate::time::rdtsc() - start > limit {
            break false;
        }
        core::hint::spin_loop();
    };
    let ns = crate::time::ticks_to_ns(crate::time::rdtsc() - start);
    crate::steal::took(cpu, ns);
    word(cpu, EVENT_RING_WAITED_OFFSET).fetch_add(ns, Ordering::Relaxed);
    if !room && let Some(g) = GAVE_UP.get(c) {
        g.store(true, Ordering::Relaxed);
    }
    room
}
