use super::*;
use crate::{Replay, TaskMeta, analyze, analyze_replay, entitled_shares, percentile};
use abi::kstate::{PREV_BLOCKED, PREV_EXITED, PREV_IDLE, PREV_PREEMPTED, PREV_YIELDED};

/// Two tasks share CPU 0 over [0, 1000]: 1 runs 0-300, 2 runs 300-400,
/// 1 runs 400-1000.
fn two_on_one() -> Vec<Event> {
    vec![
        spawn(0, 0, 1, 1),
        spawn(0, 0, 2, 1),
        sw(0, 0, 1, 0, PREV_IDLE),
        sw(300, 0, 2, 1, PREV_PREEMPTED),
        sw(400, 0, 1, 2, PREV_PREEMPTED),
    ]
}

#[test]
fn runtime_share_and_fairness_error() {
    let m = analyze(
        &timeline(1, 0, 1000, two_on_one(), vec![task(1, 1), task(2, 1)]),
        &[],
    );
    let (t1, t2) = (&m.tasks[0], &m.tasks[1]);
    assert_eq!((t1.pid, t1.runtime_ns), (1, 900));
    assert_eq!((t2.pid, t2.runtime_ns), (2, 100));
    close(t1.share, 0.9);
    close(t2.share, 0.1);
    close(t1.entitled_share, 0.5);
    close(t2.entitled_share, 0.5);
    close(t1.fairness_error, 0.8);
    close(t2.fairness_error, -0.8);
    close(m.max_fairness_error, 0.8);
    assert_eq!(m.window_ns, 1000);
    assert_eq!(m.events, 5);
    assert_eq!(m.anomalies, 0);
}

#[test]
fn runtime_is_clipped_to_the_window() {
    let m = analyze(
        &timeline(1, 200, 800, two_on_one(), vec![task(1, 1), task(2, 1)]),
        &[],
    );
    // 1: 200-300 and 400-800; 2: 300-400.
    assert_eq!(m.tasks[0].runtime_ns, 500);
    assert_eq!(m.tasks[1].runtime_ns, 100);
    close(m.tasks[0].share, 5.0 / 6.0);
    assert_eq!(m.window_ns, 600);
    // The switch at 0 is before the window: not counted.
    assert_eq!(m.switches, 2);
    assert_eq!(m.cpus[0].switches, 2);
    assert_eq!(m.cpus[0].busy_ns, 600);
}

#[test]
fn first_switch_on_a_cpu_backfills_the_previous_task() {
    // The trace starts mid-run: task 1 was already on CPU 0 when the
    // window opened, and we learn it only from its switch-out at 500.
    let events = vec![sw(500, 0, 2, 1, PREV_PREEMPTED)];
    let m = analyze(
        &timeline(1, 0, 1000, events, vec![task(1, 1), task(2, 1)]),
        &[],
    );
    assert_eq!(m.tasks[0].runtime_ns, 500);
    assert_eq!(m.tasks[1].runtime_ns, 500);
    assert_eq!(m.cpus[0].busy_ns, 1000);
    assert_eq!(m.anomalies, 0);
    // 1 is preempted at 500 and never runs again: waits to the end.
    assert_eq!(m.tasks[0].max_wait_ns, 500);
}

#[test]
fn entitlement_examples_from_the_spec() {
    let eq = |n: u32| (1..=n).map(|p| task(p, 1)).collect::<Vec<_>>();
    for s in entitled_shares(4, &eq(8)) {
        close(s, 1.0 / 8.0);
    }
    // Only 2 tasks on 4 CPUs: each is capped at one CPU.
    for s in entitled_shares(4, &eq(2)) {
        close(s, 0.5);
    }
    let s = entitled_shares(1, &[task(1, 1), task(2, 2), task(3, 4)]);
    close(s[0], 1.0 / 7.0);
    close(s[1], 2.0 / 7.0);
    close(s[2], 4.0 / 7.0);
    // Weight 4 would get 4/3 CPU: capped at 1, the others share the rest.
    let s = entitled_shares(2, &[task(1, 1), task(2, 1), task(3, 4)]);
    close(s[0], 0.25);
    close(s[1], 0.25);
    close(s[2], 0.5);
}

