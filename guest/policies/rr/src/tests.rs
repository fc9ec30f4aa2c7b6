//! rr's behaviour in `policy_sdk::sim` (the built-in's tests, on the image).

use policy_sdk::sim::{CpuSet, Pattern, Sim, Slot};

const MS: u64 = 1_000_000;

fn sim(nr_cpus: u32) -> Sim {
    Sim::new(crate::sim_policy(), 0, nr_cpus, MS)
}

/// Round-robin ignores weight: equal shares.
#[test]
fn equal_shares() {
    let mut sim = sim(3);
    let slots: Vec<Slot> = [1, 2, 4, 1, 2, 4].iter().map(|&w| sim.spin(w)).collect();
    sim.run_until(600 * MS);
    sim.assert_shares(&slots, &[1.0 / 6.0; 6], 3 * 600 * MS, 0.05);
    for c in 0..3 {
        assert_eq!(sim.h.assigned(c), 2);
    }
    // Round-robin with a 1 ms slice: nobody waits long.
    for &s in &slots {
        assert!(
            sim.max_wait(s) <= 2 * MS,
            "task {s} waited {} ns",
            sim.max_wait(s)
        );
    }
}

/// Tasks pinned to CPU 1 never run elsewhere, although CPU 0 keeps running
/// dry (its only task naps) and looks for work to steal from CPU 1 each
/// time.
#[test]
fn pinned_tasks_stay_on_their_cpu() {
    let mut sim = sim(2);
    let on1 = CpuSet::single(1);
    // Parented on CPU 0: select_cpu must still put them on CPU 1.
    let pinned = [
        sim.spawn(1, on1, Pattern::Spin, 0),
        sim.spawn(1, on1, Pattern::Spin, 0),
    ];
    let napper = Pattern::RunSleep {
        run_ns: MS / 2,
        sleep_ns: 2 * MS,
    };
    let napper = sim.spawn(1, CpuSet::all(2), napper, 0);
    sim.run_until(200 * MS);
    for s in pinned {
        assert_eq!(sim.tasks[s as usize].ran_on, on1);
    }
    sim.assert_shares(&pinned, &[0.5, 0.5], 200 * MS, 0.05);
    assert_eq!(sim.tasks[napper as usize].ran_on, CpuSet::single(0));
    assert!(sim.tasks[napper as usize].switches >= 75);
    assert!(sim.h.steals.is_empty());
}

/// A CPU whose queue runs dry takes a task from the busiest CPU: when e
/// (a 5 ms job) ends, CPU 1 steals a spinner from CPU 0 and both CPUs
/// run flat out. (While e runs, the three rotate: see the next test.)
#[test]
fn idle_cpu_steals() {
    let mut sim = sim(2);
    let all = CpuSet::all(2);
    let a = sim.spin(1); // CPU 0
    let e = sim.spawn(1, all, Pattern::RunExit { run_ns: 5 * MS }, 0); // CPU 1
    let b = sim.spin(1); // CPU 0 (tie with CPU 1, stays with its parent)
    sim.run_until(105 * MS);
    assert_eq!(sim.runtime(e), 5 * MS);
    // Both CPUs busy all along: 210 ms of CPU, 5 of them e's.
    assert_eq!(sim.runtime(a) + sim.runtime(b), 205 * MS);
    assert!(
        sim.h.steals.iter().any(|s| (s.1, s.2) == (0, 1)),
        "{:?}",
        sim.h.steals
    );
}

/// Every task of a busy mixed workload runs.
#[test]
fn mixed_workload() {
    let mut sim = sim(4);
    for s in sim.mixed_workload() {
        assert!(sim.runtime(s) > 0, "task {s} never ran");
    }
}

/// Three equal tasks on two CPUs: per-CPU queues alone would give 50/25/25;
/// the balancing rotates the lone task so each gets a third.
#[test]
fn three_tasks_on_two_cpus_get_a_third_each() {
    let mut sim = sim(2);
    let slots: Vec<Slot> = (0..3).map(|_| sim.spin(1)).collect();
    sim.run_until(600 * MS);
    sim.assert_shares(&slots, &[1.0 / 3.0; 3], 2 * 600 * MS, 0.05);
    // Nobody waits much longer than a couple of slices.
    for &s in &slots {
        assert!(
            sim.max_wait(s) <= 4 * MS,
            "task {s} waited {} ns",
            sim.max_wait(s)
        );
    }
}

/// Evenly divided tasks stay put: balancing never moves a task that is
/// not ahead of someone waiting elsewhere.
#[test]
fn even_loads_do_not_migrate() {
    let mut sim = sim(2);
    let slots: Vec<Slot> = (0..4).map(|_| sim.spin(1)).collect();
    sim.run_until(300 * MS);
    sim.assert_shares(&slots, &[0.25; 4], 2 * 300 * MS, 0.05);
    for &s in &slots {
        assert!(
            sim.tasks[s as usize].ran_on.0.count_ones() == 1,
            "task {s} ran on {:?}",
            sim.tasks[s as usize].ran_on
        );
    }
}
