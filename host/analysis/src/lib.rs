//! Host-side scheduling analysis: turns what the guest kernel published
//! (per-CPU event rings, see [`abi::kstate`]) and what the host sampled
//! (per-CPU records) into metrics, and metrics into a pass/fail verdict.
//!
//! The crate is pure and `std`-only on purpose: the VMM feeds it plain
//! data after (or while) a run, and the tests feed it hand-built
//! timelines with known answers, so every number in a report can be
//! checked without booting a guest.
//!
//! - [`Replay`] walks the events once in TSC order into per-CPU run
//!   segments, per-task runs and waits, wake-up latencies and run-queue
//!   changes, independent of any window: the metrics and the host's
//!   pictures are both made from it.
//! - [`analyze_replay`] measures a replay over a window ([`Scope`]):
//!   runtime, share vs. weighted entitlement, runnable waits, wake-up
//!   latency, per-CPU utilisation and run-queue length; [`analyze`] does
//!   both steps for a [`Timeline`].
//! - [`verdict`] compares [`Metrics`] with [`Thresholds`] and adds CPU
//!   stalls found by [`StallDetector`].
//!
//! Odd data (events out of order, unknown pids, a switch-out with no
//! switch-in, TSC going backwards) never panics: it is counted in
//! [`Metrics::anomalies`] and the replay carries on with its best guess,
//! because a half-broken run is exactly when the report is needed most.
#![forbid(unsafe_code)]

mod clock_lag;
mod metrics;
pub mod replay;
pub use clock_lag::ClockLag;
mod stall;
mod verdict;

pub use abi::kstate::Event;
pub use metrics::{analyze, analyze_replay, entitled_shares, percentile};
pub use replay::Replay;
pub use stall::{StallDetector, find_stalls};
pub use verdict::verdict;

use abi::kstate::CpuRecord;
use serde::Serialize;

/// One task the caller wants judged for fairness and latency.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TaskMeta {
    pub pid: u32,
    /// Scheduling weight; 0 is treated as 1 (a task with no weight would
    /// be entitled to nothing and any runtime would be infinitely unfair).
    pub weight: u32,
    /// How many CPUs the task may run on; 0 = all.
    pub affinity_cpus: u32,
}

/// Everything [`analyze`] needs from one run.
#[derive(Clone, Debug, Default)]
pub struct Timeline {
    pub cpus: u32,
    /// TSC ticks per millisecond.
    pub tsc_khz: u64,
    /// Analysis window `[start_tsc, end_tsc]`: time-based metrics are
    /// clipped to it, counts only include events inside it. Events
    /// outside it still drive the replay (a switch-in before the window
    /// tells who is running when it opens).
    pub start_tsc: u64,
    pub end_tsc: u64,
    /// Events from all CPUs in any order; [`analyze`] sorts them by TSC
    /// (stable, so same-TSC events keep their given order).
    pub events: Vec<Event>,
    /// The tasks to judge. Other pids in `events` count for CPU
    /// utilisation and run-queue length but not for shares.
    pub tasks: Vec<TaskMeta>,
    /// Events the guest dropped because a ring was full.
    pub lost_events: u64,
}

impl Timeline {
    /// Everything but the events: what their [`Replay`] is measured over.
    pub fn scope(&self) -> Scope<'_> {
        Scope {
            tsc_khz: self.tsc_khz,
            start_tsc: self.start_tsc,
            end_tsc: self.end_tsc,
            tasks: &self.tasks,
            lost_events: self.lost_events,
            quantum_ns: 0,
            topology: None,
        }
    }
}

/// What [`analyze_replay`] measures a [`Replay`] over: a [`Timeline`]
/// without its events, so that one replay can be measured over several
/// windows (the judge measures shares over a narrower one) without being
/// replayed again. The fields mean what they mean in [`Timeline`].
#[derive(Clone, Copy, Debug, Default)]
pub struct Scope<'a> {
    pub tsc_khz: u64,
    pub start_tsc: u64,
    pub end_tsc: u64,
    pub tasks: &'a [TaskMeta],
    pub lost_events: u64,
    /// The longest slice a policy keeping to its configured slice gives
    /// (the slice plus one tick, for a policy that preempts on the first
    /// tick after it), in ns: the granularity the fairness noise allowance
    /// is computed from. 0: unknown, no allowance (errors are judged
    /// against the limit alone).
    pub quantum_ns: u64,
    /// The machine's shape: which migrations crossed an LLC or a node.
    /// None: none are counted as crossing.
    pub topology: Option<abi::topology::Topology>,
}