#[test]
fn entitlement_caps_cascade_and_edge_cases() {
    // Weights 1,1,8,8 on 3 CPUs: 8s get 3*8/18 = 1.33 -> capped at 1 each;
    // the 1s share the last CPU (0.5 each). Normalised over 3.
    let s = entitled_shares(3, &[task(1, 1), task(2, 1), task(3, 8), task(4, 8)]);
    close(s[0], 0.5 / 3.0);
    close(s[1], 0.5 / 3.0);
    close(s[2], 1.0 / 3.0);
    close(s[3], 1.0 / 3.0);
    // Affinity wider than the machine, or 0 (= all), still caps at 1 CPU.
    let wide = TaskMeta {
        pid: 1,
        weight: 10,
        affinity_cpus: 64,
    };
    let pinned = TaskMeta {
        pid: 2,
        weight: 1,
        affinity_cpus: 1,
    };
    let s = entitled_shares(4, &[wide, pinned]);
    close(s[0], 0.5);
    close(s[1], 0.5);
    // Weight 0 counts as 1; no CPUs counts as 1; no tasks -> nothing.
    let s = entitled_shares(0, &[task(1, 0), task(2, 1)]);
    close(s[0], 0.5);
    close(s[1], 0.5);
    assert!(entitled_shares(4, &[]).is_empty());
}

#[test]
fn analyze_reports_entitled_shares() {
    let tasks: Vec<TaskMeta> = (1..=8).map(|p| task(p, 1)).collect();
    // Each task runs on CPU (p-1)/2 for half the window.
    let mut events = Vec::new();
    for cpu in 0..4u16 {
        let (a, b) = (u32::from(cpu) * 2 + 1, u32::from(cpu) * 2 + 2);
        events.push(sw(0, cpu, a, 0, PREV_IDLE));
        events.push(sw(500, cpu, b, a, PREV_PREEMPTED));
    }
    let m = analyze(&timeline(4, 0, 1000, events, tasks), &[]);
    for t in &m.tasks {
        close(t.entitled_share, 0.125);
        close(t.share, 0.125);
        close(t.fairness_error, 0.0);
        assert_eq!(t.runtime_ns, 500);
    }
    close(m.max_fairness_error, 0.0);
}

#[test]
fn max_wait_includes_an_unfinished_wait() {
    let events = vec![
        sw(0, 0, 1, 0, PREV_IDLE),
        // 2 is spawned at 100 and never gets the CPU: waits 100..1000.
        spawn(100, 0, 2, 1),
        // 3 waits 200..250, runs, then blocks: blocked time is no wait.
        wake(200, 0, 3, 0),
        sw(250, 0, 3, 1, PREV_YIELDED),
        sw(260, 0, 1, 3, PREV_BLOCKED),
    ];
    let m = analyze(
        &timeline(1, 0, 1000, events, vec![task(1, 1), task(2, 1), task(3, 1)]),
        &[],
    );
    let (t1, t2, t3) = (&m.tasks[0], &m.tasks[1], &m.tasks[2]);
    assert_eq!(t2.max_wait_ns, 900);
    assert_eq!(t2.total_wait_ns, 900);
    assert_eq!(t2.runtime_ns, 0);
    assert_eq!(t3.max_wait_ns, 50);
    assert_eq!(t3.total_wait_ns, 50);
    // 1 yielded at 250 and got back at 260.
    assert_eq!(t1.max_wait_ns, 10);
    assert_eq!(t1.runtime_ns, 250 + 740);
    assert_eq!(m.anomalies, 0);
}

