//! `fp`: preemptive fixed-priority scheduling of periodic tasks, as
//! Linux's SCHED_FIFO runs tasks of different priorities, with the
//! priorities assigned rate-monotonically (shorter period = higher
//! priority) unless the tasks were given explicit ones
//! (`PolicyTask::rt_priority`, higher runs first; `periodic --priority`).
//!
//! A task's priority never changes. Every CPU runs the highest-priority
//! queued task it may run; ties go to the task queued first (FIFO, as
//! within one SCHED_FIFO level; a preempted task goes behind its equals).
//! A waking task of higher priority than the lowest-priority task running
//! on a CPU it may use preempts that one (`KICK_PREEMPT`); an idle CPU it
//! may use is woken instead if there is one. Tasks with an explicit
//! priority rank above every task ordered by period; a task with neither
//! (an operation's main task, any non-periodic workload) runs in the
//! background, below all of them, from a FIFO queue with the run's slice.
//!
//! Global and partitioned as `edf`: one priority-ordered queue, from
//! which a CPU takes the first task that may run on it, so a pinned task
//! competes only with the tasks that may run on its CPU.
//!
//! What it leaves out of SCHED_FIFO/SCHED_RR: priority inheritance (there
//! are no locks to inherit through), RT throttling
//! (`sched_rt_runtime_us`: the background gets nothing while the
//! periodic tasks want every CPU), round robin within a level, and RT
//! push/pull between per-CPU run queues. Budgets are not enforced: a task
//! that runs past its declared runtime keeps its priority.
#![cfg_attr(not(test), no_std)]
#![cfg_attr(not(test), no_main)]

use policy_sdk::{SLICE_DFL, SLICE_INF, Scheduler, Shares, Task, dsq, place, rt};

/// Prioritised tasks, ordered by [`key`] (`dsq_vtime`).
const PRIORITY_Q: u64 = 0;
/// Background tasks, FIFO.
const BACKGROUND_Q: u64 = 1;

/// Explicit priorities (higher first) rank above periods: their keys are
/// below 2^32, period keys 2^32 + period.
const PERIOD_KEYS: u64 = 1 << 32;

/// A task's rank, smaller runs first: an explicit priority, else its
/// period (rate-monotonic), else after everything (background).
pub fn key(p: &Task) -> u64 {
    match (rt::priority(p), rt::period_ns(p)) {
        (Some(prio), _) => u64::from(u32::MAX - prio),
        (None, Some(period)) => PERIOD_KEYS.saturating_add(period),
        (None, None) => u64::MAX,
    }
}

struct Fp;

impl Scheduler for Fp {
    const NAME: &'static str = "fp";
    const DESCRIPTION: &'static str = "preemptive fixed priority: rate-monotonic by period \
        unless priorities are given (global; partitioned for pinned tasks); others in the \
        background";
    const SHARES: Shares = Shares::None;
    // Not promised: rate-monotonic order meets every deadline only below
    // its schedulability bound (Liu & Layland: n(2^(1/n) - 1), about 69 %
    // for many tasks), not whenever the load allows; EDF does.
    const DEADLINES: bool = false;

    fn init(&mut self) -> i32 {
        if dsq::create(PRIORITY_Q) && dsq::create(BACKGROUND_Q) {
            0
        } else {
            -1
        }
    }

    fn select_cpu(&mut self, p: &mut Task, prev_cpu: u32, _wake_flags: u64) -> u32 {
        rt::select_cpu(p, prev_cpu)
    }

    fn enqueue(&mut self, p: &mut Task, _flags: u64) {
        let k = key(p);
        if k == u64::MAX {
            dsq::insert(p, BACKGROUND_Q, SLICE_DFL, 0);
            return;
        }
        dsq::insert_vtime(p, PRIORITY_Q, SLICE_INF, k, 0);
        rt::kick_for(place::allowed(p), k, key);
    }

    /// The highest priority that may run here, else the background.
    fn dispatch(&mut self, cpu: u32) {
        if !dsq::move_to_local(PRIORITY_Q, cpu) {
            dsq::move_to_local(BACKGROUND_Q, cpu);
        }
    }

    /// Preemption a wake-up's kick did not reach (or any prioritised task,
    /// for a background one).
    fn tick(&mut self, p: &mut Task) {
        if rt::should_yield(PRIORITY_Q, p, key(p), key) {
            p.slice_ns = 0;
        }
    }
}

policy_sdk::export_policy!(Fp, Fp);

#[cfg(test)]
mod tests;
