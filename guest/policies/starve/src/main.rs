//! `starve` (test-only): global round-robin with a slice that never runs
//! the task whose pid is the policy argument. That task is parked in a
//! queue of the policy's own, which the core never takes from, so it stays
//! runnable and queued forever: exactly what the host's "runnable task
//! waited too long" verdict must catch.
#![cfg_attr(not(test), no_std)]
#![cfg_attr(not(test), no_main)]

use policy_sdk::{SLICE_METERED, Scheduler, Shares, Task, dsq, place};

/// Where the victim waits.
const PARKED: u64 = 0;

struct Starve;

impl Scheduler for Starve {
    const NAME: &'static str = "starve";
    const DESCRIPTION: &'static str =
        "global round-robin that never runs the task whose pid is the policy argument (host tests)";
    // It claims what round-robin promises, so the host catches it
    // breaking the promise.
    const SHARES: Shares = Shares::Equal;
    const BOUNDED_WAIT: bool = true;
    const TEST_ONLY: bool = true;

    fn init(&mut self) -> i32 {
        if dsq::create(PARKED) { 0 } else { -1 }
    }

    fn select_cpu(&mut self, p: &mut Task, prev_cpu: u32, _wake_flags: u64) -> u32 {
        place::select_idle_first(p, prev_cpu)
    }

    fn enqueue(&mut self, p: &mut Task, _flags: u64) {
        let q = if u64::from(p.pid) == policy_sdk::arg() {
            PARKED
        } else {
            dsq::GLOBAL
        };
        dsq::insert(p, q, SLICE_METERED, 0);
    }

    /// Round-robin through the global queue, one slice each.
    fn tick(&mut self, p: &mut Task) {
        if policy_sdk::ran_ns(p) >= policy_sdk::slice_dfl_ns() && dsq::nr_queued(dsq::GLOBAL) != 0 {
            p.slice_ns = 0;
        }
    }
}

policy_sdk::export_policy!(Starve, Starve);

#[cfg(test)]
mod tests;
