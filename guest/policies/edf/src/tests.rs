//! edf's ordering, preemption, budgets and partitioning in
//! `policy_sdk::sim`.

use policy_sdk::sim::{CpuSet, Pattern, Sim, Slot};

const MS: u64 = 1_000_000;

fn sim(nr_cpus: u32) -> Sim {
    Sim::new(crate::sim_policy(), 0, nr_cpus, 4 * MS)
}

/// U = 0.95 on one CPU: 4/10 + 6/20 + 10/40 = 0.95. EDF meets every
/// deadline up to U = 1, where rate-monotonic order would not (RM's bound
/// for 3 tasks is 0.78, and this set misses under RM: see fp's tests).
#[test]
fn meets_every_deadline_at_utilisation_095() {
    let mut sim = sim(1);
    let one = CpuSet::all(1);
    let slots = [
        sim.spawn_periodic(one, 10 * MS, 4 * MS, 10 * MS, 0, 0),
        sim.spawn_periodic(one, 20 * MS, 6 * MS, 20 * MS, 0, 0),
        sim.spawn_periodic(one, 40 * MS, 10 * MS, 40 * MS, 0, 0),
    ];
    sim.run_until(1000 * MS);
    sim.assert_no_misses(&slots, 24);
}

/// 4/10 + 8/14 = U 0.97: EDF meets every deadline; rate-monotonic order
/// does not (fp's tests run the same set).
#[test]
fn meets_what_rate_monotonic_order_misses() {
    let mut sim = sim(1);
    let one = CpuSet::all(1);
    let slots = [
        sim.spawn_periodic(one, 10 * MS, 4 * MS, 10 * MS, 0, 0),
        sim.spawn_periodic(one, 14 * MS, 8 * MS, 14 * MS, 0, 0),
    ];
    sim.run_until(700 * MS);
    sim.assert_no_misses(&slots, 49);
}

/// A waking task with an earlier deadline preempts a running one with a
/// later deadline at once: its response time is its own run time.
#[test]
fn an_earlier_deadline_preempts() {
    let mut sim = sim(1);
    let one = CpuSet::all(1);
    let long = sim.spawn_periodic(one, 100 * MS, 50 * MS, 100 * MS, 0, 0);
    let short = sim.spawn_periodic(one, 10 * MS, 2 * MS, 5 * MS, 0, 3 * MS);
    sim.run_until(200 * MS);
    sim.assert_no_misses(&[long, short], 2);
    assert_eq!(sim.max_response(short), 2 * MS, "short waited behind long");
    assert!(sim.preemptions > 0);
}

/// The order is the absolute deadline, not the period: a task with a long
/// period but a short relative deadline runs first.
#[test]
fn orders_by_absolute_deadline() {
    let mut sim = sim(1);
    let one = CpuSet::all(1);
    let a = sim.spawn_periodic(one, 10 * MS, 3 * MS, 10 * MS, 0, 0);
    let b = sim.spawn_periodic(one, 50 * MS, 3 * MS, 4 * MS, 0, 0);
    sim.run_until(9 * MS);
    // b (due at 4 ms) ran first, then a (due at 10 ms).
    let first: Vec<Slot> = sim.log.iter().map(|&(_, _, s)| s).take(2).collect();
    assert_eq!(first, vec![b, a]);
    assert_eq!(sim.max_response(b), 3 * MS);
    assert_eq!(sim.max_response(a), 6 * MS);
}

/// Tasks without a period run only in the time deadline tasks leave.
#[test]
fn background_tasks_run_below_deadline_tasks() {
    let mut sim = sim(1);
    let one = CpuSet::all(1);
    let bg = sim.spin(1);
    let rt = [
        sim.spawn_periodic(one, 10 * MS, 3 * MS, 10 * MS, 0, 0),
        sim.spawn_periodic(one, 20 * MS, 8 * MS, 20 * MS, 0, 0),
    ];
    sim.run_until(1000 * MS);
    sim.assert_no_misses(&rt, 49);
    // 30 % + 40 % to the deadline tasks, the rest to the background.
    let share = sim.runtime(bg) as f64 / (1000 * MS) as f64;
    assert!((share - 0.3).abs() < 0.02, "background got {share}");
    for &s in &rt {
        assert_eq!(sim.max_response(s) % MS, 0);
        assert!(sim.max_response(s) <= 11 * MS, "{}", sim.max_response(s));
    }
}

