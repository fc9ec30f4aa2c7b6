//! sched_ext's defaults -- as `dfl` schedules -- but through the ops
//! table: every callback the SDK exports is called and does the default.
//! Against `dfl` (no callbacks) it prices the table: the same decisions,
//! once made by the core, once by the image. It counts the callbacks it
//! gets and logs the count at `exit` ("callbacks: N"), which `make bench`
//! divides the extra time by. Test-only: it exists to be measured.
#![cfg_attr(not(test), no_std)]
#![cfg_attr(not(test), no_main)]

use policy_sdk::{SLICE_DFL, Scheduler, Shares, Task, dsq};

struct Defaults {
    callbacks: u64,
}

impl Scheduler for Defaults {
    const NAME: &'static str = "defaults";
    const DESCRIPTION: &'static str =
        "sched_ext's defaults through every callback of the ops table (counted; for make bench)";
    const SHARES: Shares = Shares::Equal;
    const BOUNDED_WAIT: bool = true;
    const TEST_ONLY: bool = true;

    fn select_cpu(&mut self, p: &mut Task, prev_cpu: u32, _wake_flags: u64) -> u32 {
        self.callbacks += 1;
        policy_sdk::select_cpu_dfl(p, prev_cpu)
    }
    fn enqueue(&mut self, p: &mut Task, enq_flags: u64) {
        self.callbacks += 1;
        dsq::insert(p, dsq::GLOBAL, SLICE_DFL, enq_flags);
    }
    fn dequeue(&mut self, _p: &mut Task, _deq_flags: u64) {
        self.callbacks += 1;
    }
    fn dispatch(&mut self, _cpu: u32) {
        self.callbacks += 1;
    }
    fn tick(&mut self, _p: &mut Task) {
        self.callbacks += 1;
    }
    fn runnable(&mut self, _p: &mut Task, _enq_flags: u64) {
        self.callbacks += 1;
    }
    fn running(&mut self, _p: &mut Task) {
        self.callbacks += 1;
    }
    fn stopping(&mut self, _p: &mut Task, _runnable: bool) {
        self.callbacks += 1;
    }
    fn quiescent(&mut self, _p: &mut Task, _deq_flags: u64) {
        self.callbacks += 1;
    }
    fn init_task(&mut self, _p: &mut Task) -> i32 {
        self.callbacks += 1;
        0
    }
    fn exit_task(&mut self, _p: &mut Task) {
        self.callbacks += 1;
    }
    fn enable(&mut self, _p: &mut Task) {
        self.callbacks += 1;
    }
    fn exit(&mut self, _code: i64) {
        let mut buf = [0u8; 40];
        policy_sdk::log(2, fmt_count(&mut buf, self.callbacks));
    }
}

/// "callbacks: N" in `buf` (no allocator, no `core::fmt` machinery).
fn fmt_count(buf: &mut [u8; 40], mut n: u64) -> &str {
    const PREFIX: &[u8] = b"callbacks: ";
    buf[..PREFIX.len()].copy_from_slice(PREFIX);
    let mut digits = [0u8; 20];
    let mut k = 0;
    loop {
        digits[k] = b'0' + (n % 10) as u8;
        k += 1;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for i in 0..k {
        buf[PREFIX.len() + i] = digits[k - 1 - i];
    }
    core::str::from_utf8(&buf[..PREFIX.len() + k]).unwrap_or("callbacks: ?")
}

policy_sdk::export_policy!(Defaults, Defaults { callbacks: 0 });

#[cfg(test)]
mod tests {
    use policy_sdk::sim::{Sim, Slot, Topology};

    /// sched_ext's default selection on SMT: four tasks woken from CPU 0
    /// on `1s,1l,4c,2t` take a wholly idle core each (CPUs 0, 2, 4, 6),
    /// where "prev if idle, else the lowest idle CPU" stacked them on two
    /// cores (0, 1, 2, 3).
    #[test]
    fn select_cpu_dfl_spreads_over_idle_cores() {
        let topo = Topology {
            sockets: 1,
            llcs_per_socket: 1,
            cores_per_llc: 4,
            threads_per_core: 2,
        };
        let mut sim = Sim::with_topology(crate::sim_policy(), 0, topo, 1_000_000);
        let slots: Vec<Slot> = (0..4).map(|_| sim.spin(1)).collect();
        sim.run_until(1_000_000);
        let mut cores = 0u32;
        for s in slots {
            let ran = sim.tasks[s as usize].ran_on.0;
            assert_eq!(ran.count_ones(), 1, "task {s} ran on {ran:#x}");
            cores |= 1 << topo.core_of(ran.trailing_zeros());
        }
        assert_eq!(cores, 0b1111, "one task per core");
    }
}
