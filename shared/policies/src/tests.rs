//! Behaviour tests of the built-in policies, on the simulator ([`crate::sim`])
//! or driving the callbacks by hand.

use crate::sim::{Harness, Pattern, Sim};
use crate::{
    AnyPolicy, CpuSet, DsqId, Dsqs, ENQ_NEW, ENQ_PREEMPTED, ENQ_WAKEUP, Eevdf, ID_EEVDF, ID_FIFO,
    ID_RR, ID_STARVE, ID_VTIME, POLICIES, Policy, Slot, by_id, by_name,
};
use std::vec::Vec;

const MS: u64 = 1_000_000;

/// Each task's share of `total` is within `tol` (relative) of `expected`.
fn assert_shares(sim: &Sim, slots: &[Slot], expected: &[f64], total: u64, tol: f64) {
    for (&s, &e) in slots.iter().zip(expected) {
        let share = sim.runtime(s) as f64 / total as f64;
        assert!(
            (share - e).abs() <= tol * e,
            "task {s}: share {share:.4}, expected {e:.4} ±{:.0}% (runtimes {:?})",
            tol * 100.0,
            slots.iter().map(|&s| sim.runtime(s)).collect::<Vec<_>>()
        );
    }
}

fn weighted_one_cpu(policy: u32) {
    let mut sim = Sim::new(policy, 0, 1, MS);
    let slots = [sim.spin(1), sim.spin(2), sim.spin(4)];
    sim.run_until(2000 * MS);
    assert_shares(
        &sim,
        &slots,
        &[1.0 / 7.0, 2.0 / 7.0, 4.0 / 7.0],
        2000 * MS,
        0.05,
    );
}

/// `per_cpu`: the policy keeps per-CPU queues, so each CPU must also end
/// up with 2 of the 8 tasks (vtime's single global queue assigns none).
fn equal_eight_on_four(policy: u32, per_cpu: bool) {
    let mut sim = Sim::new(policy, 0, 4, MS);
    let slots: Vec<Slot> = (0..8).map(|_| sim.spin(1)).collect();
    sim.run_until(2000 * MS);
    assert_shares(&sim, &slots, &[1.0 / 8.0; 8], 4 * 2000 * MS, 0.05);
    for c in (0..4).filter(|_| per_cpu) {
        assert_eq!(
            sim.h.assigned(c),
            2,
            "CPU {c} ends with the wrong number of tasks"
        );
    }
}

#[test]
fn vtime_weighted_shares_one_cpu() {
    weighted_one_cpu(ID_VTIME);
}

#[test]
fn eevdf_weighted_shares_one_cpu() {
    weighted_one_cpu(ID_EEVDF);
}

#[test]
fn vtime_equal_shares_eight_tasks_four_cpus() {
    equal_eight_on_four(ID_VTIME, false);
}

#[test]
fn eevdf_equal_shares_eight_tasks_four_cpus() {
    equal_eight_on_four(ID_EEVDF, true);
}

