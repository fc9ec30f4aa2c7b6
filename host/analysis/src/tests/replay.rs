//! The replay on its own: what one walk through hand-built events records,
//! before any window or clock rate is applied.

use super::*;
use crate::replay::{Replay, RqChange, Run, Segment, Stamp, Wait, WakeLatency};
use crate::{Scope, analyze_replay};
use abi::kstate::{PREV_BLOCKED, PREV_EXITED, PREV_IDLE, PREV_PREEMPTED};

fn seg(cpu: u32, pid: u32, start: Option<u64>, end: Option<u64>) -> Segment {
    Segment {
        cpu,
        pid,
        start,
        end,
    }
}

fn with_steal(mut e: Event, steal_ns: u64) -> Event {
    e.steal_ns = steal_ns;
    e
}

#[test]
fn each_cpu_switch_ends_one_segment_and_starts_the_next() {
    // Two rings drained one after the other: CPU 1's events first.
    let events = vec![
        sw(300, 1, 3, 0, PREV_IDLE),
        sw(900, 1, 0, 3, PREV_BLOCKED),
        sw(100, 0, 2, 5, PREV_PREEMPTED),
        sw(500, 0, 0, 2, PREV_BLOCKED),
    ];
    let r = Replay::from_events(&events, 2);
    assert_eq!(r.span, Some((100, 900)));
    assert_eq!(r.events, 4);
    assert_eq!(
        r.segments,
        [
            // Whoever ran before a CPU's first switch ran since before
            // the trace: idle on CPU 1, task 5 on CPU 0.
            seg(0, 5, None, Some(100)),
            seg(1, 0, None, Some(300)),
            seg(0, 2, Some(100), Some(500)),
            seg(1, 3, Some(300), Some(900)),
            // Still idle after the last event: left open.
            seg(0, 0, Some(500), None),
            seg(1, 0, Some(900), None),
        ]
    );
    assert_eq!(r.anomalies, 0);
}

#[test]
fn runs_carry_the_steal_stamps_of_their_ends() {
    let events = vec![
        with_steal(sw(0, 0, 1, 0, PREV_IDLE), 10),
        with_steal(sw(400, 0, 2, 1, PREV_PREEMPTED), 200),
        // The CPU's latest stamp closes task 2's open run.
        with_steal(wake(700, 0, 1, 0), 350),
    ];
    let r = Replay::from_events(&events, 1);
    assert_eq!(
        r.runs,
        [
            Run {
                pid: 1,
                cpu: 0,
                start: Some(Stamp {
                    tsc: 0,
                    steal_ns: 10
                }),
                end: Some(400),
                end_steal_ns: 200,
            },
            Run {
                pid: 2,
                cpu: 0,
                start: Some(Stamp {
                    tsc: 400,
                    steal_ns: 200
                }),
                end: None,
                end_steal_ns: 350,
            },
        ]
    );
}

#[test]
fn a_task_found_running_has_an_unstamped_run() {
    let events = vec![with_steal(sw(500, 0, 2, 1, PREV_BLOCKED), 80)];
    let r = Replay::from_events(&events, 1);
    assert_eq!(r.runs[0].pid, 1);
    assert_eq!(r.runs[0].start, None, "no switch-in, no steal stamp");
    assert_eq!(r.runs[0].end, Some(500));
}

#[test]
fn waits_run_from_the_earliest_start_to_the_switch_in_or_exit() {
    let events = vec![
        spawn(100, 0, 1, 1),
        wake(150, 0, 1, 0), // already waiting: the same wait
        sw(400, 0, 1, 0, PREV_IDLE),
        spawn(200, 0, 2, 1),
        exit(600, 0, 2), // killed while queued
        spawn(700, 0, 3, 1),
    ];
    let r = Replay::from_events(&events, 1);
    assert_eq!(
        r.waits,
        [
            Wait {
                pid: 1,
                start: 100,
                end: Some(400)
            },
            Wait {
                pid: 2,
                start: 200,
                end: Some(600)
            },
            // Never ran: open, so a measurement counts it to its end.
            Wait {
                pid: 3,
                start: 700,
                end: None
            },
        ]
    );
}

#[test]
fn wake_latencies_are_in_switch_in_order_from_the_first_wake_up() {
    let events = vec![
        wake(100, 0, 7, 0),
        wake(150, 0, 7, 0), // a second wake-up before it ran: still from 100
        wake(1_000, 1, 8, 1),
        sw(1_010, 1, 8, 0, PREV_IDLE),
        sw(1_400, 0, 7, 0, PREV_IDLE),
        wake(2_000, 0, 9, 0), // never ran
    ];
    let r = Replay::from_events(&events, 2);
    let lat = |pid, woken, switched_in| WakeLatency {
        pid,
        woken,
        woken_off_cpu: Some(woken),
        switched_in,
    };
    assert_eq!(r.wake_latencies, [lat(8, 1_000, 1_010), lat(7, 100, 1_400)]);
    assert_eq!(
        r.wakeups.iter().map(|m| m.pid).collect::<Vec<_>>(),
        [7, 7, 8, 9]
    );
}

