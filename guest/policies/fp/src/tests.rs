//! fp's ordering, preemption and partitioning in `policy_sdk::sim`.

use policy_sdk::sim::{CpuSet, Sim, Slot};

const MS: u64 = 1_000_000;

fn sim(nr_cpus: u32) -> Sim {
    Sim::new(crate::sim_policy(), 0, nr_cpus, 4 * MS)
}

fn misses(sim: &Sim, s: Slot) -> u64 {
    sim.jobs_missed(s).1
}

/// 3 tasks at U = 0.70, below Liu & Layland's bound for 3 (0.780):
/// rate-monotonic order meets every deadline.
#[test]
fn below_the_liu_layland_bound_no_misses() {
    let mut sim = sim(1);
    let one = CpuSet::all(1);
    let slots = [
        sim.spawn_periodic(one, 10 * MS, 2 * MS, 10 * MS, 0, 0),
        sim.spawn_periodic(one, 20 * MS, 4 * MS, 20 * MS, 0, 0),
        sim.spawn_periodic(one, 40 * MS, 12 * MS, 40 * MS, 0, 0),
    ];
    sim.run_until(1000 * MS);
    sim.assert_no_misses(&slots, 24);
    // Rate-monotonic: the shortest period always runs at once.
    assert_eq!(sim.max_response(slots[0]), 2 * MS);
}

/// U = 0.97 (4/10 + 8/14): schedulable by EDF (see its tests), not by
/// rate-monotonic order: the longer-period task misses, the shorter
/// never does.
#[test]
fn rate_monotonic_misses_where_edf_would_not() {
    let mut sim = sim(1);
    let one = CpuSet::all(1);
    let short = sim.spawn_periodic(one, 10 * MS, 4 * MS, 10 * MS, 0, 0);
    let long = sim.spawn_periodic(one, 14 * MS, 8 * MS, 14 * MS, 0, 0);
    sim.run_until(700 * MS);
    assert_eq!(misses(&sim, short), 0);
    assert!(misses(&sim, long) > 0);
}

/// Over-full (U = 1.2): only the lowest priorities miss.
#[test]
fn overload_misses_fall_on_the_lowest_priority() {
    let mut sim = sim(1);
    let one = CpuSet::all(1);
    let hi = sim.spawn_periodic(one, 10 * MS, 4 * MS, 10 * MS, 0, 0);
    let mid = sim.spawn_periodic(one, 20 * MS, 8 * MS, 20 * MS, 0, 0);
    let lo = sim.spawn_periodic(one, 40 * MS, 16 * MS, 40 * MS, 0, 0);
    sim.run_until(800 * MS);
    assert_eq!(misses(&sim, hi), 0);
    assert_eq!(misses(&sim, mid), 0);
    assert!(misses(&sim, lo) > 0);
}

/// Explicit priorities are obeyed even against rate-monotonic order: the
/// long-period task given the higher priority makes the short-period one
/// miss, where rate-monotonic order (no priorities) misses nothing.
#[test]
fn explicit_priorities_override_rate_monotonic_order() {
    let run = |prio_short: u32, prio_long: u32| {
        let mut sim = sim(1);
        let one = CpuSet::all(1);
        let short = sim.spawn_periodic(one, 10 * MS, 4 * MS, 10 * MS, prio_short, 0);
        let long = sim.spawn_periodic(one, 40 * MS, 20 * MS, 40 * MS, prio_long, 0);
        sim.run_until(800 * MS);
        (misses(&sim, short), misses(&sim, long))
    };
    assert_eq!(run(0, 0), (0, 0), "rate-monotonic: U = 0.9 fits");
    assert_eq!(run(2, 1), (0, 0), "the same order, given explicitly");
    let (short, long) = run(1, 2);
    assert!(short > 0, "short-period task at low priority missed none");
    assert_eq!(long, 0);
}

/// A waking higher-priority task preempts at once; ties are FIFO.
#[test]
fn preempts_lower_priority_and_keeps_fifo_among_equals() {
    let mut sim = sim(1);
    let one = CpuSet::all(1);
    let low = sim.spawn_periodic(one, 100 * MS, 50 * MS, 100 * MS, 0, 0);
    let high = sim.spawn_periodic(one, 10 * MS, 2 * MS, 10 * MS, 0, 3 * MS);
    sim.run_until(100 * MS);
    assert_eq!(sim.max_response(high), 2 * MS);
    assert!(sim.preemptions > 0);
    assert_eq!(misses(&sim, low), 0);
    // One simulation at a time: the next one waits for this one's lock.
    drop(sim);

    let mut sim = self::sim(1);
    let one = CpuSet::all(1);
    let a = sim.spawn_periodic(one, 20 * MS, 3 * MS, 20 * MS, 5, 0);
    let b = sim.spawn_periodic(one, 20 * MS, 3 * MS, 20 * MS, 5, 0);
    sim.run_until(10 * MS);
    let order: Vec<Slot> = sim.log.iter().map(|&(_, _, s)| s).collect();
    assert_eq!(order, vec![a, b]);
}

/// Pinned tasks on two CPUs: each CPU schedules its own set by rate, and
/// no task leaves its CPU.
#[test]
fn partitioned_tasks_stay_on_their_cpu() {
    let mut sim = sim(2);
    let (c0, c1) = (CpuSet::single(0), CpuSet::single(1));
    let on0 = [
        sim.spawn_periodic(c0, 10 * MS, 3 * MS, 10 * MS, 0, 0),
        sim.spawn_periodic(c0, 20 * MS, 6 * MS, 20 * MS, 0, 0),
    ];
    let on1 = [
        sim.spawn_periodic(c1, 15 * MS, 4 * MS, 15 * MS, 0, 0),
        sim.spawn_periodic(c1, 30 * MS, 9 * MS, 30 * MS, 0, 0),
    ];
    sim.run_until(600 * MS);
    for (set, cpu) in [(on0, c0), (on1, c1)] {
        for s in set {
            assert_eq!(misses(&sim, s), 0);
            assert_eq!(sim.tasks[s as usize].ran_on, cpu);
        }
    }
}

/// Every task of a busy mixed (non-periodic) workload runs.
#[test]
fn mixed_workload() {
    let mut sim = sim(4);
    for s in sim.mixed_workload() {
        assert!(sim.runtime(s) > 0, "task {s} never ran");
    }
}