#[test]
fn wait_sums_several_stretches_and_clips_to_the_window() {
    let events = vec![
        sw(0, 0, 1, 0, PREV_IDLE),
        sw(100, 0, 2, 1, PREV_PREEMPTED), // 1 waits 100..300
        sw(300, 0, 1, 2, PREV_PREEMPTED), // 2 waits 300..350
        sw(350, 0, 2, 1, PREV_YIELDED),   // 1 waits 350..380
        sw(380, 0, 1, 2, PREV_EXITED),
        exit(380, 0, 2),
    ];
    let m = analyze(
        &timeline(1, 0, 1000, events.clone(), vec![task(1, 1), task(2, 1)]),
        &[],
    );
    assert_eq!(m.tasks[0].max_wait_ns, 200);
    assert_eq!(m.tasks[0].total_wait_ns, 230);
    assert_eq!(m.tasks[1].total_wait_ns, 50);
    // Window [200, 1000]: 1's first wait counts from 200.
    let m = analyze(
        &timeline(1, 200, 1000, events, vec![task(1, 1), task(2, 1)]),
        &[],
    );
    assert_eq!(m.tasks[0].max_wait_ns, 100);
    assert_eq!(m.tasks[0].total_wait_ns, 130);
    assert_eq!(m.anomalies, 0);
}

#[test]
fn wake_latency_percentiles_are_nearest_rank() {
    // 100 wake-ups of task 1 with latencies 1..=100 µs, in a shuffled
    // order; CPU 0 wakes it, CPU 1 runs it for 10 ns each time.
    let mut events = Vec::new();
    for i in 0..100u64 {
        let k = (i * 37) % 100 + 1; // a permutation of 1..=100
        let base = (i + 1) * 1_000_000;
        events.push(wake(base, 0, 1, 1));
        events.push(sw(base + k * 1000, 1, 1, 0, PREV_IDLE));
        events.push(sw(base + k * 1000 + 10, 1, 0, 1, PREV_BLOCKED));
    }
    let end = 200_000_000;
    let m = analyze(&timeline(2, 0, end, events, vec![task(1, 1)]), &[]);
    let l = m.tasks[0].wake_latency;
    assert_eq!(l.count, 100);
    assert_eq!(l.p50_ns, 50_000);
    assert_eq!(l.p99_ns, 99_000);
    assert_eq!(l.max_ns, 100_000);
    assert_eq!(m.wake_latency, l);
    assert_eq!(m.tasks[0].wakeups, 100);
    assert_eq!(m.tasks[0].switches, 100);
    // Wait = wake latency here.
    assert_eq!(m.tasks[0].max_wait_ns, 100_000);
    assert_eq!(m.tasks[0].total_wait_ns, 5050 * 1000);
    assert_eq!(m.anomalies, 0);
}

#[test]
fn percentile_small_sets() {
    assert_eq!(percentile(&[], 50), 0);
    assert_eq!(percentile(&[7], 99), 7);
    assert_eq!(percentile(&[10, 20, 30], 50), 20);
    assert_eq!(percentile(&[10, 20, 30], 99), 30);
    assert_eq!(percentile(&[10, 20, 30, 40], 50), 20);
    assert_eq!(percentile(&[10, 20, 30, 40], 0), 10);
    assert_eq!(percentile(&[10, 20, 30, 40], 100), 40);
}

#[test]
fn wake_latency_over_all_judged_tasks_only() {
    let events = vec![
        wake(0, 0, 1, 0),
        sw(10, 0, 1, 0, PREV_IDLE),
        wake(20, 0, 2, 0),
        wake(20, 0, 3, 0), // not judged
        sw(50, 0, 2, 1, PREV_BLOCKED),
        sw(1050, 0, 3, 2, PREV_BLOCKED),
    ];
    let m = analyze(
        &timeline(1, 0, 2000, events, vec![task(1, 1), task(2, 1)]),
        &[],
    );
    assert_eq!(m.tasks[0].wake_latency.max_ns, 10);
    assert_eq!(m.tasks[1].wake_latency.max_ns, 30);
    assert_eq!(m.wake_latency.count, 2);
    assert_eq!(m.wake_latency.p50_ns, 10);
    assert_eq!(m.wake_latency.max_ns, 30);
}