/// One host-side sample of a CPU's record (see [`CpuRecord`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CpuSample {
    /// When the host took the sample, in guest TSC ticks.
    pub tsc: u64,
    pub cpu: u32,
    pub current_pid: u32,
    /// Queued runnable tasks, the running one not included.
    pub rq_len: u32,
    /// The CPU's own clock: TSC at its last tick, switch or idle wake-up.
    pub clock_tsc: u64,
    /// TSC when the CPU last heard its timer (see `CpuRecord::irq_tsc`).
    pub irq_tsc: u64,
    /// The longest the CPU went without hearing its timer so far, TSC
    /// ticks, as the guest measured it (`CpuRecord::max_irq_gap`).
    pub max_irq_gap: u64,
    pub idle: bool,
}

impl CpuSample {
    /// A sample taken at host time `tsc` from a record read out of guest
    /// memory, so the VMM does not copy fields by hand.
    pub fn from_record(tsc: u64, r: &CpuRecord) -> Self {
        CpuSample {
            tsc,
            cpu: r.cpu,
            current_pid: r.current_pid,
            rq_len: r.rq_len,
            clock_tsc: r.clock_tsc,
            irq_tsc: r.irq_tsc,
            max_irq_gap: r.max_irq_gap,
            idle: r.idle != 0,
        }
    }
}

/// Latency distribution. Percentiles are nearest-rank (always a value
/// that was actually measured, never an interpolation).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Latency {
    pub count: u64,
    pub p50_ns: u64,
    pub p99_ns: u64,
    pub max_ns: u64,
}

impl Latency {
    /// Summarise a set of latencies (any order).
    pub fn from_ns(values: &[u64]) -> Self {
        let mut v = values.to_vec();
        v.sort_unstable();
        Latency {
            count: v.len() as u64,
            p50_ns: percentile(&v, 50),
            p99_ns: percentile(&v, 99),
            max_ns: v.last().copied().unwrap_or(0),
        }
    }
}

/// Per judged task.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TaskMetrics {
    pub pid: u32,
    pub weight: u32,
    /// Time on a CPU inside the window.
    pub runtime_ns: u64,
    /// `runtime / sum of judged tasks' runtime` (0 when none ran).
    pub share: f64,
    /// Share of the judged tasks' total this task is entitled to (see
    /// [`entitled_shares`]).
    pub entitled_share: f64,
    /// `share / entitled - 1`, signed: negative = got less than its due.
    /// 0 when no judged task ran (nothing to compare).
    pub fairness_error: f64,
    /// The largest `|fairness_error|` the run's own slicing can produce
    /// with no unfairness at all (see `metrics::fairness_noise`): an
    /// error within it is not evidence against the policy.
    pub fairness_noise: f64,
    /// Times the task ran in the window (its slices).
    pub slices: u64,
    /// Longest runnable-but-not-running stretch, clipped to the window;
    /// a stretch still open at the end counts up to `end_tsc`, so a task
    /// starved until the end is not missed.
    pub max_wait_ns: u64,
    pub total_wait_ns: u64,
    /// Wake-ups inside the window.
    pub wakeups: u64,
    /// EV_WAKEUP -> next switch-in, for wake-ups inside the window that
    /// were followed by a switch-in.
    pub wake_latency: Latency,
    /// Times switched in inside the window.
    pub switches: u64,
    /// Migrations inside the window.
    pub migrations: u64,
    /// Of those, how many left their last-level cache, and how many their
    /// node (socket), by [`Scope::topology`] (0 without one).
    pub migrations_cross_llc: u64,
    pub migrations_cross_node: u64,
}

/// Per CPU.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CpuMetrics {
    pub cpu: u32,
    /// Time running a task (pid != 0) inside the window.
    pub busy_ns: u64,
    /// `window - busy`: includes time the CPU's state was unknown (no
    /// switch event at all), since nothing shows it was busy.
    pub idle_ns: u64,
    /// `busy / window`.
    pub utilisation: f64,
    /// Switch events on this CPU inside the window.
    pub switches: u64,
    /// Mean queued runnable tasks: over this CPU's samples if it has any,
    /// else time-weighted over the window from the replayed events.
    pub mean_rq_len: f64,
    pub max_rq_len: u32,
}

