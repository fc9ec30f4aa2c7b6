//! Stride scheduling (Waldspurger and Weihl, 1995) as a schedlab policy
//! image: each task's pass advances by the time it ran divided by its
//! weight (its tickets), and the task with the smallest pass runs next, so
//! CPU time is shared in proportion to the weights, deterministically.
//! One global queue ordered by pass; a task that wakes starts at the
//! current minimum pass, so sleeping banks no credit.
#![cfg_attr(not(test), no_std)]
#![cfg_attr(not(test), no_main)]

use policy_sdk::{Scheduler, Shares, Task, dsq};

/// The policy's own queue, ordered by pass.
const QUEUE: u64 = 0;
/// `data[0]`: its `runtime_ns` when it started running.
const STARTED: usize = 0;

struct Stride {
    /// The smallest pass of a task that ran last: where wakers start.
    min_pass: u64,
}

impl Scheduler for Stride {
    const NAME: &'static str = "stride";
    const DESCRIPTION: &'static str =
        "stride scheduling: one queue ordered by pass, pass += ran / weight";
    const SHARES: Shares = Shares::Weighted;
    const BOUNDED_WAIT: bool = true;

    fn init(&mut self) -> i32 {
        if dsq::create(QUEUE) { 0 } else { -1 }
    }

    fn enqueue(&mut self, p: &mut Task, flags: u64) {
        if flags & (policy_sdk::ENQ_WAKEUP | policy_sdk::ENQ_NEW) != 0 {
            p.dsq_vtime = p.dsq_vtime.max(self.min_pass);
        }
        dsq::insert_vtime(p, QUEUE, policy_sdk::SLICE_DFL, p.dsq_vtime, flags);
    }

    fn dispatch(&mut self, cpu: u32) {
        dsq::move_to_local(QUEUE, cpu);
    }

    fn running(&mut self, p: &mut Task) {
        p.data[STARTED] = p.runtime_ns;
        self.min_pass = self.min_pass.max(p.dsq_vtime);
    }

    fn stopping(&mut self, p: &mut Task, _runnable: bool) {
        // CPU time, as the core charged it: a wait the host imposed on the
        // vCPU is nobody's turn.
        let ran = p.runtime_ns.saturating_sub(p.data[STARTED]);
        p.dsq_vtime += ran * 1024 / u64::from(p.weight.max(1));
    }
}

policy_sdk::export_policy!(Stride, Stride { min_pass: 0 });

#[cfg(test)]
mod tests {
    use policy_sdk::sim::Sim;

    const MS: u64 = 1_000_000;

    /// Tickets 1:2:4 on one CPU: CPU time 1:2:4, within 5 %.
    #[test]
    fn weighted_shares_one_cpu() {
        let mut sim = Sim::new(crate::sim_policy(), 0, 1, MS);
        let slots = [sim.spin(1), sim.spin(2), sim.spin(4)];
        sim.run_until(2000 * MS);
        sim.assert_shares(&slots, &[1.0 / 7.0, 2.0 / 7.0, 4.0 / 7.0], 2000 * MS, 0.05);
    }
}
