//! Time from the TSC. The VMM passes the TSC frequency and the TSC value
//! at VM creation, so guest `now_ns` and host timestamps share an origin.

use crate::global::Global;
use abi::boot::BootInfo;

struct Clock {
    epoch_tsc: u64,
    /// ns per TSC tick, and TSC ticks per ns, as 32.32 fixed-point
    /// numbers: conversions are a multiply and a shift, not a 128-bit
    /// division (a software routine here, hot in a receive with a timeout).
    ns_per_tick: u64,
    ticks_per_ns: u64,
}

static CLOCK: Global<Clock> = Global::new(Clock {
    epoch_tsc: 0,
    ns_per_tick: 0,
    ticks_per_ns: 0,
});

pub fn init(info: &BootInfo) {
    // SAFETY: called once at boot, before any other use of CLOCK.
    let c = unsafe { CLOCK.get() };
    c.ns_per_tick = (1_000_000u64 << 32) / info.tsc_khz;
    // tsc_khz <= 1e8 (checked in boot::validate): at most 100 << 32.
    c.ticks_per_ns = ((u128::from(info.tsc_khz) << 32) / 1_000_000) as u64;
    // A guest TSC behind the host's would make every reading wrap; count
    // from boot instead in that case.
    c.epoch_tsc = if rdtsc() >= info.epoch_tsc {
        info.epoch_tsc
    } else {
        rdtsc()
    };
}

#[inline(always)]
pub fn rdtsc() -> u64 {
    // SAFETY: rdtsc has no side effects and runs natively at CPL3 here.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// ns since the VMM created the VM.
pub fn now_ns() -> u64 {
    ns_at(rdtsc())
}

/// `now_ns` at TSC reading `tsc`.
pub fn ns_at(tsc: u64) -> u64 {
    // SAFETY: CLOCK is only written by init, before tasks run.
    let c = unsafe { CLOCK.get() };
    ticks_to_ns(tsc.saturating_sub(c.epoch_tsc))
}

pub fn ticks_to_ns(ticks: u64) -> u64 {
    // SAFETY: as in now_ns.
    let c = unsafe { CLOCK.get() };
    ((ticks as u128 * c.ns_per_tick as u128) >> 32) as u64
}

pub fn ns_to_ticks(ns: u64) -> u64 {
    // SAFETY: as in now_ns.
    let c = unsafe { CLOCK.get() };
    ((ns as u128 * c.ticks_per_ns as u128) >> 32) as u64
}
