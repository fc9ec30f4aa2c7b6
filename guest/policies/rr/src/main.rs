//! `rr`: per-CPU round-robin with a fixed slice (the default policy).
//!
//! Slices end on a tick, so a 1 ms slice on a 1 kHz tick runs 1 or 2 ms
//! depending on where in the tick period the task started. Each task
//! carries its overrun into its next slice (deficit round-robin), so over
//! k turns every task gets k slices to within one tick, not k slices
//! plus k random ticks: equal shares hold over short windows too.
//!
//! Each CPU has its own FIFO (its local queue). A waking task stays on its
//! previous CPU unless another allowed CPU has fewer tasks, a running task
//! is preempted once it has run a full slice and someone is waiting behind
//! it, and a CPU that runs dry steals from the busiest CPU. No global
//! queue: the core's global fallback never fires.
//!
//! Load balancing, for equal shares when tasks do not divide evenly over
//! the CPUs (3 tasks on 2 CPUs: per-CPU queues alone give 50/25/25): a
//! task that has run a full slice alone on its CPU while a task waiting on
//! another CPU is more than a slice of CPU time behind it is preempted and
//! queued on that busier CPU, and its own CPU, now idle, steals the task
//! at the head of the busier queue. The tasks rotate; each swap is two
//! migrations, counted in the report.
//!
//! Balancing follows the topology (`policy_sdk::place`'s domains, as
//! Linux's): a CPU that runs dry steals from the busiest CPU among its SMT
//! siblings, then its LLC, then its node, then anywhere (newly-idle
//! pull); at the end of each slice a CPU pulls a queued task from the
//! busiest group of its domains, innermost first, when that group is
//! busier per CPU beyond the level's tolerance (`Level::imbalance_pct`:
//! 110 % inside an LLC, 117 % between LLCs, 125 % between nodes) and the
//! move would not make its own group the busier one (periodic balance);
//! and the rotation above makes way for a task on a CPU in the same LLC
//! first and crosses an LLC only for a task more than two slices behind
//! (the migration cost of a cold cache), so tasks do not bounce between
//! LLCs. Evenly divisible loads (16 tasks on 8 CPUs) settle at two per CPU
//! and stay there.
#![cfg_attr(not(test), no_std)]
#![cfg_attr(not(test), no_main)]

use policy_sdk::{Scheduler, Shares, Task, dsq, place};

/// `data[OVERRUN]`: how far past its slices the task ran (ns, at most one
/// slice), taken off its next slice.
const OVERRUN: usize = 0;
/// `data[MOVE_TO]`: CPU + 1 the task was preempted to make room on (0:
/// none): its next `enqueue` queues it there.
const MOVE_TO: usize = 1;

/// A CPU other than `p`'s where a task waits that is behind `p` in CPU
/// time by more than a slice (two across an LLC; see
/// `place::behind_elsewhere`).
fn behind_elsewhere(p: &Task) -> Option<u32> {
    place::behind_elsewhere(p, |q, margin| {
        q.runtime_ns.saturating_add(margin) < p.runtime_ns
    })
}

/// The queued task on `from` that `cpu` would pull: the last one allowed
/// on `cpu` (Linux detaches from the tail: the task that would wait
/// longest here and whose cache is coldest).
fn pullable(from: u32, cpu: u32) -> Option<&'static mut Task> {
    dsq::iter(dsq::local_on(from))
        .filter(|q| place::may_run(q, cpu))
        .last()
}

/// Periodic balance at the end of a slice on `cpu` (see the module docs):
/// pull a queued task from a busier group, counting tasks.
fn periodic_pull(cpu: u32) {
    let weigh = |c: u32| place::load(c) as u64;
    let movable = |c: u32| pullable(c, cpu).map(|_| 1);
    if let Some((from, _)) = place::pull_from(cpu, weigh, movable)
        && let Some(q) = pullable(from, cpu)
    {
        dsq::remove(q);
        dsq::insert(q, dsq::local_on(cpu), policy_sdk::SLICE_METERED, 0);
    }
}

struct Rr;

impl Scheduler for Rr {
    const NAME: &'static str = "rr";
    const DESCRIPTION: &'static str =
        "per-CPU round-robin with a fixed slice; least-loaded placement, idle CPUs steal (default)";
    const SHARES: Shares = Shares::Equal;
    const BOUNDED_WAIT: bool = true;

    fn select_cpu(&mut self, p: &mut Task, prev_cpu: u32, _wake_flags: u64) -> u32 {
        place::select_balanced(p, prev_cpu)
    }

    /// On the CPU the core put it on (what `select_cpu` chose, or where it
    /// was preempted), at the tail. The slice is metered: `tick` decides.
    fn enqueue(&mut self, p: &mut Task, _flags: u64) {
        let cpu = match core::mem::take(&mut p.data[MOVE_TO]) {
            0 => place::target_cpu(p),
            to => (to - 1) as u32,
        };
        dsq::insert(p, dsq::local_on(cpu), policy_sdk::SLICE_METERED, 0);
    }

    fn dispatch(&mut self, cpu: u32) {
        if dsq::nr_queued(dsq::local_on(cpu)) != 0 {
            return;
        }
        if let Some(from) = place::steal_from(cpu) {
            dsq::move_to_local(dsq::local_on(from), cpu);
        }
    }

    fn stopping(&mut self, p: &mut Task, runnable: bool) {
        if runnable {
            // Preempted or yielded: it goes back to the end of this CPU's
            // queue, owing what it ran past its slice.
            let slice = policy_sdk::slice_dfl_ns();
            let used = policy_sdk::ran_ns(p).saturating_add(p.data[OVERRUN]);
            p.data[OVERRUN] = used.saturating_sub(slice).min(slice);
        } else {
            // Blocked: a new slice when it wakes (no credit banked), on the
            // CPU `select_cpu` picks.
            p.data[OVERRUN] = 0;
            p.data[MOVE_TO] = 0;
        }
    }

    /// Preempt after a full slice (less what the task overran its last
    /// one), but only if someone is waiting here: preempting a lone task
    /// would just run it again. First, the periodic balance may pull a
    /// task here. A lone task that has run its slice makes way, on a
    /// busier CPU, for a task waiting there that is behind it (see the
    /// module docs).
    fn tick(&mut self, p: &mut Task) {
        if policy_sdk::ran_ns(p).saturating_add(p.data[OVERRUN]) < policy_sdk::slice_dfl_ns() {
            return;
        }
        periodic_pull(p.cpu);
        if dsq::nr_queued(dsq::local_on(p.cpu)) != 0 {
            p.slice_ns = 0;
        } else if let Some(to) = behind_elsewhere(p) {
            p.data[MOVE_TO] = u64::from(to) + 1;
            p.slice_ns = 0;
        }
    }
}

policy_sdk::export_policy!(Rr, Rr);

#[cfg(test)]
mod tests;
