//! rr's behaviour in `policy_sdk::sim` (the built-in's tests, on the image).

use policy_sdk::ENQ_NEW;
use policy_sdk::sim::{CpuSet, Harness, Pattern, Sim, Slot, Topology};

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

/// `1s,2l,2c,2t`: CPUs 0-3 share LLC 0, 4-7 LLC 1; SMT pairs {0,1}...
const TWO_LLCS: Topology = Topology {
    sockets: 1,
    llcs_per_socket: 2,
    cores_per_llc: 2,
    threads_per_core: 2,
};

/// Sixteen equal tasks on `1s,2l,2c,2t` settle at two per CPU, eight per
/// LLC, get a sixteenth of the machine each, and do not cross between the
/// LLCs once settled.
#[test]
fn sixteen_tasks_spread_evenly_over_two_llcs() {
    let mut sim = Sim::with_topology(crate::sim_policy(), 0, TWO_LLCS, MS);
    let slots: Vec<Slot> = (0..16).map(|_| sim.spin(1)).collect();
    sim.run_until(20 * MS);
    let settled = sim.migrations();
    for c in 0..8 {
        assert_eq!(sim.h.assigned(c), 2, "CPU {c}");
    }
    sim.run_until(520 * MS);
    sim.assert_shares(&slots, &[1.0 / 16.0; 16], 8 * 520 * MS, 0.05);
    let (_, across) = sim.migrations();
    assert_eq!(across, settled.1, "tasks crossed LLCs after settling");
}

/// A CPU that runs dry steals within its LLC first: CPU 0's LLC-mate CPU
/// 2 has one task waiting, CPU 4 in the other LLC has two, and CPU 0
/// takes CPU 2's (the flat machine's choice was the busiest CPU, 4).
#[test]
fn newly_idle_pull_prefers_the_llc() {
    let mut h = Harness::with_topology(crate::sim_policy(), 0, TWO_LLCS, MS);
    let on2 = h.load_cpu(2, 2, 1);
    h.load_cpu(4, 3, 1);
    assert_eq!(h.pick(0), Some(on2[1]));
    assert_eq!(h.steals.last(), Some(&(on2[1], 2, 0)));
}

/// Periodic balance: CPU 0 runs 15 tasks, CPU 1 runs 17. In one LLC
/// (flat) CPU 0 pulls one at the end of its slice (17 > 110 % of 15); with
/// each CPU its own LLC (`1s,2l,1c,1t`) the same imbalance is within the
/// 117 % tolerance for leaving a cache, and nothing moves.
#[test]
fn cross_llc_pulls_need_a_larger_imbalance() {
    for (topo, pulled) in [
        (Topology::flat(2), true),
        (
            Topology {
                sockets: 1,
                llcs_per_socket: 2,
                cores_per_llc: 1,
                threads_per_core: 1,
            },
            false,
        ),
    ] {
        let mut h = Harness::with_topology(crate::sim_policy(), 0, topo, MS);
        h.load_cpu(0, 15, 1);
        h.load_cpu(1, 17, 1);
        h.tick(0, MS);
        let want = if pulled { (16, 16) } else { (15, 17) };
        assert_eq!((h.assigned(0), h.assigned(1)), want, "{topo:?}");
    }
    // A clear imbalance crosses LLCs: 10 against 2.
    let mut h = Harness::with_topology(crate::sim_policy(), 0, TWO_LLCS, MS);
    for c in 0..4 {
        h.load_cpu(c, 1, 1);
    }
    for c in 4..8 {
        h.load_cpu(c, 3, 1);
    }
    h.tick(0, MS);
    assert_eq!(h.assigned(0), 2, "LLC 0 pulled from the busier LLC");
}

/// Newly-idle pulls look at the SMT sibling before the rest of the LLC:
/// CPU 0's sibling CPU 1 has one task waiting, CPU 2 (same LLC, other
/// core) two, and CPU 0 takes CPU 1's.
#[test]
fn newly_idle_pull_tries_the_smt_sibling_first() {
    let mut h = Harness::with_topology(crate::sim_policy(), 0, TWO_LLCS, MS);
    let on1 = h.load_cpu(1, 2, 1);
    h.load_cpu(2, 3, 1);
    assert_eq!(h.pick(0), Some(on1[1]));
}

/// Among equally loaded idle CPUs a waking task stays in its LLC: its
/// previous CPU 5 (LLC 1) is busy, CPUs 1-3 (LLC 0) and 6-7 (LLC 1) are
/// idle, and it goes to 6, not to the lowest idle CPU, 1.
#[test]
fn a_tie_keeps_the_waking_task_in_its_llc() {
    let mut h = Harness::with_topology(crate::sim_policy(), 0, TWO_LLCS, MS);
    for c in [0, 4, 5] {
        h.load_cpu(c, 1, 1);
    }
    let s = h.add(1, CpuSet::all(8), 5);
    assert_eq!(h.wake(s, ENQ_NEW), 6);
}
