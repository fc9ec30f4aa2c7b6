//! Unit tests on hand-built timelines whose answers are worked out by
//! hand in each test. Most use `tsc_khz = 1_000_000` so one tick is one
//! nanosecond and the expected numbers read directly.

mod metrics;
mod replay;
mod stall;
mod verdict;

use crate::{CpuSample, Event, TaskMeta, Timeline};
use abi::kstate::{EV_EXIT, EV_MIGRATE, EV_SPAWN, EV_SWITCH, EV_WAKEUP};

/// One tick = 1 ns.
pub const NS: u64 = 1_000_000;

/// `pid` switched in on `cpu`, `prev` left for `why`.
pub fn sw(tsc: u64, cpu: u16, pid: u32, prev: u32, why: u32) -> Event {
    Event::new(tsc, EV_SWITCH, cpu, pid, prev, why)
}

/// `pid` woken (by pid 99 on `cpu`) and queued for `target`.
pub fn wake(tsc: u64, cpu: u16, pid: u32, target: u32) -> Event {
    Event::new(tsc, EV_WAKEUP, cpu, pid, target, 99)
}

pub fn spawn(tsc: u64, cpu: u16, pid: u32, weight: u32) -> Event {
    Event::new(tsc, EV_SPAWN, cpu, pid, weight, 0)
}

pub fn migrate(tsc: u64, cpu: u16, pid: u32, from: u32, to: u32) -> Event {
    Event::new(tsc, EV_MIGRATE, cpu, pid, from, to)
}

pub fn exit(tsc: u64, cpu: u16, pid: u32) -> Event {
    Event::new(tsc, EV_EXIT, cpu, pid, 0, 0)
}

pub fn task(pid: u32, weight: u32) -> TaskMeta {
    TaskMeta {
        pid,
        weight,
        affinity_cpus: 0,
    }
}

pub fn timeline(
    cpus: u32,
    start: u64,
    end: u64,
    events: Vec<Event>,
    tasks: Vec<TaskMeta>,
) -> Timeline {
    Timeline {
        cpus,
        tsc_khz: NS,
        start_tsc: start,
        end_tsc: end,
        events,
        tasks,
        lost_events: 0,
    }
}

pub fn sample(tsc: u64, cpu: u32, pid: u32, rq_len: u32, clock_tsc: u64) -> CpuSample {
    CpuSample {
        tsc,
        cpu,
        current_pid: pid,
        rq_len,
        clock_tsc,
        irq_tsc: clock_tsc,
        max_irq_gap: 0,
        idle: pid == 0,
    }
}

/// Float comparison for shares and ratios computed by division.
#[track_caller]
pub fn close(a: f64, b: f64) {
    assert!((a - b).abs() < 1e-9, "{a} != {b}");
}
