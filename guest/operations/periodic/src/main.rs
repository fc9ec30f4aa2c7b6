//! `periodic`: tasks that each wake every `period`, run `runtime` of CPU
//! work and should be done within `deadline` of the wake-up, like rt-app's
//! periodic phase. Activation k of a task is at start + k x period (all
//! tasks share `start`, the hardest case: they are all released at once).
//! For each activation the task records its latency (when it actually got
//! to run, minus the activation time) and whether it finished past its
//! deadline. Time a job was away from its work (gaps between its clock
//! reads) beyond the time it waited for a CPU (the policy running others)
//! was taken by interrupts or the host: it is added to its CPU's lost
//! time. A miss that, without the time its CPU lost while the job was on
//! it (and a late start an excused miss before it caused), would have
//! been on time is also counted as an `away_miss`: the judge does not
//! blame the policy for those.
//!
//! The response time of a job is its completion minus its activation.
//! Each task is spawned with its period, runtime and deadline (and the
//! priority and CPUs given) as its real-time attributes
//! (`SpawnOptions::rt`), which real-time policies (`edf`, `fp`) read.
//!
//! A task sleeps until its next activation with `sleep_ns`, which ends
//! on time while a CPU runs or polls idle, and at the next tick on a
//! halted idle CPU (up to a tick of slack then). A task that is late (its previous job overran) starts the next
//! job at once. When the duration is over, a job that has not started and
//! whose deadline has passed is counted as missed without being run, so
//! an overloaded run still ends on time.
#![no_std]
#![no_main]

use abi::config::{OperationConfig, PERIODIC_MAGIC, PERIODIC_MAX_TASKS, PeriodicConfig};
use abi::ipc::{RtAttrs, SpawnOptions};
use abi::memmap::MAX_CPUS;
use core::sync::atomic::{AtomicU64, Ordering};
use oplib::hist::{Histogram, SharedStats};
use oplib::proto::{GuestMessage, Msg, PeriodicResult, PeriodicTask};
use oplib::{Api, api};

oplib::operation!(config_magic: PERIODIC_MAGIC, main: main);

/// A job started this late after its release still found its CPU free
/// (`sleep_ns` on a halted idle CPU wakes on the tick after the time
/// asked for).
const SLACK_NS: u64 = 2_000_000;

/// Time from the main task reading the clock to the first activation:
/// room to spawn every task first, so none starts late.
const LEAD_NS: u64 = 2_000_000;

static START: AtomicU64 = AtomicU64::new(0);

/// Per CPU: time the jobs that ran there lost to interrupts or the host
/// (away from their work beyond waiting for a CPU), ns, added as each job
/// ends. A job waiting behind one that lost time was delayed by it too.
static CPU_LOST: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];
/// Per CPU: jobs started there and not finished, and `CPU_LOST` when the
/// current busy stretch began (a job released onto a CPU with no job in
/// progress). Every job in a busy stretch can be delayed by all the time
/// lost in it: a late job waited behind the others.
static CPU_PENDING: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];
static CPU_BUSY_BASE: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];
/// Per task: the release of the job it has not finished yet (u64::MAX
/// once it is done). A task whose value is in the past has a job
/// released and unfinished -- running, or waiting for a CPU, or not even
/// woken yet -- so a busy stretch has not ended, whatever `CPU_PENDING`
/// (jobs started and unfinished) says: under overload the time lost
/// earlier in the stretch still delays that job.
static NEXT_RELEASE: [AtomicU64; PERIODIC_MAX_TASKS] =
    [const { AtomicU64::new(u64::MAX) }; PERIODIC_MAX_TASKS];

/// Whether a task other than `me` (of `n`) has a job released by `now`
/// and not finished.
fn others_pending(me: usize, n: usize, now: u64) -> bool {
    (0..n).any(|j| j != me && NEXT_RELEASE[j].load(Ordering::Relaxed) <= now)
}

fn cpu_index(api: &Api) -> usize {
    (api.current_cpu() as usize).min(MAX_CPUS - 1)
}

/// What a task hands back to main: activations, misses (and how many of
/// them time away explains), and its latency stats.
struct Slot {
    activations: AtomicU64,
    misses: AtomicU64,
    away_misses: AtomicU64,
    lost_ns: AtomicU64,
    waited_ns: AtomicU64,
    ran_on: AtomicU64,
    latency: SharedStats,
    response: SharedStats,
}

static SLOTS: [Slot; PERIODIC_MAX_TASKS] = [const {
    Slot {
        activations: AtomicU64::new(0),
        misses: AtomicU64::new(0),
        away_misses: AtomicU64::new(0),
        lost_ns: AtomicU64::new(0),
        waited_ns: AtomicU64::new(0),
        ran_on: AtomicU64::new(0),
        latency: SharedStats::new(),
        response: SharedStats::new(),
    }
}; PERIODIC_MAX_TASKS];