/// What [`analyze`] measured.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Metrics {
    /// The judged tasks, in [`Timeline::tasks`] order.
    pub tasks: Vec<TaskMetrics>,
    pub cpus: Vec<CpuMetrics>,
    /// Over all judged tasks' wake-ups.
    pub wake_latency: Latency,
    /// Max over judged tasks of `|share / entitled - 1|`.
    pub max_fairness_error: f64,
    /// Max minus min of per-CPU `mean_rq_len`: how unevenly the load was
    /// queued.
    pub rq_imbalance: f64,
    /// Switch events inside the window, all CPUs.
    pub switches: u64,
    /// Migrate events inside the window.
    pub migrations: u64,
    /// Of those, across an LLC and across a node (see [`TaskMetrics`]).
    pub migrations_cross_llc: u64,
    pub migrations_cross_node: u64,
    /// Events given (all of them, inside the window or not).
    pub events: u64,
    pub lost_events: u64,
    /// Samples given.
    pub samples: u64,
    pub window_ns: u64,
    /// Inconsistencies met while replaying (see the crate docs); non-zero
    /// means some numbers are best guesses.
    pub anomalies: u64,
}

/// Limits for [`verdict`]; each `Some` produces one [`Check`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Thresholds {
    /// Longest runnable wait allowed for any judged task.
    pub max_wait_ns: Option<u64>,
    /// Largest `|share / entitled - 1|` allowed (0.1 = 10 %).
    pub max_fairness_error: Option<f64>,
    /// Largest p99 wake-up latency allowed, over all judged tasks.
    pub max_wake_p99_ns: Option<u64>,
    /// Checks measured and shown but not judged (the policy does not
    /// promise them), by check name, each with why.
    pub not_judged: Vec<(&'static str, String)>,
}

/// Outcome of a run.
#[derive(Serialize, Clone, Copy, PartialEq, Eq, Debug)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Fail,
    Inconclusive,
}

impl Status {
    /// Process exit code, so scripts and CI can branch on the outcome
    /// without parsing JSON: 0 pass, 1 fail, 2 inconclusive.
    pub fn exit_code(self) -> i32 {
        match self {
            Status::Pass => 0,
            Status::Fail => 1,
            Status::Inconclusive => 2,
        }
    }
}

/// One threshold compared with its metric.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Check {
    /// The threshold's name (`max_wait_ns`, `max_fairness_error`,
    /// `max_wake_p99_ns`, or `stalls`).
    pub name: String,
    /// The measured value, in the threshold's unit.
    pub value: f64,
    pub limit: f64,
    pub passed: bool,
    /// For people: which task was worst and by how much.
    pub detail: String,
    /// False for a check measured and shown but not judged (the policy
    /// does not promise it): its outcome does not change the verdict.
    pub judged: bool,
}

/// The judgement of a run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Verdict {
    pub status: Status,
    pub checks: Vec<Check>,
    /// Why the status is what it is: each failure (naming the task or
    /// CPU), then each reason the data is not enough to judge.
    pub reasons: Vec<String>,
}

/// A CPU whose clock stopped while the host kept sampling it. `rip` and
/// `function` come from the host (vCPU registers and the guest's symbols)
/// when it has them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Stall {
    pub cpu: u32,
    pub pid: u32,
    pub stalled_ns: u64,
    pub rip: Option<u64>,
    pub function: Option<String>,
}

/// TSC ticks to nanoseconds without overflow (u128 intermediate). 0 when
/// `tsc_khz` is 0: an unknown clock rate gives no durations rather than
/// a division by zero.
pub fn ticks_to_ns(ticks: u64, tsc_khz: u64) -> u64 {
    if tsc_khz == 0 {
        return 0;
    }
    let ns = ticks as u128 * 1_000_000 / tsc_khz as u128;
    u64::try_from(ns).unwrap_or(u64::MAX)
}

/// Nanoseconds to TSC ticks, saturating.
pub fn ns_to_ticks(ns: u64, tsc_khz: u64) -> u64 {
    let t = ns as u128 * tsc_khz as u128 / 1_000_000;
    u64::try_from(t).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests;
