//! `edf`: earliest deadline first, as Linux's SCHED_DEADLINE orders its
//! tasks, over the periodic tasks' attributes (`PolicyTask::rt_*`).
//!
//! A job's absolute deadline is its release (the wake-up that starts it)
//! plus the task's relative deadline, kept in the task's `data`. Every
//! CPU runs the queued task with the earliest deadline it may run; a
//! waking task with an earlier deadline than the latest-deadline task
//! running on a CPU it may use preempts that one (`KICK_PREEMPT`), an
//! idle CPU it may use is woken instead if there is one.
//!
//! What it models of SCHED_DEADLINE: the constant-bandwidth server's two
//! rules. A task that has used its runtime budget (`rt_runtime_ns` of CPU
//! time, as the core charges it at each tick) gets its deadline postponed
//! by one period and a fresh budget, so an overrunning task cannot take
//! more than its bandwidth from the others while they have work; a task
//! waking with its old deadline passed, or with too little time left
//! before it for the budget it has left (remaining / (deadline - now) >
//! runtime / period), starts a new job at now + deadline. What it leaves
//! out: throttling (a task out of budget keeps running, at its postponed
//! deadline, when nothing earlier wants the CPU: "soft" CBS, like
//! SCHED_FLAG_RECLAIM rather than the hard reservation), admission
//! control (sched_setattr's utilisation test), GRUB reclaiming, the
//! dl_server and push/pull between per-CPU run queues. Budgets are
//! checked at the tick, so an overrun is seen up to one tick late. The
//! core charges interrupt handling to the task it interrupted, which
//! Linux with IRQ time accounting keeps out of a deadline task's runtime:
//! a job of exactly its runtime's work then overran by the lab's own
//! overhead (2-10 % of a job here, in spikes) every time and was
//! postponed a period at its tail, and EDF missed deadlines at U = 0.80.
//! A budget is therefore used up at its runtime plus an eighth
//! (`OVERRUN_SLACK_SHIFT`): more than that overhead, far less than an
//! overrun worth the name. Measured at U = 0.80 (100 Hz, polling idle):
//! with a sixteenth, 1-3 misses in about half the runs; with an eighth,
//! none in 6 of 6.
//!
//! Global and partitioned: one deadline-ordered queue holds every
//! deadline task; a CPU takes the earliest task that may run on it, so a
//! task allowed on one CPU (pinned) is in effect in that CPU's own
//! deadline-ordered queue and competes only with tasks that may run
//! there -- partitioned EDF -- while unpinned tasks are scheduled
//! globally. (One queue filtered by CPU takes the earlier of "the CPU's
//! head" and "the global head" by construction; separate per-CPU queues
//! would need a queue per CPU, more than the `MAX_CUSTOM_DSQS` a policy
//! may create.)
//!
//! Tasks without a period (an operation's main task, any non-periodic
//! workload) run in the background, below every deadline task, from a
//! FIFO queue with the run's slice.
#![cfg_attr(not(test), no_std)]
#![cfg_attr(not(test), no_main)]

use policy_sdk::{
    ENQ_NEW, ENQ_WAKEUP, SLICE_DFL, SLICE_INF, Scheduler, Shares, Task, dsq, place, rt,
};

/// Deadline tasks, ordered by absolute deadline (`dsq_vtime`).
const DEADLINE_Q: u64 = 0;
/// Background tasks (no period), FIFO.
const BACKGROUND_Q: u64 = 1;

/// Per-task words: the current job's absolute deadline (ns on the
/// services' clock) and the task's run time when its current budget
/// began.
const DEADLINE: usize = 0;
const BUDGET_BASE: usize = 1;
/// Deadline postponements (budget overruns) so far, for tests and logs.
const POSTPONED: usize = 2;

/// A running or queued task's order: its absolute deadline, or after
/// every deadline if it has no period.
fn key(p: &Task) -> u64 {
    if rt::period_ns(p).is_some() {
        p.data[DEADLINE]
    } else {
        u64::MAX
    }
}

/// A budget's allowance for the overhead charged to the task: an eighth
/// of it (see the module docs).
const OVERRUN_SLACK_SHIFT: u32 = 3;