#[test]
fn utilisation_per_cpu_with_a_real_tsc_rate() {
    // 2 GHz: 2 ticks per ns. Window 2000 ticks = 1000 ns.
    let events = vec![
        sw(0, 0, 1, 0, PREV_IDLE),
        sw(500, 0, 0, 1, PREV_BLOCKED),
        wake(999, 0, 1, 0),
        sw(1000, 0, 1, 0, PREV_IDLE),
        // CPU 1 runs an unjudged task 3 for 400 ticks.
        sw(100, 1, 3, 0, PREV_IDLE),
        sw(500, 1, 0, 3, PREV_BLOCKED),
    ];
    let mut t = timeline(2, 0, 2000, events, vec![task(1, 1)]);
    t.tsc_khz = 2_000_000;
    let m = analyze(&t, &[]);
    assert_eq!(m.window_ns, 1000);
    assert_eq!(m.cpus[0].busy_ns, 750);
    assert_eq!(m.cpus[0].idle_ns, 250);
    close(m.cpus[0].utilisation, 0.75);
    assert_eq!(m.cpus[1].busy_ns, 200);
    close(m.cpus[1].utilisation, 0.2);
    // Task 3 is not judged: it is not in the shares.
    assert_eq!(m.tasks.len(), 1);
    assert_eq!(m.tasks[0].runtime_ns, 750);
    close(m.tasks[0].share, 1.0);
    assert_eq!(m.tasks[0].wake_latency.max_ns, 0); // 1 tick = 0.5 ns
    assert_eq!(m.anomalies, 0);
}

#[test]
fn a_cpu_without_events_counts_as_idle() {
    let m = analyze(
        &timeline(
            2,
            0,
            1000,
            vec![sw(0, 0, 1, 0, PREV_IDLE)],
            vec![task(1, 1)],
        ),
        &[],
    );
    assert_eq!(m.cpus[1].busy_ns, 0);
    assert_eq!(m.cpus[1].idle_ns, 1000);
    close(m.cpus[0].utilisation, 1.0);
}

#[test]
fn rq_imbalance_from_samples() {
    let samples = [
        sample(10, 0, 1, 2, 10),
        sample(20, 0, 1, 4, 20),
        sample(10, 1, 2, 0, 10),
        sample(20, 1, 2, 1, 20),
    ];
    let m = analyze(
        &timeline(
            2,
            0,
            1000,
            vec![sw(0, 0, 1, 0, PREV_IDLE)],
            vec![task(1, 1)],
        ),
        &samples,
    );
    close(m.cpus[0].mean_rq_len, 3.0);
    assert_eq!(m.cpus[0].max_rq_len, 4);
    close(m.cpus[1].mean_rq_len, 0.5);
    assert_eq!(m.cpus[1].max_rq_len, 1);
    close(m.rq_imbalance, 2.5);
    assert_eq!(m.samples, 4);
}

#[test]
fn rq_imbalance_from_events_without_samples() {
    let events = vec![
        sw(0, 0, 1, 0, PREV_IDLE),
        // 2 queued on CPU 0 from 200 to 600: rq 1 for 400 of 1000.
        wake(200, 0, 2, 0),
        sw(600, 0, 2, 1, PREV_BLOCKED),
        // 3 queued on CPU 0 from 700, moved to CPU 1 at 800, runs at 900.
        wake(700, 0, 3, 0),
        migrate(800, 1, 3, 0, 1),
        sw(900, 1, 3, 0, PREV_IDLE),
    ];
    let m = analyze(&timeline(2, 0, 1000, events, vec![task(1, 1)]), &[]);
    close(m.cpus[0].mean_rq_len, 0.5); // (400 + 100) / 1000
    assert_eq!(m.cpus[0].max_rq_len, 1);
    close(m.cpus[1].mean_rq_len, 0.1); // 800..900
    assert_eq!(m.cpus[1].max_rq_len, 1);
    close(m.rq_imbalance, 0.4);
    assert_eq!(m.samples, 0);
    assert_eq!(m.anomalies, 0);
}