/// A wake-up of a running task (events were lost) starts the pictures'
/// latency but not the metrics': the metrics wait for a wake-up that finds
/// the task off its CPU. Today's two readings, kept apart.
#[test]
fn a_wake_up_of_a_running_task_starts_only_the_pictures_latency() {
    let events = vec![
        sw(0, 0, 4, 0, PREV_IDLE),
        wake(100, 0, 4, 0), // 4 is running: an anomaly
        sw(200, 0, 0, 4, PREV_BLOCKED),
        wake(300, 0, 4, 0),
        sw(350, 0, 4, 0, PREV_IDLE),
    ];
    let r = Replay::from_events(&events, 1);
    assert_eq!(
        r.wake_latencies,
        [WakeLatency {
            pid: 4,
            woken: 100,
            woken_off_cpu: Some(300),
            switched_in: 350,
        }]
    );
    assert_eq!(r.anomalies, 1);
    let m = analyze_replay(
        &r,
        &Scope {
            tsc_khz: NS,
            start_tsc: 0,
            end_tsc: 400,
            tasks: &[task(4, 1)],
            lost_events: 0,
            quantum_ns: 0,
            topology: None,
        },
        &[],
    );
    assert_eq!(m.tasks[0].wake_latency.max_ns, 50);
}

/// A task switched out exiting while it looked queued (its switch-in was
/// lost) keeps its pending wake-up for the pictures only; an exit event
/// forgets it for both.
#[test]
fn an_exiting_switch_out_forgets_the_metrics_wake_up_only() {
    let events = vec![
        wake(100, 0, 4, 0),
        sw(200, 0, 0, 4, PREV_EXITED), // never seen switched in
        spawn(300, 0, 4, 1),           // the pid reused, no exit event seen
        sw(500, 0, 4, 0, PREV_IDLE),
    ];
    let r = Replay::from_events(&events, 1);
    assert_eq!(
        r.wake_latencies,
        [WakeLatency {
            pid: 4,
            woken: 100,
            woken_off_cpu: None,
            switched_in: 500,
        }]
    );

    let events = vec![
        wake(100, 0, 4, 0),
        exit(150, 0, 4), // killed while queued
        spawn(300, 0, 4, 1),
        sw(500, 0, 4, 0, PREV_IDLE),
    ];
    assert_eq!(Replay::from_events(&events, 1).wake_latencies, []);
}

#[test]
fn queue_changes_follow_spawns_migrations_and_switch_ins() {
    let events = vec![
        spawn(10, 1, 5, 1),              // queued on the CPU that spawned it
        migrate(20, 1, 5, 1, 0),         // moved to CPU 0's queue
        sw(30, 0, 5, 0, PREV_IDLE),      // dequeued
        sw(40, 0, 0, 5, PREV_PREEMPTED), // queued again where it ran
        migrate(50, 0, 9, 0, 7),         // a CPU out of range: counted, not queued
    ];
    let r = Replay::from_events(&events, 2);
    let ch = |tsc, delta| RqChange { tsc, delta };
    assert_eq!(r.rq_changes.len(), 2);
    assert_eq!(r.rq_changes[0], [ch(20, 1), ch(30, -1), ch(40, 1)]);
    assert_eq!(r.rq_changes[1], [ch(10, 1), ch(20, -1)]);
    let moves: Vec<_> = r
        .migrations
        .iter()
        .map(|m| (m.pid, m.tsc, m.from, m.to))
        .collect();
    assert_eq!(moves, [(5, 20, 1, 0), (9, 50, 0, 7)]);
    assert_eq!(r.anomalies, 1);
}

#[test]
fn the_replay_does_not_depend_on_the_input_order_across_cpus() {
    // Ends with two tasks waiting, so the open waits' order is checked too.
    let by_ring = vec![
        spawn(0, 0, 1, 1),
        sw(10, 0, 1, 0, PREV_IDLE),
        sw(500, 0, 2, 1, PREV_PREEMPTED),
        spawn(5, 1, 2, 1),
        sw(20, 1, 2, 0, PREV_IDLE),
        migrate(400, 1, 2, 1, 0),
        sw(400, 1, 0, 2, PREV_PREEMPTED),
        spawn(600, 1, 3, 1),
    ];
    let mut merged = by_ring.clone();
    merged.sort_by_key(|e| e.tsc);
    assert_eq!(
        Replay::from_events(&by_ring, 2),
        Replay::from_events(&merged, 2)
    );
}

