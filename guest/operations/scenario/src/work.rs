//! The `run` phase: busy work for a given amount of the task's *own* CPU
//! time, as rt-app's `run` does, with the same unit of work and the same
//! measure as the built-in workloads (`oplib::work::busy_for`), so a
//! scenario and the workload it reproduces burn the CPU alike. The work is
//! done in slices so a long `run` still stops at the scenario's deadline.

use oplib::Api;
use oplib::work::{Busy, busy_for_timed};

/// Own CPU time between two looks at the deadline.
const SLICE_NS: u64 = 1_000_000;

/// Work for `ns` of this task's CPU time, adding what was done to
/// `total` (its own work, and the time it was away meanwhile). Returns
/// false if `deadline` (guest clock, ns) passed first.
pub fn run(api: &Api, ns: u64, deadline: u64, total: &mut Busy) -> bool {
    let mut left = ns;
    while left > 0 {
        if api.now_ns() >= deadline {
            return false;
        }
        let step = left.min(SLICE_NS);
        let b = busy_for_timed(api, step);
        total.units += b.units;
        total.worked_ns += b.worked_ns;
        total.away_ns += b.away_ns;
        left -= step;
    }
    true
}
