//! Stride scheduling (Waldspurger and Weihl, 1995) as a schedlab policy
//! image: each task's pass advances by the time it ran divided by its
//! weight (its tickets), and the task with the smallest pass runs next, so
//! CPU time is shared in proportion to the weights, deterministically.
//! One global queue ordered by pass; a task that wakes starts at the
//! current minimum pass, so sleeping banks no credit.
#![no_std]
#![no_main]

use policy_sdk::{Scheduler, Shares, Task, dsq};

/// The policy's own queue, ordered by pass.
const QUEUE: u64 = 0;
/// `data[0]`: when the task started running (ns).
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
        p.data[STARTED] = policy_sdk::now_ns();
        self.min_pass = self.min_pass.max(p.dsq_vtime);
    }

    fn stopping(&mut self, p: &mut Task, _runnable: bool) {
        let ran = policy_sdk::now_ns().saturating_sub(p.data[STARTED]);
        p.dsq_vtime += ran * 1024 / u64::from(p.weight.max(1));
    }
}

policy_sdk::export_policy!(Stride, Stride { min_pass: 0 });