fn config(api: &Api) -> PeriodicConfig {
    match PeriodicConfig::from_bytes(api.config_bytes()) {
        Some(c) => c,
        None => api
            .fail("periodic: the config is not a PeriodicConfig (magic PERI, version 2): run make"),
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
    let start = api.now_ns() + LEAD_NS;
    START.store(start, Ordering::Relaxed);
    for r in NEXT_RELEASE.iter().take(n) {
        r.store(start, Ordering::Relaxed);
    }
    let mut pids = [0u32; PERIODIC_MAX_TASKS];
    for (i, pid) in pids.iter_mut().enumerate().take(n) {
        let opts = SpawnOptions {
            affinity: cfg.affinity[i],
            rt: RtAttrs {
                period_ns: cfg.period_ns[i],
                runtime_ns: cfg.runtime_ns[i],
                deadline_ns: cfg.deadline_ns[i],
                priority: cfg.priority[i],
                reserved: 0,
            },
            ..SpawnOptions::new(1)
        };
        *pid = api.spawn_ex(task, i as u64, &opts).unwrap_or_else(|_| {
            api.fail("periodic: the core refused to spawn a task (bad --pin CPU?)")
        });
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
            lost_ns: s.lost_ns.load(Ordering::Relaxed),
            waited_ns: s.waited_ns.load(Ordering::Relaxed),
            priority: cfg.priority[i],
            affinity: cfg.affinity[i],
            ran_on: s.ran_on.load(Ordering::Relaxed),
            ..PeriodicTask::default()
        };
        t.set_latency(s.latency.load());
        t.set_response(s.response.load());
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
    let response = Histogram::new();
    let (mut activations, mut misses, mut away_misses) = (0u64, 0u64, 0u64);
    let (mut lost_all, mut waited_all) = (0u64, 0u64);
    // CPUs its jobs started and ended on: shows a pinned task stayed put.
    let mut ran_on = 0u64;
    // The previous job was late only by lost time: so is this one's start.
    let mut previous_excused = false;
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
            let late_start = running.saturating_sub(act);
            latency.record(late_start);
            let c = cpu_index(&api);
            ran_on |= 1 << c;
            // Released onto a CPU with no job in progress, no other job
            // released and unfinished, and started within the timer's
            // slack: a new busy stretch.
            if CPU_PENDING[c].fetch_add(1, Ordering::Relaxed) == 0
                && late_start <= SLACK_NS
                && !others_pending(i, cfg.tasks as usize, running)
            {
                CPU_BUSY_BASE[c].store(CPU_LOST[c].load(Ordering::Relaxed), Ordering::Relaxed);
            }
            let waited0 = api.task_wait_ns();
            let busy = oplib::work::busy_for_timed(&api, runtime);
            let done = api.now_ns();
            response.record(done.saturating_sub(act));
            // Away from the job beyond what it waited for a CPU (the
            // policy running others): taken by interrupts or the host.
            let waited = api.task_wait_ns().saturating_sub(waited0);
            let lost = busy.away_ns.saturating_sub(waited);
            // The job may have moved: charge and release where it ended.
            let c = cpu_index(&api);
            ran_on |= 1 << c;
            let lost_now = CPU_LOST[c].fetch_add(lost, Ordering::Relaxed) + lost;
            let _ = CPU_PENDING[c].fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                Some(n.saturating_sub(1))
            });
            lost_all += lost;
            waited_all += waited;
            if done > act + deadline {
                misses += 1;
                // All the time this CPU lost in the busy stretch the job
                // ran in (its own, and the jobs it waited behind) and a
                // start delayed by an excused miss before it: without
                // that, on time -- not the policy's miss.
                let mut excused = lost_now.saturating_sub(CPU_BUSY_BASE[c].load(Ordering::Relaxed));
                if previous_excused {
                    excused += late_start;
                }
                previous_excused = done.saturating_sub(excused) <= act + deadline;
                if previous_excused {
                    away_misses += 1;
                }
            } else {
                previous_excused = false;
            }
        }
        act += period;
        NEXT_RELEASE[i].store(act, Ordering::Relaxed);
    }
    NEXT_RELEASE[i].store(u64::MAX, Ordering::Relaxed);
    let s = &SLOTS[i];
    s.activations.store(activations, Ordering::Relaxed);
    s.misses.store(misses, Ordering::Relaxed);
    s.away_misses.store(away_misses, Ordering::Relaxed);
    s.lost_ns.store(lost_all, Ordering::Relaxed);
    s.waited_ns.store(waited_all, Ordering::Relaxed);
    s.ran_on.store(ran_on, Ordering::Relaxed);
    s.latency.store(&latency.stats());
    s.response.store(&response.stats());
    0
}