#[test]
fn odd_input_is_counted_and_bounded() {
    let events = vec![
        sw(100, 0, 7, 0, PREV_IDLE),
        sw(50, 0, 0, 7, PREV_BLOCKED),  // backwards within CPU 0's ring
        sw(60, 40, 7, 0, PREV_IDLE),    // CPU out of range
        Event::new(70, 99, 0, 1, 0, 0), // unknown kind
    ];
    let r = Replay::from_events(&events, 1);
    // The three above, and in TSC order 7 blocks at 50 and is switched in
    // at 100 without a wake-up.
    assert_eq!(r.anomalies, 4);
    assert!(r.segments.iter().all(|s| s.cpu == 0), "{:?}", r.segments);
    assert_eq!(r.rq_changes.len(), 1);

    let empty = Replay::from_events(&[], 4);
    assert_eq!(empty.span, None);
    assert!(empty.segments.is_empty() && empty.runs.is_empty());
    assert_eq!(empty.rq_changes.len(), 4, "one queue per CPU");
}

/// What the judge relies on: one replay measured over several windows,
/// each measurement on its own (steal spread over the clipped part).
#[test]
fn one_replay_measures_any_window() {
    let events = vec![
        with_steal(sw(0, 0, 1, 0, PREV_IDLE), 0),
        with_steal(sw(300, 0, 2, 1, PREV_PREEMPTED), 100),
        with_steal(sw(400, 0, 1, 2, PREV_PREEMPTED), 100),
        with_steal(wake(900, 0, 3, 0), 100),
    ];
    let tasks = [task(1, 1), task(2, 1)];
    let r = Replay::from_events(&events, 1);
    let measure = |start_tsc, end_tsc| {
        let m = analyze_replay(
            &r,
            &Scope {
                tsc_khz: NS,
                start_tsc,
                end_tsc,
                tasks: &tasks,
                lost_events: 0,
                quantum_ns: 0,
                topology: None,
            },
            &[],
        );
        let t = |i: usize| (m.tasks[i].runtime_ns, m.tasks[i].max_wait_ns);
        (t(0), t(1))
    };
    // 1: 0-300 with 100 stolen, then 400 to the end; 2: 300-400, then
    // waits to the end.
    let whole = ((200 + 600, 100), (100, 600));
    assert_eq!(measure(0, 1000), whole);
    // 100 of the first run's 300 ticks are in the window: a third of the
    // steal (33) goes with them.
    assert_eq!(measure(200, 800), ((67 + 400, 100), (100, 400)));
    assert_eq!(measure(0, 1000), whole, "measuring changes nothing");
}

/// Measuring a hand-built replay: steal spread over a clipped run, an
/// unstamped run counted from the window's start, an open wait to its end.
#[test]
fn a_hand_built_replay_is_measured_over_the_window() {
    let r = Replay {
        cpus: 1,
        events: 3,
        span: Some((0, 1000)),
        segments: vec![seg(0, 1, None, Some(200)), seg(0, 2, Some(200), None)],
        runs: vec![
            Run {
                pid: 1,
                cpu: 0,
                start: None,
                end: Some(200),
                end_steal_ns: 0,
            },
            Run {
                pid: 2,
                cpu: 0,
                start: Some(Stamp {
                    tsc: 200,
                    steal_ns: 0,
                }),
                end: Some(1000),
                end_steal_ns: 400,
            },
        ],
        waits: vec![Wait {
            pid: 1,
            start: 200,
            end: None,
        }],
        rq_changes: vec![vec![RqChange { tsc: 200, delta: 1 }]],
        ..Replay::default()
    };
    let m = analyze_replay(
        &r,
        &Scope {
            tsc_khz: NS,
            start_tsc: 100,
            end_tsc: 600,
            tasks: &[task(1, 1), task(2, 1)],
            lost_events: 0,
            quantum_ns: 0,
            topology: None,
        },
        &[],
    );
    assert_eq!(m.tasks[0].runtime_ns, 100, "from the window's start");
    // 400 of 800 ticks stolen, 400 of them in the window: half of it.
    assert_eq!(m.tasks[1].runtime_ns, 200);
    assert_eq!(m.tasks[0].max_wait_ns, 400, "open wait to the window's end");
    assert_eq!(m.cpus[0].busy_ns, 500);
    assert_eq!(m.cpus[0].switches, 1);
    assert_eq!(m.cpus[0].max_rq_len, 1);
    assert_eq!(m.anomalies, 0);
}
