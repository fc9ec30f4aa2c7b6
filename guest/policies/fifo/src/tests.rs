//! fifo's behaviour in `policy_sdk::sim` (the built-in's tests, on the
//! image).

use policy_sdk::sim::{CpuSet, Harness, Pattern, Sim};
use policy_sdk::{ENQ_NEW, ENQ_PREEMPTED, ENQ_YIELD, dsq};

const MS: u64 = 1_000_000;

/// No tick preemption; tasks run in arrival order, each until it blocks.
#[test]
fn runs_to_block_in_arrival_order() {
    let mut sim = Sim::new(crate::sim_policy(), 0, 1, MS);
    let all = CpuSet::all(1);
    let p = Pattern::RunSleep {
        run_ns: 5 * MS + 300_000,
        sleep_ns: 1000 * MS,
    };
    let a = sim.spawn(1, all, p, 0);
    let b = sim.spawn(1, all, p, MS); // arrives third
    let c = sim.spawn(1, all, p, MS / 2); // arrives second
    sim.run_until(30 * MS);
    assert_eq!(sim.preemptions, 0);
    let order: Vec<_> = sim.log.iter().map(|&(t, _, s)| (t, s)).collect();
    let burst = 5 * MS + 300_000;
    assert_eq!(order, [(0, a), (burst, c), (2 * burst, b)]);
    drop(sim);

    // Spinners never block, so the first one keeps the CPU.
    let mut sim = Sim::new(crate::sim_policy(), 0, 1, MS);
    let spinners = [sim.spin(1), sim.spin(4), sim.spin(1)];
    sim.run_until(50 * MS);
    assert_eq!(sim.runtime(spinners[0]), 50 * MS);
    assert_eq!(sim.runtime(spinners[1]) + sim.runtime(spinners[2]), 0);
    assert_eq!(sim.preemptions, 0);
}

/// A yielding task goes behind the others, one preempted anyway (not by
/// the tick) keeps its place at the front.
#[test]
fn yield_goes_last_preempted_goes_first() {
    let mut h = Harness::new(crate::sim_policy(), 0, 1, MS);
    let cpu = CpuSet::single(0);
    let [a, b, c] = [0, 1, 2].map(|_| h.add(1, cpu, 0));
    for s in [a, b, c] {
        h.wake(s, ENQ_NEW);
    }
    assert_eq!(h.pick(0), Some(a));
    assert!(!h.tick(0, 50 * MS));
    h.stop(0, 50 * MS, true, ENQ_YIELD);
    assert_eq!(h.queue(dsq::GLOBAL), [b, c, a]);
    assert_eq!(h.pick(0), Some(b));
    h.stop(0, MS, true, ENQ_PREEMPTED);
    assert_eq!(h.queue(dsq::GLOBAL), [b, c, a]);
}

/// With several CPUs, a task woken while a CPU is idle goes there.
#[test]
fn uses_idle_cpus() {
    let mut sim = Sim::new(crate::sim_policy(), 0, 2, MS);
    let a = sim.spin(1);
    let b = sim.spin(1);
    let c = sim.spin(1);
    sim.run_until(20 * MS);
    assert_eq!(
        (sim.runtime(a), sim.runtime(b), sim.runtime(c)),
        (20 * MS, 20 * MS, 0)
    );
}

/// A busy mixed workload keeps the CPUs busy (spinners legitimately hold
/// CPUs forever, so not every task runs).
#[test]
fn mixed_workload() {
    let mut sim = Sim::new(crate::sim_policy(), 0, 4, MS);
    sim.mixed_workload();
}