/// CBS replenishment: each full budget the task has used since its
/// budget began postpones its deadline by a period and starts a new
/// budget (a budget is used up at its runtime plus an eighth).
fn account(p: &mut Task) {
    let (Some(period), budget) = (rt::period_ns(p), rt::runtime_ns(p)) else {
        return;
    };
    if budget == 0 {
        return;
    }
    let used_up = budget.saturating_add(budget >> OVERRUN_SLACK_SHIFT);
    while p.runtime_ns.saturating_sub(p.data[BUDGET_BASE]) >= used_up {
        p.data[BUDGET_BASE] += budget;
        p.data[DEADLINE] = p.data[DEADLINE].saturating_add(period);
        p.data[POSTPONED] += 1;
    }
}

/// CBS wake-up rule: keep the current deadline and what is left of the
/// budget only if some budget is left, the deadline is ahead and the
/// leftover fits the task's bandwidth before it; otherwise a new job, due
/// `deadline` from now.
///
/// "Some budget is left" is Linux's rule too: a task that used up its
/// runtime is throttled and replenished (deadline + period) before it
/// runs again, never woken into its spent job. Without it, a periodic
/// task whose job used its whole budget (the slack above lets it go
/// over without a postponement) and whose next release came a few
/// microseconds before the old deadline kept that spent job's deadline
/// -- the earliest in the queue -- ran ahead of tasks truly due first,
/// and was postponed only at the next tick: at U = 0.80 and 100 Hz that
/// made 2-9 misses in most runs, on a coin toss of wake-up latencies.
fn release(p: &mut Task, now: u64, fresh: bool) {
    let (Some(period), Some(deadline)) = (rt::period_ns(p), rt::deadline_ns(p)) else {
        return;
    };
    let budget = rt::runtime_ns(p);
    let left = budget.saturating_sub(p.runtime_ns.saturating_sub(p.data[BUDGET_BASE]));
    let d = p.data[DEADLINE];
    let keep = !fresh
        && left > 0
        && d > now
        && u128::from(left) * u128::from(period) <= u128::from(d - now) * u128::from(budget);
    if !keep {
        p.data[DEADLINE] = now.saturating_add(deadline);
        p.data[BUDGET_BASE] = p.runtime_ns;
    }
}

struct Edf;

impl Scheduler for Edf {
    const NAME: &'static str = "edf";
    const DESCRIPTION: &'static str = "earliest deadline first over the tasks' periods and \
        deadlines (global; partitioned for pinned tasks), CBS budget overruns; others in the \
        background";
    const SHARES: Shares = Shares::None;
    const DEADLINES: bool = true;

    fn init(&mut self) -> i32 {
        if dsq::create(DEADLINE_Q) && dsq::create(BACKGROUND_Q) {
            0
        } else {
            -1
        }
    }

    fn select_cpu(&mut self, p: &mut Task, prev_cpu: u32, _wake_flags: u64) -> u32 {
        rt::select_cpu(p, prev_cpu)
    }

    fn enqueue(&mut self, p: &mut Task, flags: u64) {
        if rt::period_ns(p).is_none() {
            dsq::insert(p, BACKGROUND_Q, SLICE_DFL, 0);
            return;
        }
        if flags & (ENQ_WAKEUP | ENQ_NEW) != 0 {
            release(p, policy_sdk::now_ns(), flags & ENQ_NEW != 0);
        } else {
            account(p);
        }
        let k = p.data[DEADLINE];
        dsq::insert_vtime(p, DEADLINE_Q, SLICE_INF, k, 0);
        rt::kick_for(place::allowed(p), k, key);
    }

    /// The earliest deadline that may run here, else the background.
    fn dispatch(&mut self, cpu: u32) {
        if !dsq::move_to_local(DEADLINE_Q, cpu) {
            dsq::move_to_local(BACKGROUND_Q, cpu);
        }
    }

    /// Budget accounting, and preemption by an earlier deadline the
    /// overrun let past (or any deadline task, for a background one).
    fn tick(&mut self, p: &mut Task) {
        account(p);
        if rt::should_yield(DEADLINE_Q, p, key(p), key) {
            p.slice_ns = 0;
        }
    }

    fn stopping(&mut self, p: &mut Task, _runnable: bool) {
        account(p);
    }
}

policy_sdk::export_policy!(Edf, Edf);

#[cfg(test)]
mod tests;
