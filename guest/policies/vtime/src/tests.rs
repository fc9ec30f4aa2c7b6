//! vtime's behaviour in `policy_sdk::sim` (the built-in's tests, on the
//! image).

use policy_sdk::sim::{CpuSet, Pattern, Sim, Slot};

const MS: u64 = 1_000_000;

fn sim(nr_cpus: u32) -> Sim {
    Sim::new(crate::sim_policy(), 0, nr_cpus, MS)
}

#[test]
fn weighted_shares_one_cpu() {
    let mut sim = sim(1);
    let slots = [sim.spin(1), sim.spin(2), sim.spin(4)];
    sim.run_until(2000 * MS);
    sim.assert_shares(&slots, &[1.0 / 7.0, 2.0 / 7.0, 4.0 / 7.0], 2000 * MS, 0.05);
}

/// One global queue: equal shares, whichever CPU each task happens to use.
#[test]
fn equal_shares_eight_tasks_four_cpus() {
    let mut sim = sim(4);
    let slots: Vec<Slot> = (0..8).map(|_| sim.spin(1)).collect();
    sim.run_until(2000 * MS);
    sim.assert_shares(&slots, &[1.0 / 8.0; 8], 4 * 2000 * MS, 0.05);
}

/// A long sleeper comes back with at most one slice of credit, so it does
/// not monopolise the CPU after waking.
#[test]
fn no_banking_of_sleep() {
    let mut sim = sim(1);
    let spinner = sim.spin(1);
    let sleeper = sim.spawn(
        1,
        CpuSet::all(1),
        Pattern::SleepOnce {
            run_ns: MS,
            sleep_ns: 100 * MS,
        },
        0,
    );
    sim.run_until(102 * MS);
    let (s0, z0) = (sim.runtime(spinner), sim.runtime(sleeper));
    sim.run_until(122 * MS);
    let (ds, dz) = (sim.runtime(spinner) - s0, sim.runtime(sleeper) - z0);
    assert_eq!(ds + dz, 20 * MS);
    // Fair would be 10 ms each; one slice of credit allows 11.
    assert!(
        dz <= 11 * MS + MS / 2,
        "sleeper ran {dz} ns of 20 ms after waking"
    );
}

/// One global queue shares 3 equal tasks on 2 CPUs as 2/3 of a CPU each,
/// which no fixed per-CPU placement can (it gives 1, 1/2, 1/2).
#[test]
fn global_queue_shares_three_tasks_on_two_cpus() {
    let mut sim = sim(2);
    let slots: Vec<Slot> = (0..3).map(|_| sim.spin(1)).collect();
    sim.run_until(600 * MS);
    sim.assert_shares(&slots, &[1.0 / 3.0; 3], 2 * 600 * MS, 0.05);
}

/// Every task of a busy mixed workload runs.
#[test]
fn mixed_workload() {
    let mut sim = sim(4);
    for s in sim.mixed_workload() {
        assert!(sim.runtime(s) > 0, "task {s} never ran");
    }
}
