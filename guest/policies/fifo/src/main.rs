//! `fifo`: one global FIFO queue; a task runs until it blocks or yields
//! (its slice never runs out, so the tick never preempts). Like
//! SCHED_FIFO at one priority: a task that was preempted anyway goes back
//! to the head, a yielding one to the tail.
#![cfg_attr(not(test), no_std)]
#![cfg_attr(not(test), no_main)]

use policy_sdk::{
    ENQ_HEAD, ENQ_PREEMPTED, ENQ_YIELD, SLICE_INF, Scheduler, Shares, Task, dsq, place,
};

struct Fifo;

impl Scheduler for Fifo {
    const NAME: &'static str = "fifo";
    const DESCRIPTION: &'static str =
        "one global FIFO queue; a task runs until it blocks or yields";
    const SHARES: Shares = Shares::None;

    /// The queue is global, so the choice only decides which CPU the core
    /// wakes: an idle one if the task may run there.
    fn select_cpu(&mut self, p: &mut Task, prev_cpu: u32, _wake_flags: u64) -> u32 {
        place::select_idle_first(p, prev_cpu)
    }

    fn enqueue(&mut self, p: &mut Task, flags: u64) {
        let head = if flags & ENQ_PREEMPTED != 0 && flags & ENQ_YIELD == 0 {
            ENQ_HEAD
        } else {
            0
        };
        dsq::insert(p, dsq::GLOBAL, SLICE_INF, head);
    }
}

policy_sdk::export_policy!(Fifo, Fifo);

#[cfg(test)]
mod tests;
