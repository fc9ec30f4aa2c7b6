//! `mixed`: interactive tasks (run a short burst, sleep, again) alongside
//! CPU hogs that never sleep. A scheduler good at this wakes the
//! interactive tasks promptly even though the hogs always want the CPU;
//! one that is not (a FIFO that lets a hog run until it is done) makes
//! them wait. Reports the interactive tasks' wake-up latency -- from the
//! end of the sleep they asked for to running again, measured by the task
//! itself, so it includes up to one tick of timer slack when an idle CPU
//! halted through the sleep's end -- and the work the hogs got done.
#![no_std]
#![no_main]

use abi::config::{MAX_WORKERS, MIXED_MAGIC, MixedConfig, OperationConfig};
use core::sync::atomic::{AtomicU64, Ordering};
use oplib::hist::Histogram;
use oplib::proto::{GuestMessage, MixedResult, Msg};
use oplib::{Api, api, work};

oplib::operation!(config_magic: MIXED_MAGIC, main: main);

static DEADLINE: AtomicU64 = AtomicU64::new(0);
static BURST_NS: AtomicU64 = AtomicU64::new(0);
static SLEEP_NS: AtomicU64 = AtomicU64::new(0);
static WAKE: Histogram = Histogram::new();
static BURSTS: AtomicU64 = AtomicU64::new(0);
static HOG_UNITS: AtomicU64 = AtomicU64::new(0);

fn main(api: &Api) -> i32 {
    let Some(c) = MixedConfig::from_bytes(api.config_bytes()) else {
        api.fail("mixed: the config is not a MixedConfig (magic MIXD, version 1): run make");
    };
    let (interactive, hogs) = (c.interactive as usize, c.hogs as usize);
    if interactive == 0 || interactive + hogs > MAX_WORKERS || c.burst_ns == 0 || c.sleep_ns == 0 {
        api.fail("mixed: task counts, burst or sleep out of range");
    }
    BURST_NS.store(c.burst_ns, Ordering::Relaxed);
    SLEEP_NS.store(c.sleep_ns, Ordering::Relaxed);
    let start = api.now_ns();
    DEADLINE.store(start + c.duration_ns, Ordering::Relaxed);
    let mut pids = [0u32; MAX_WORKERS];
    for (i, pid) in pids.iter_mut().enumerate().take(interactive + hogs) {
        let entry: extern "C" fn(u64) -> i32 = if i < interactive {
            interactive_task
        } else {
            hog
        };
        *pid = api
            .spawn(entry, i as u64, 1)
            .unwrap_or_else(|_| api.fail("mixed: the core refused to spawn a task"));
    }
    for &pid in pids.iter().take(interactive + hogs) {
        let _ = api.join(pid);
    }
    let mut r = MixedResult {
        interactive: c.interactive,
        hogs: c.hogs,
        hog_units: HOG_UNITS.load(Ordering::Relaxed),
        elapsed_ns: api.now_ns() - start,
        bursts: BURSTS.load(Ordering::Relaxed),
        ..MixedResult::default()
    };
    r.set_wake(WAKE.stats());
    if api
        .report(&GuestMessage {
            msg: Some(Msg::MixedResult(r)),
        })
        .is_err()
    {
        api.fail("mixed: could not send the result");
    }
    0
}

/// Burst, sleep, note how late the sleep really ended; until the deadline.
extern "C" fn interactive_task(_: u64) -> i32 {
    let api = api();
    let deadline = DEADLINE.load(Ordering::Relaxed);
    let burst = BURST_NS.load(Ordering::Relaxed);
    let sleep = SLEEP_NS.load(Ordering::Relaxed);
    while api.now_ns() < deadline {
        work::busy_for(&api, burst);
        BURSTS.fetch_add(1, Ordering::Relaxed);
        let asleep = api.now_ns();
        if asleep >= deadline {
            break;
        }
        api.sleep_ns(sleep);
        WAKE.record(api.now_ns().saturating_sub(asleep + sleep));
    }
    0
}

/// Units of work, offering the CPU back after each, until the deadline.
extern "C" fn hog(index: u64) -> i32 {
    let api = api();
    let deadline = DEADLINE.load(Ordering::Relaxed);
    let mut x = index + 1;
    let mut units = 0u64;
    while api.now_ns() < deadline {
        x = work::unit(x);
        units += 1;
        api.preempt_point();
    }
    core::hint::black_box(x);
    HOG_UNITS.fetch_add(units, Ordering::Relaxed);
    0
}