#[test]
fn migrations_that_leave_an_llc_or_a_node_are_counted_by_the_topology() {
    // 2s,2l,1c,2t: CPUs 0-1 LLC 0, 2-3 LLC 1 (node 0); 4-5, 6-7 node 1.
    let topo = abi::topology::Topology {
        sockets: 2,
        llcs_per_socket: 2,
        cores_per_llc: 1,
        threads_per_core: 2,
    };
    let events = vec![
        sw(0, 0, 1, 0, PREV_IDLE),
        sw(0, 1, 2, 0, PREV_IDLE),
        migrate(10, 0, 1, 0, 1),   // SMT sibling: stays in the LLC
        migrate(20, 0, 1, 1, 2),   // another LLC, same node
        migrate(30, 0, 1, 2, 5),   // another node
        migrate(40, 0, 2, 1, 6),   // another node
        migrate(50, 0, 2, 6, 99),  // outside the shape: crosses nothing
        migrate(5000, 0, 2, 0, 7), // after the window
    ];
    let t = timeline(8, 0, 1000, events, vec![task(1, 1), task(2, 1)]);
    let r = Replay::from_events(&t.events, 8);
    let mut scope = t.scope();
    let flat = analyze_replay(&r, &scope, &[]);
    assert_eq!((flat.migrations, flat.migrations_cross_llc), (5, 0));
    scope.topology = Some(topo);
    let m = analyze_replay(&r, &scope, &[]);
    assert_eq!(m.migrations, 5);
    assert_eq!((m.migrations_cross_llc, m.migrations_cross_node), (3, 2));
    let per = |i: usize| {
        let t = &m.tasks[i];
        (
            t.migrations,
            t.migrations_cross_llc,
            t.migrations_cross_node,
        )
    };
    assert_eq!((per(0), per(1)), ((3, 2, 1), (2, 1, 1)));
}

#[test]
fn switches_and_migrations_are_counted_in_the_window() {
    let events = vec![
        sw(0, 0, 1, 0, PREV_IDLE),
        sw(0, 1, 2, 0, PREV_IDLE),
        sw(100, 0, 0, 1, PREV_PREEMPTED),
        migrate(110, 1, 1, 0, 1),
        sw(200, 1, 1, 2, PREV_PREEMPTED),
        migrate(210, 0, 2, 1, 0),
        sw(220, 0, 2, 0, PREV_IDLE),
        // After the window: not counted.
        migrate(2000, 0, 2, 0, 1),
        sw(2000, 0, 0, 2, PREV_BLOCKED),
    ];
    let m = analyze(
        &timeline(2, 0, 1000, events, vec![task(1, 1), task(2, 1)]),
        &[],
    );
    assert_eq!(m.switches, 5);
    assert_eq!(m.cpus[0].switches, 3);
    assert_eq!(m.cpus[1].switches, 2);
    assert_eq!(m.migrations, 2);
    assert_eq!((m.tasks[0].switches, m.tasks[0].migrations), (2, 1));
    assert_eq!((m.tasks[1].switches, m.tasks[1].migrations), (2, 1));
    // 1 waited 100..200 (queued on 0, then moved), 2 waited 200..220.
    assert_eq!(m.tasks[0].max_wait_ns, 100);
    assert_eq!(m.tasks[1].max_wait_ns, 20);
    assert_eq!(m.anomalies, 0);
}

