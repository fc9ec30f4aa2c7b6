//! CPU work for workloads: a fixed unit of integer work, and "run for
//! this much of my own CPU time", measured by the task itself.
//!
//! A task cannot ask the core for its own runtime while it runs, and wall
//! time would count the time it spent preempted (or its vCPU spent waiting
//! for a host CPU) as work done. So [`busy_for`] reads the clock after
//! every unit and adds up only the short gaps between reads: a gap longer
//! than [`GAP_NS`] is time the task was not running (a switch to another
//! task, a timer interrupt, host steal) and is not counted.

use crate::Api;

/// xorshift rounds in one unit: well under a microsecond, so the clock and
/// `preempt_point` are looked at often.
pub const UNIT_ITERATIONS: u64 = 256;

/// Between two clock reads in [`busy_for`] there is one unit of work and a
/// `preempt_point`: well under this. A longer gap is time away.
pub const GAP_NS: u64 = 10_000;

/// One unit of integer work (xorshift64), opaque to the optimiser.
#[inline(never)]
pub fn unit(mut x: u64) -> u64 {
    for _ in 0..UNIT_ITERATIONS {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x = core::hint::black_box(x);
    }
    x
}

/// Run units of work, offering the CPU back (`preempt_point`) after each,
/// until `ns` of the caller's own running time have passed. Returns the
/// units done.
pub fn busy_for(api: &Api, ns: u64) -> u64 {
    busy_for_timed(api, ns).units
}

/// What [`busy_for_timed`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Busy {
    pub units: u64,
    /// The caller's own running time counted as work (at least the `ns`
    /// asked, by less than one gap), ns.
    pub worked_ns: u64,
    /// Time in gaps of [`GAP_NS`] or more between clock reads: the task
    /// was not running (switched out, an interrupt, the host), ns.
    pub away_ns: u64,
}

/// [`busy_for`], also saying how long the task was away meanwhile.
pub fn busy_for_timed(api: &Api, ns: u64) -> Busy {
    let mut x = 0x9e37_79b9_7f4a_7c15u64 ^ api.now_ns();
    let mut done = 0u64;
    let mut b = Busy::default();
    let mut last = api.now_ns();
    while done < ns {
        x = unit(x);
        b.units += 1;
        api.preempt_point();
        let now = api.now_ns();
        let gap = now.saturating_sub(last);
        if gap < GAP_NS {
            done += gap;
        } else {
            b.away_ns += gap;
        }
        last = now;
    }
    core::hint::black_box(x);
    b.worked_ns = done;
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_unit_is_deterministic_work_that_changes_its_input() {
        assert_eq!(unit(1), unit(1));
        assert_ne!(unit(1), 1);
        assert_ne!(unit(1), unit(2));
    }
}
