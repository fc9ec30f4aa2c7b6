//! starve's behaviour in `policy_sdk::sim` (the built-in's tests, on the
//! image).

use policy_sdk::sim::{Sim, Slot};

const MS: u64 = 1_000_000;

#[test]
fn never_runs_the_victim() {
    let victim_slot: Slot = 2;
    let victim_pid = u64::from(victim_slot) + 1;
    let mut sim = Sim::new(crate::sim_policy(), victim_pid, 2, MS);
    let slots: Vec<Slot> = (0..5).map(|_| sim.spin(1)).collect();
    sim.run_until(200 * MS);
    assert_eq!(sim.runtime(victim_slot), 0);
    assert_eq!(sim.tasks[victim_slot as usize].switches, 0);
    assert_eq!(sim.h.dsq_of(victim_slot), Some(crate::PARKED));
    assert_eq!(sim.max_wait(victim_slot), 200 * MS);
    let others: Vec<Slot> = slots.into_iter().filter(|&s| s != victim_slot).collect();
    // The others share both CPUs round-robin.
    sim.assert_shares(&others, &[0.25; 4], 2 * 200 * MS, 0.05);
}

/// Every task but the victim (pid 7) of a busy mixed workload runs.
#[test]
fn mixed_workload() {
    let mut sim = Sim::new(crate::sim_policy(), 7, 4, MS);
    for s in sim.mixed_workload() {
        if u32::from(s) + 1 == 7 {
            assert_eq!(sim.runtime(s), 0);
        } else {
            assert!(sim.runtime(s) > 0, "task {s} never ran");
        }
    }
}