#[test]
fn input_order_does_not_matter() {
    // The same run, CPU by CPU or all interleaved: identical metrics.
    let cpu0 = vec![
        sw(0, 0, 1, 0, PREV_IDLE),
        sw(300, 0, 2, 1, PREV_PREEMPTED),
        sw(700, 0, 1, 2, PREV_PREEMPTED),
    ];
    let cpu1 = vec![
        wake(100, 1, 3, 1),
        sw(150, 1, 3, 0, PREV_IDLE),
        sw(600, 1, 0, 3, PREV_BLOCKED),
    ];
    let tasks = vec![task(1, 1), task(2, 1), task(3, 1)];
    let mut by_cpu = cpu1.clone();
    by_cpu.extend(cpu0.clone());
    let mut merged: Vec<Event> = cpu0.iter().chain(&cpu1).copied().collect();
    merged.sort_by_key(|e| e.tsc);
    let a = analyze(&timeline(2, 0, 1000, by_cpu, tasks.clone()), &[]);
    let b = analyze(&timeline(2, 0, 1000, merged, tasks), &[]);
    assert_eq!(a, b);
    assert_eq!(a.anomalies, 0);
    assert_eq!(a.tasks[0].runtime_ns, 600);
    assert_eq!(a.tasks[2].runtime_ns, 450);
}

#[test]
fn tsc_going_backwards_is_an_anomaly_not_a_panic() {
    let mut events = two_on_one();
    events.reverse(); // CPU 0's own events now go backwards
    let tasks = vec![task(1, 1), task(2, 1)];
    let m = analyze(&timeline(1, 0, 1000, events, tasks.clone()), &[]);
    let sorted = analyze(&timeline(1, 0, 1000, two_on_one(), tasks), &[]);
    assert!(m.anomalies > 0);
    // Same replay once sorted.
    assert_eq!(m.tasks, sorted.tasks);
}

#[test]
fn odd_data_is_counted_not_fatal() {
    let events = vec![
        // Switch-out of 5 with no switch-in (CPU 0 is known running 1).
        sw(0, 0, 1, 0, PREV_IDLE),
        sw(100, 0, 2, 5, PREV_PREEMPTED),
        // Unknown kind, CPU out of range, pid 0 wake-up, unknown reason.
        Event::new(150, 99, 0, 1, 0, 0),
        sw(160, 7, 1, 0, PREV_IDLE),
        wake(170, 0, 0, 0),
        sw(180, 0, 1, 2, 77),
        // Switched in while running, woken while running.
        sw(190, 0, 1, 1, PREV_PREEMPTED),
        wake(195, 0, 1, 0),
        // Migration to a CPU that does not exist.
        migrate(196, 0, 2, 0, 42),
    ];
    let mut t = timeline(
        1,
        0,
        1000,
        events,
        vec![task(1, 1), task(2, 1), task(1, 3), task(0, 1)],
    );
    t.lost_events = 3;
    let m = analyze(&t, &[sample(1, 9, 1, 1, 1)]);
    assert!(m.anomalies >= 10, "anomalies {}", m.anomalies);
    // Duplicate and pid-0 judged entries are dropped.
    assert_eq!(m.tasks.len(), 2);
    assert_eq!(m.lost_events, 3);
    assert!(m.tasks.iter().all(|t| t.share.is_finite()));
}

#[test]
fn degenerate_windows_and_clock_rates() {
    let mut t = timeline(1, 1000, 0, two_on_one(), vec![task(1, 1)]);
    let m = analyze(&t, &[]);
    assert_eq!(m.window_ns, 0);
    assert_eq!(m.tasks[0].runtime_ns, 0);
    assert!(m.anomalies >= 1);
    assert_eq!(m.cpus[0].utilisation, 0.0);
    t.start_tsc = 0;
    t.end_tsc = 1000;
    t.tsc_khz = 0;
    let m = analyze(&t, &[]);
    assert_eq!(m.window_ns, 0);
    assert!(m.anomalies >= 1);
    let m = analyze(&timeline(0, 0, 1000, two_on_one(), vec![task(1, 1)]), &[]);
    assert!(m.cpus.is_empty());
    assert_eq!(m.rq_imbalance, 0.0);
}

