//! `periodic`: tasks that each wake every `period`, run `runtime` of CPU
//! work and should be done within `deadline` of the wake-up, like rt-app's
//! periodic phase. Activation k of a task is at start + k x period (all
//! tasks share `start`, the hardest case: they are all released at once).
//! For each activation the task records its latency (when it actually got
//! to run, minus the activation time) and whether it finished past its
//! deadline. A miss by a job that, without the time it was away (gaps
//! between its clock reads) beyond the time it waited for a CPU (the
//! policy running others), would have been on time, is also counted as
//! an `away_miss`: interrupts or the host made it late, and the judge
//! does not blame the policy for those.
//!
//! A task sleeps until its next activation with `sleep_ns`, whose
//! granularity is the tick: latencies include up to one tick of timer
//! slack. A task that is late (its previous job overran) starts the next
//! job at once. When the duration is over, a job that has not started and
//! whose deadline has passed is counted as missed without being run, so
//! an overloaded run still ends on time.
#![no_std]
#![no_main]

use abi::config::{OperationConfig, PERIODIC_MAGIC, PERIODIC_MAX_TASKS, PeriodicConfig};
use core::sync::atomic::{AtomicU64, Ordering};
use oplib::hist::{Histogram, SharedStats};
use oplib::proto::{GuestMessage, Msg, PeriodicResult, PeriodicTask};
use oplib::{Api, api};

oplib::operation!(config_magic: PERIODIC_MAGIC, main: main);

/// Time from the main task reading the clock to the first activation:
/// room to spawn every task first, so none starts late.
const LEAD_NS: u64 = 2_000_000;

static START: AtomicU64 = AtomicU64::new(0);

/// What a task hands back to main: activations, misses (and how many of
/// them time away explains), and its latency stats.
struct Slot {
    activations: AtomicU64,
    misses: AtomicU64,
    away_misses: AtomicU64,
    latency: SharedStats,
}

static SLOTS: [Slot; PERIODIC_MAX_TASKS] = [const {
    Slot {
        activations: AtomicU64::new(0),
        misses: AtomicU64::new(0),
        away_misses: AtomicU64::new(0),
        latency: SharedStats::new(),
    }
}; PERIODIC_MAX_TASKS];

fn config(api: &Api) -> PeriodicConfig {
    match PeriodicConfig::from_bytes(api.config_bytes()) {
        Some(c) => c,
        None => api
            .fail("periodic: the config is not a PeriodicConfig (magic PERI, version 1): run make"),
    }
}

fn main(api: &Api) -> i32 {
    let cfg = config(api);
    let n = cfg.tasks as usize;
    if n == 0 || n > PERIODIC_MAX_TASKS {
        api.fail("periodic: task count out of range");
    }
    for i in 0..n {
        let (p, r, d) = (cfg.period_ns[i], cfg.runtime_ns[i], cfg.deadline_ns[i]);
        if r == 0 || r > d || d > p {
            api.fail("periodic: each task needs 0 < runtime <= deadline <= period");
        }
    }
    START.store(api.now_ns() + LEAD_NS, Ordering::Relaxed);
    let mut pids = [0u32; PERIODIC_MAX_TASKS];
    for (i, pid) in pids.iter_mut().enumerate().take(n) {
        *pid = api
            .spawn(task, i as u64, 1)
            .unwrap_or_else(|_| api.fail("periodic: the core refused to spawn a task"));
    }
    let mut result = PeriodicResult::default();
    for (i, &pid) in pids.iter().enumerate().take(n) {
        let _ = api.join(pid);
        let s = &SLOTS[i];
        let mut t = PeriodicTask {
            pid,
            period_ns: cfg.period_ns[i],
            runtime_ns: cfg.runtime_ns[i],
            deadline_ns: cfg.deadline_ns[i],
            activations: s.activations.load(Ordering::Relaxed),
            misses: s.misses.load(Ordering::Relaxed),
            away_misses: s.away_misses.load(Ordering::Relaxed),
            ..PeriodicTask::default()
        };
        t.set_latency(s.latency.load());
        // Capacity is PERIODIC_MAX_TASKS and n <= PERIODIC_MAX_TASKS.
        let _ = result.tasks.push(t);
    }
    result.elapsed_ns = api.now_ns().saturating_sub(START.load(Ordering::Relaxed));
    if api
        .report(&GuestMessage {
            msg: Some(Msg::PeriodicResult(result)),
        })
        .is_err()
    {
        api.fail("periodic: could not send the result");
    }
    0
}

extern "C" fn task(index: u64) -> i32 {
    let api = api();
    let cfg = config(&api);
    let i = index as usize;
    let (period, runtime, deadline) = (cfg.period_ns[i], cfg.runtime_ns[i], cfg.deadline_ns[i]);
    let start = START.load(Ordering::Relaxed);
    let end = start + cfg.duration_ns;
    // Only this task records into it: on its own stack, not in the image.
    let latency = Histogram::new();
    let (mut activations, mut misses, mut away_misses) = (0u64, 0u64, 0u64);
    let mut act = start;
    while act < end {
        let now = api.now_ns();
        if now < act {
            api.sleep_ns(act - now);
        }
        let running = api.now_ns();
        activations += 1;
        if running >= end && running > act + deadline {
            misses += 1;
        } else {
            latency.record(running.saturating_sub(act));
            let waited0 = api.task_wait_ns();
            let busy = oplib::work::busy_for_timed(&api, runtime);
            let done = api.now_ns();
            if done > act + deadline {
                misses += 1;
                // Away from the job beyond what it waited for a CPU (the
                // policy running others): taken by interrupts or the
                // host. Without that, on time: not the policy's miss.
                let waited = api.task_wait_ns().saturating_sub(waited0);
                let lost = busy.away_ns.saturating_sub(waited);
                if done - lost <= act + deadline {
                    away_misses += 1;
                }
            }
        }
        act += period;
    }
    let s = &SLOTS[i];
    s.activations.store(activations, Ordering::Relaxed);
    s.misses.store(misses, Ordering::Relaxed);
    s.away_misses.store(away_misses, Ordering::Relaxed);
    s.latency.store(&latency.stats());
    0
}