/// The round-robin policies ignore weight: equal shares.
#[test]
fn rr_equal_shares() {
    let mut sim = Sim::new(ID_RR, 0, 3, MS);
    let slots: Vec<Slot> = [1, 2, 4, 1, 2, 4].iter().map(|&w| sim.spin(w)).collect();
    sim.run_until(600 * MS);
    assert_shares(&sim, &slots, &[1.0 / 6.0; 6], 3 * 600 * MS, 0.05);
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
fn rr_pinned_tasks_stay_on_their_cpu() {
    let mut sim = Sim::new(ID_RR, 0, 2, MS);
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
    assert_shares(&sim, &pinned, &[0.5, 0.5], 200 * MS, 0.05);
    assert_eq!(sim.tasks[napper as usize].ran_on, CpuSet::single(0));
    assert!(sim.tasks[napper as usize].switches >= 75);
    assert!(sim.h.steals.is_empty());
}

/// rr: a CPU whose queue runs dry takes a task from the busiest CPU.
#[test]
fn rr_idle_cpu_steals() {
    let mut sim = Sim::new(ID_RR, 0, 2, MS);
    let all = CpuSet::all(2);
    let a = sim.spin(1); // CPU 0
    let e = sim.spawn(1, all, Pattern::RunExit { run_ns: 5 * MS }, 0); // CPU 1
    let b = sim.spin(1); // CPU 0 (tie with CPU 1, stays with its parent)
    sim.run_until(5 * MS);
    assert_eq!(sim.runtime(a) + sim.runtime(b), 5 * MS);
    assert_eq!(sim.runtime(e), 5 * MS);
    sim.run_until(105 * MS);
    // e exited at 5 ms; CPU 1 stole one spinner and both ran flat out.
    assert_eq!(sim.h.steals.len(), 1, "{:?}", sim.h.steals);
    assert_eq!((sim.h.steals[0].1, sim.h.steals[0].2), (0, 1));
    assert_eq!(sim.runtime(a) + sim.runtime(b), 5 * MS + 200 * MS);
}

/// fifo: no tick preemption; tasks run in arrival order, each until it
/// blocks.
#[test]
fn fifo_runs_to_block_in_arrival_order() {
    let mut sim = Sim::new(ID_FIFO, 0, 1, MS);
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

    // Spinners never block, so the first one keeps the CPU.
    let mut sim = Sim::new(ID_FIFO, 0, 1, MS);
    let spinners = [sim.spin(1), sim.spin(4), sim.spin(1)];
    sim.run_until(50 * MS);
    assert_eq!(sim.runtime(spinners[0]), 50 * MS);
    assert_eq!(sim.runtime(spinners[1]) + sim.runtime(spinners[2]), 0);
    assert_eq!(sim.preemptions, 0);
}

/// fifo: a yielding task goes behind the others, one preempted anyway (not
/// by the tick) keeps its place at the front.
#[test]
fn fifo_yield_goes_last_preempted_goes_first() {
    let mut h = Harness::new(ID_FIFO, 0, 1, MS);
    let cpu = CpuSet::single(0);
    let [a, b, c] = [0, 1, 2].map(|_| h.add(1, cpu, 0));
    for s in [a, b, c] {
        h.wake(s, ENQ_NEW);
    }
    assert_eq!(h.pick(0), Some(a));
    assert!(!h.tick(0, 50 * MS));
    h.stop(0, 50 * MS, true, crate::ENQ_YIELD);
    assert_eq!(h.dsqs.iter(DsqId::Global).collect::<Vec<_>>(), [b, c, a]);
    assert_eq!(h.pick(0), Some(b));
    h.stop(0, MS, true, ENQ_PREEMPTED);
    assert_eq!(h.dsqs.iter(DsqId::Global).collect::<Vec<_>>(), [b, c, a]);
}

/// fifo with several CPUs: a task woken while a CPU is idle goes there.
#[test]
fn fifo_uses_idle_cpus() {
    let mut sim = Sim::new(ID_FIFO, 0, 2, MS);
    let a = sim.spin(1);
    let b = sim.spin(1);
    let c = sim.spin(1);
    sim.run_until(20 * MS);
    assert_eq!(
        (sim.runtime(a), sim.runtime(b), sim.runtime(c)),
        (20 * MS, 20 * MS, 0)
    );
}

#[test]
fn starve_never_runs_the_victim() {
    let victim_slot: Slot = 2;
    let victim_pid = u32::from(victim_slot) + 1;
    let mut sim = Sim::new(ID_STARVE, victim_pid, 2, MS);
    let slots: Vec<Slot> = (0..5).map(|_| sim.spin(1)).collect();
    sim.run_until(200 * MS);
    assert_eq!(sim.runtime(victim_slot), 0);
    assert_eq!(sim.tasks[victim_slot as usize].switches, 0);
    assert_eq!(sim.h.dsqs.queued_in(victim_slot), Some(DsqId::Custom(0)));
    assert_eq!(sim.max_wait(victim_slot), 200 * MS);
    let others: Vec<Slot> = slots.into_iter().filter(|&s| s != victim_slot).collect();
    // The others share both CPUs round-robin.
    assert_shares(&sim, &others, &[0.25; 4], 2 * 200 * MS, 0.05);
}

/// vtime: a long sleeper comes back with at most one slice of credit, so it
/// does not monopolise the CPU after waking.
#[test]
fn vtime_no_banking_of_sleep() {
    let mut sim = Sim::new(ID_VTIME, 0, 1, MS);
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

/// vtime: one global queue shares 3 equal tasks on 2 CPUs as 2/3 of a
/// CPU each, which no fixed per-CPU placement can (it gives 1, 1/2, 1/2).
#[test]
fn vtime_global_queue_shares_three_tasks_on_two_cpus() {
    let mut sim = Sim::new(ID_VTIME, 0, 2, MS);
    let slots: Vec<Slot> = (0..3).map(|_| sim.spin(1)).collect();
    sim.run_until(600 * MS);
    assert_shares(&sim, &slots, &[1.0 / 3.0; 3], 2 * 600 * MS, 0.05);
}

// ---- EEVDF by hand -------------------------------------------------------

fn eevdf(h: &Harness) -> &Eevdf {
    match &*h.policy {
        AnyPolicy::Eevdf(e) => e,
        _ => unreachable!(),
    }
}

/// Slice 1000 ns, so a weight-w task's request is 1_024_000 / w in virtual
/// time. Three tasks, weights 1, 2, 4, all new at time 0 on one CPU.
#[test]
fn eevdf_math_by_hand() {
    let mut h = Harness::new(ID_EEVDF, 0, 1, 1000);
    let cpu = CpuSet::single(0);
    let a = h.add(1, cpu, 0);
    let b = h.add(2, cpu, 0);
    let c = h.add(4, cpu, 0);
    for s in [a, b, c] {
        h.wake(s, ENQ_NEW);
    }
    // New tasks: lag 0, v = V = 0, vd = 0 + 1_024_000 / w.
    let f = |h: &Harness, s| {
        let p = h.policy.fields(s);
        (p.vruntime, p.deadline, p.lag)
    };
    assert_eq!(f(&h, a), (0, 1_024_000, 0));
    assert_eq!(f(&h, b), (0, 512_000, 0));
    assert_eq!(f(&h, c), (0, 256_000, 0));
    assert_eq!(eevdf(&h).avg_vruntime(0), 0);
    // All eligible; earliest deadline: c. Local queue: c, b, a.
    assert_eq!(h.dsqs.iter(DsqId::Local(0)).collect::<Vec<_>>(), [c, b, a]);
    assert_eq!(h.pick(0), Some(c));

    // c runs 1000 ns: v_c = 1000 * 1024 / 4 = 256_000 = its deadline, so
    // the request is used up: vd_c = 256_000 + 256_000 = 512_000.
    // V = (1*0 + 2*0 + 4*256_000) / 7 = 1_024_000 / 7 = 146_285 (floor).
    h.now = 1000;
    assert!(
        h.tick(0, 1000),
        "used-up request with others waiting must preempt"
    );
    assert_eq!(eevdf(&h).avg_vruntime(0), 146_285);
    assert_eq!(f(&h, a), (0, 1_024_000, 146_285));
    assert_eq!(f(&h, b), (0, 512_000, 146_285));
    assert_eq!(f(&h, c), (256_000, 512_000, 146_285 - 256_000));
    assert!(eevdf(&h).eligible(a) && eevdf(&h).eligible(b));
    assert!(!eevdf(&h).eligible(c));
    h.stop(0, 1000, true, ENQ_PREEMPTED);
    // b and c both have vd 512_000 but c is not eligible: b runs.
    assert_eq!(h.pick(0), Some(b));

    // b runs 1000 ns: v_b = 1000 * 1024 / 2 = 512_000 = its deadline ->
    // vd_b = 1_024_000. V = (0 + 2*512_000 + 4*256_000) / 7 = 2_048_000 / 7
    // = 292_571. lag: a 292_571, b -219_429, c 36_571. Eligible: a (0 <=
    // V), c (256_000 <= V); not b. Pick: c (vd 512_000 < a's 1_024_000).
    h.now = 2000;
    assert!(h.tick(0, 1000));
    assert_eq!(eevdf(&h).avg_vruntime(0), 292_571);
    assert_eq!(f(&h, a), (0, 1_024_000, 292_571));
    assert_eq!(f(&h, b), (512_000, 1_024_000, -219_429));
    assert_eq!(f(&h, c), (256_000, 512_000, 36_571));
    assert!(eevdf(&h).eligible(a) && eevdf(&h).eligible(c) && !eevdf(&h).eligible(b));
    assert_eq!(h.dsqs.first(DsqId::Local(0)), Some(c));

    // Now b blocks instead of being preempted: it keeps lag -219_429.
    h.stop(0, 1000, false, 0);
    assert_eq!(f(&h, b).2, -219_429);
    // Without b: V = 4 * 256_000 / 5 = 204_800, which c (at 256_000) is
    // now past: only a is eligible, so a runs despite its later deadline.
    assert_eq!(eevdf(&h).avg_vruntime(0), 204_800);
    assert!(eevdf(&h).eligible(a) && !eevdf(&h).eligible(c));
    assert_eq!(h.pick(0), Some(a));
    // a runs 1000 ns: v_a = 1_024_000 (= vd, new vd 2_048_000);
    // V = (1_024_000 + 4 * 256_000) / 5 = 409_600.
    h.now = 3000;
    assert!(h.tick(0, 1000));
    assert_eq!(eevdf(&h).avg_vruntime(0), 409_600);
    assert_eq!(f(&h, a), (1_024_000, 2_048_000, 409_600 - 1_024_000));

    // b wakes: placed at V - lag * (W + w) / W = 409_600 + 219_429 * 7 / 5
    // = 409_600 + 307_200 (truncated) = 716_800, and then its lag against
    // the new V = (1_024_000 + 4 * 256_000 + 2 * 716_800) / 7 = 497_371 is
    // -219_429 again.
    h.wake(b, ENQ_WAKEUP);
    assert_eq!(eevdf(&h).avg_vruntime(0), 497_371);
    assert_eq!(f(&h, b), (716_800, 716_800 + 512_000, -219_429));
}

/// A task that blocked while owed CPU time (positive lag) is placed back
/// eligible, and its earlier deadline preempts the running task at the
/// next tick. A new task (lag 0) in the same spot does not.
#[test]
fn eevdf_woken_positive_lag_preempts() {
    for fresh in [false, true] {
        let mut h = Harness::new(ID_EEVDF, 0, 1, 1000);
        let cpu = CpuSet::single(0);
        let x = h.add(1, cpu, 0);
        let y = h.add(1, cpu, 0);
        let z = h.add(1, cpu, 0);
        h.wake(x, ENQ_NEW);
        h.wake(y, ENQ_NEW);
        // x runs its whole request (1_024_000 virtual), y is then picked.
        assert_eq!(h.pick(0), Some(x));
        h.now = 1000;
        assert!(h.tick(0, 1000));
        h.stop(0, 1000, true, ENQ_PREEMPTED);
        assert_eq!(h.pick(0), Some(y));
        // y blocks after 50 ns: v_y = 51_200, V = (1_024_000 + 51_200) / 2
        // = 537_600, lag_y = 486_400 (owed).
        h.now = 1050;
        h.stop(0, 50, false, 0);
        assert_eq!(h.policy.fields(y).lag, 486_400);
        assert_eq!(h.pick(0), Some(x));
        // x runs 900 ns of its second request (vd_x = 2_048_000): v_x =
        // 1_945_600.
        h.now = 1950;
        assert!(!h.tick(0, 900), "nobody waiting");
        assert_eq!(h.policy.fields(x).vruntime, 1_945_600);
        let woken = if fresh { z } else { y };
        if fresh {
            h.wake(z, ENQ_NEW);
            // Lag 0: v_z = V = 1_945_600, vd_z = 2_969_600 > vd_x.
            assert_eq!(h.policy.fields(z).lag, 0);
        } else {
            h.wake(y, ENQ_WAKEUP);
            // v_y = 1_945_600 - 486_400 * 2 / 1 = 972_800, vd_y = 1_996_800,
            // lag back to 486_400 once counted in V.
            assert_eq!(
                h.policy.fields(y),
                crate::PolicyFields {
                    vruntime: 972_800,
                    deadline: 1_996_800,
                    lag: 486_400
                }
            );
            assert!(eevdf(&h).eligible(y));
        }
        assert_eq!(h.policy.fields(x).deadline, 2_048_000);
        h.now = 2000;
        let preempt = h.tick(0, 950);
        assert_eq!(preempt, !fresh, "woken task (fresh = {fresh}) preemption");
        if preempt {
            h.stop(0, 950, true, ENQ_PREEMPTED);
            assert_eq!(h.pick(0), Some(woken));
        }
    }
}

/// Steal and migrate keep the EEVDF sums straight (checked by the
/// harness at every step) across a busy mixed workload on every policy.
#[test]
fn mixed_workload_all_policies() {
    for p in POLICIES {
        let mut sim = Sim::new(p.id, 7, 4, MS);
        let all = CpuSet::all(4);
        let mut demand = Vec::new();
        for i in 0..24u64 {
            let aff = match i % 5 {
                0 => CpuSet::single((i % 4) as u32),
                1 => CpuSet(0b0110),
                _ => all,
            };
            let pattern = match i % 4 {
                0 => Pattern::Spin,
                1 => Pattern::RunSleep {
                    run_ns: 300_000 + i * 37_000,
                    sleep_ns: 2 * MS + i * 91_000,
                },
                2 => Pattern::RunExit {
                    run_ns: 20 * MS + i * MS,
                },
                _ => Pattern::SleepOnce {
                    run_ns: MS,
                    sleep_ns: 30 * MS,
                },
            };
            demand.push(sim.spawn(1 + (i % 3) as u32, aff, pattern, i * 250_000));
        }
        sim.run_until(400 * MS);
        let total: u64 = demand.iter().map(|&s| sim.runtime(s)).sum();
        // Work-conserving enough: nearly 4 CPUs' worth was used.
        assert!(
            total > 4 * 400 * MS * 9 / 10,
            "{}: only {total} ns run",
            p.name
        );
        if p.id == ID_FIFO {
            continue; // spinners legitimately hold CPUs forever
        }
        for &s in &demand {
            if p.id == ID_STARVE && u32::from(s) + 1 == 7 {
                assert_eq!(sim.runtime(s), 0);
                continue;
            }
            assert!(sim.runtime(s) > 0, "{}: task {s} never ran", p.name);
        }
    }
}

#[test]
fn registry() {
    assert_eq!(by_name("rr").map(|p| p.id), Some(ID_RR));
    assert_eq!(by_name("fifo").map(|p| p.id), Some(ID_FIFO));
    assert_eq!(by_name("vtime").map(|p| p.id), Some(ID_VTIME));
    assert_eq!(by_name("eevdf").map(|p| p.id), Some(ID_EEVDF));
    assert_eq!(
        by_name("starve").map(|p| (p.id, p.test_only)),
        Some((ID_STARVE, true))
    );
    assert_eq!(by_name("cfs"), None);
    assert_eq!(by_id(3).map(|p| p.name), Some("eevdf"));
    assert_eq!(by_id(4), None);
    assert_eq!(crate::DEFAULT_POLICY, 0);
    for p in POLICIES {
        let a = AnyPolicy::new(p.id, 0).expect("listed policy constructs");
        assert_eq!(a.id(), p.id);
        assert_eq!(
            POLICIES
                .iter()
                .filter(|q| q.id == p.id || q.name == p.name)
                .count(),
            1
        );
        assert_eq!(p.test_only, p.id == ID_STARVE);
    }
    assert!(AnyPolicy::new(5, 0).is_none());
}

#[test]
fn sizes() {
    let (d, p) = (size_of::<Dsqs>(), size_of::<AnyPolicy>());
    std::println!("size_of Dsqs = {d}, AnyPolicy = {p}");
    assert!(d + p < 64 * 1024);
}

/// Statics of the state build in const context.
#[test]
fn const_construction() {
    static DSQS: Dsqs = Dsqs::new();
    static POLICY: Option<AnyPolicy> = AnyPolicy::new(ID_RR, 0);
    assert!(DSQS.is_empty(DsqId::Global));
    assert!(POLICY.is_some());
}