#[test]
fn random_garbage_never_panics() {
    // A small LCG: deterministic pseudo-random events of every kind,
    // including out-of-range CPUs, huge TSCs and unknown reasons.
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move || {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        x >> 33
    };
    for round in 0..50 {
        let mut events = Vec::new();
        for _ in 0..200 {
            let tsc = if next() % 50 == 0 {
                u64::MAX - next()
            } else {
                next() % 10_000
            };
            events.push(Event::new(
                tsc,
                (next() % 7) as u16,
                (next() % 5) as u16,
                (next() % 6) as u32,
                (next() % 6) as u32,
                (next() % 6) as u32,
            ));
        }
        let samples: Vec<CpuSample> = (0..20)
            .map(|_| {
                sample(
                    next() % 10_000,
                    (next() % 5) as u32,
                    1,
                    (next() % 4) as u32,
                    next() % 3,
                )
            })
            .collect();
        let mut t = timeline(
            4,
            next() % 5000,
            next() % 12_000,
            events,
            vec![task(1, 1), task(2, 0), task(3, 5)],
        );
        t.tsc_khz = [0, 1, NS, u64::MAX][round % 4];
        let m = analyze(&t, &samples);
        assert!(
            m.tasks
                .iter()
                .all(|t| t.share.is_finite() && t.fairness_error.is_finite())
        );
        let _ = crate::verdict(&m, &crate::Thresholds::default(), &[]);
    }
}

#[test]
fn metrics_serialize_to_json() {
    let m = analyze(
        &timeline(1, 0, 1000, two_on_one(), vec![task(1, 1), task(2, 1)]),
        &[],
    );
    let j = serde_json::to_value(&m).unwrap();
    assert_eq!(j["tasks"][0]["runtime_ns"], 900);
    assert_eq!(j["cpus"][0]["busy_ns"], 1000);
    assert_eq!(j["wake_latency"]["count"], 0);
    assert_eq!(j["anomalies"], 0);
    assert_eq!(j["window_ns"], 1000);
}

/// Events carry their CPU's cumulative steal time (ns) in `steal_ns`: time
/// the host kept the vCPU from running is not CPU time the task got.
#[test]
fn steal_time_is_not_runtime() {
    let stolen = |mut e: Event, steal: u64| {
        e.steal_ns = steal;
        e
    };
    // Task 1 runs 0-400 but the host stole 200 of it; task 2 runs
    // 400-800 with no steal; task 1 again 800-1000 with 100 stolen by
    // the end (last event on the CPU says 300 cumulative).
    let events = vec![
        stolen(sw(0, 0, 1, 0, PREV_IDLE), 0),
        stolen(sw(400, 0, 2, 1, PREV_PREEMPTED), 200),
        stolen(sw(800, 0, 1, 2, PREV_PREEMPTED), 200),
        stolen(wake(900, 0, 3, 0), 300),
    ];
    let m = analyze(
        &timeline(1, 0, 1000, events, vec![task(1, 1), task(2, 1)]),
        &[],
    );
    assert_eq!(m.tasks[0].runtime_ns, 200 + 100);
    assert_eq!(m.tasks[1].runtime_ns, 400);
    // A run clipped by the window loses steal in proportion.
    let events = vec![
        stolen(sw(0, 0, 1, 0, PREV_IDLE), 0),
        stolen(sw(1000, 0, 2, 1, PREV_PREEMPTED), 500),
    ];
    let m = analyze(&timeline(1, 0, 500, events, vec![task(1, 1)]), &[]);
    assert_eq!(m.tasks[0].runtime_ns, 250);
}