/// A task that runs longer than its declared runtime has its deadline
/// postponed by a period per budget used (CBS), so a task that keeps to
/// its own budget still meets every deadline.
#[test]
fn an_overrunning_task_is_postponed_not_the_others() {
    let mut sim = sim(1);
    let one = CpuSet::all(1);
    let good = sim.spawn_periodic(one, 10 * MS, 3 * MS, 10 * MS, 0, 0);
    // Declares 2 ms every 10 ms, runs 8: 110 % of the CPU asked in all.
    let bad = sim.spawn(
        1,
        one,
        Pattern::Periodic {
            period_ns: 10 * MS,
            run_ns: 8 * MS,
            deadline_ns: 10 * MS,
        },
        0,
    );
    sim.h.set_rt(
        bad,
        policy_sdk::sim::RtAttrs {
            period_ns: 10 * MS,
            runtime_ns: 2 * MS,
            deadline_ns: 10 * MS,
            priority: 0,
            reserved: 0,
        },
    );
    sim.run_until(500 * MS);
    sim.assert_no_misses(&[good], 49);
    assert!(sim.jobs_missed(bad).1 > 0, "the overrunning task missed");
    assert!(sim.h.task(bad).data[crate::POSTPONED] > 0);
}

/// Pinned tasks on two CPUs, each CPU's set at U = 0.9: partitioned EDF
/// meets every deadline and keeps each task on its CPU.
#[test]
fn partitioned_tasks_stay_on_their_cpu_and_meet_deadlines() {
    let mut sim = sim(2);
    let (c0, c1) = (CpuSet::single(0), CpuSet::single(1));
    let on0 = [
        sim.spawn_periodic(c0, 10 * MS, 5 * MS, 10 * MS, 0, 0),
        sim.spawn_periodic(c0, 20 * MS, 8 * MS, 20 * MS, 0, 0),
    ];
    let on1 = [
        sim.spawn_periodic(c1, 15 * MS, 6 * MS, 15 * MS, 0, 0),
        sim.spawn_periodic(c1, 30 * MS, 15 * MS, 30 * MS, 0, 0),
    ];
    sim.run_until(600 * MS);
    sim.assert_no_misses(&on0, 29);
    sim.assert_no_misses(&on1, 19);
    for s in on0 {
        assert_eq!(sim.tasks[s as usize].ran_on, c0);
    }
    for s in on1 {
        assert_eq!(sim.tasks[s as usize].ran_on, c1);
    }
}

/// Global EDF on two CPUs: a waking task preempts the CPU running the
/// latest deadline, not the other.
#[test]
fn global_preempts_the_latest_deadline() {
    let mut sim = sim(2);
    let all = CpuSet::all(2);
    let early = sim.spawn_periodic(all, 100 * MS, 60 * MS, 70 * MS, 0, 0);
    let late = sim.spawn_periodic(all, 100 * MS, 60 * MS, 90 * MS, 0, 0);
    let short = sim.spawn_periodic(all, 20 * MS, 2 * MS, 5 * MS, 0, 5 * MS);
    sim.run_until(12 * MS);
    let (_, cpu, _) = *sim
        .log
        .iter()
        .find(|&&(_, _, s)| s == short)
        .expect("short ran");
    assert_eq!(sim.max_response(short), 2 * MS);
    // `late` was the one preempted: `early` kept its CPU throughout.
    assert_eq!(sim.tasks[early as usize].switches, 1);
    assert_eq!(sim.h.running(cpu), Some(late));
}

/// Every task of a busy mixed (non-periodic) workload runs.
#[test]
fn mixed_workload() {
    let mut sim = sim(4);
    for s in sim.mixed_workload() {
        assert!(sim.runtime(s) > 0, "task {s} never ran");
    }
}

/// A job that used its whole budget is over: the task's next wake-up
/// starts a new job due a deadline later, even when it comes a few
/// microseconds before the spent job's deadline (the periodic operation
/// sleeps to its release on a clock of its own, so it does, half the
/// time). Keeping the spent deadline put the task ahead of others truly
/// due first until the next tick.
#[test]
fn a_wake_up_after_a_spent_budget_starts_a_new_job() {
    use crate::{BUDGET_BASE, DEADLINE, release};
    let mut p = policy_sdk::Task {
        rt_period_ns: 20 * MS,
        rt_runtime_ns: 6 * MS,
        rt_deadline_ns: 20 * MS,
        ..Default::default()
    };
    // The previous job: released at 61.731 ms, due at 81.731 ms, and
    // charged 6.1 ms (its 6 ms of work and the lab's overhead).
    let released = 61_731_000;
    release(&mut p, released, true);
    assert_eq!(p.data[DEADLINE], released + 20 * MS);
    p.runtime_ns += 6 * MS + MS / 10;
    let woken = released + 20 * MS - 3_000;
    release(&mut p, woken, false);
    assert_eq!(
        p.data[DEADLINE],
        woken + 20 * MS,
        "kept the spent job's deadline"
    );
    assert_eq!(p.data[BUDGET_BASE], p.runtime_ns);
    // A job with budget left and its deadline ahead keeps both (a task
    // that blocked mid-job, say on a lock).
    let d = p.data[DEADLINE];
    p.runtime_ns += 2 * MS;
    release(&mut p, woken + MS, false);
    assert_eq!(p.data[DEADLINE], d, "a job with budget left was cut short");
}
