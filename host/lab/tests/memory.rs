//! A long run's memory is bounded: everything after the VM (summary,
//! trace for the pictures, judge, report, `--out`'s files) is run on a
//! made-up outcome whose monitor store is at its caps (MAX_EVENTS events
//! and MAX_SAMPLES samples over one hour on 4 vCPUs: what an hour of a
//! busy run leaves), in a child process whose peak RSS is read with
//! wait4. The guest RAM a real run also maps stays out of this number;
//! measured here at about 20 MB for a default run, so the budget below
//! leaves room for it under 200 MB.
//!
//! No VM is started.

use abi::kstate::{EV_EXIT, EV_SPAWN, EV_SWITCH, EV_WAKEUP, Event, PREV_BLOCKED, PREV_PREEMPTED};
use analysis::CpuSample;
use guest_protocol::{Msg, SpinResult, SpinTask};
use vmm::monitor::{MAX_EVENTS, MAX_SAMPLES, MonitorData, MonitorStats};
use vmm::vm::run::RunOutcome;

const CHILD_ENV: &str = "SCHEDLAB_MEMORY_TEST_CHILD";
const CPUS: u32 = 4;
const TASKS: u32 = 16;
/// 1 tick = 1 ns.
const KHZ: u64 = 1_000_000;
const HOUR_NS: u64 = 3_600_000_000_000;
/// One event every 1.7 ms, all CPUs together.
const EVENT_STEP_NS: u64 = 1_700_000;
/// Peak RSS allowed after the VM, in KiB: 200 MB less the guest's share.
const BUDGET_KB: i64 = 175 << 10;

fn ev(tsc: u64, kind: u16, cpu: u32, pid: u32, arg: u32, arg2: u32) -> Event {
    Event::new(tsc, kind, cpu as u16, pid, arg, arg2)
}

/// MAX_EVENTS events of 16 tasks on 4 CPUs over an hour: spawns, then on
/// each CPU wake-ups and switches among its 4 tasks, then exits.
fn events() -> Vec<Event> {
    let mut v = Vec::with_capacity(MAX_EVENTS);
    let first = |cpu: u32| 2 + cpu * (TASKS / CPUS);
    for cpu in 0..CPUS {
        v.push(ev(1_000, EV_SWITCH, cpu, first(cpu), 0, 0));
    }
    for pid in 2..2 + TASKS {
        v.push(ev(2_000, EV_SPAWN, (pid - 2) / (TASKS / CPUS), pid, 1, 0));
    }
    let body = MAX_EVENTS - v.len() - TASKS as usize;
    // A busy run's density (an hour of the default spin makes about 2
    // million events): the store fills long before the hour is out, and
    // no wait in the made-up schedule is long enough to fail a check.
    let step = EVENT_STEP_NS;
    let mut running: Vec<u32> = (0..CPUS).map(first).collect();
    let mut turn = vec![0u32; CPUS as usize];
    for i in 0..body {
        let cpu = (i % CPUS as usize) as u32;
        let c = cpu as usize;
        let next = first(cpu) + (turn[c] + 1) % (TASKS / CPUS);
        let t = 10_000 + i as u64 * step;
        if (i / CPUS as usize).is_multiple_of(2) {
            v.push(ev(t, EV_WAKEUP, cpu, next, cpu, 0));
        } else {
            let why = if turn[c].is_multiple_of(2) {
                PREV_PREEMPTED
            } else {
                PREV_BLOCKED
            };
            v.push(ev(t, EV_SWITCH, cpu, next, running[c], why));
            running[c] = next;
            turn[c] += 1;
        }
    }
    for pid in 2..2 + TASKS {
        v.push(ev(
            10_000 + body as u64 * step + 20_000,
            EV_EXIT,
            0,
            pid,
            0,
            0,
        ));
    }
    v
}

fn samples() -> Vec<CpuSample> {
    let step = HOUR_NS / MAX_SAMPLES as u64;
    (0..MAX_SAMPLES as u64)
        .map(|i| CpuSample {
            tsc: 10_000 + i * step,
            cpu: (i % u64::from(CPUS)) as u32,
            current_pid: 2,
            rq_len: 3,
            clock_tsc: 10_000 + i * step,
            irq_tsc: 10_000 + i * step,
            max_irq_gap: step,
            idle: false,
        })
        .collect()
}

fn outcome() -> RunOutcome {
    let events = events();
    let samples = samples();
    let mut result = SpinResult {
        elapsed_ns: HOUR_NS,
        ..Default::default()
    };
    for pid in 2..2 + TASKS {
        let t = SpinTask {
            pid,
            units: 1_000_000,
            runtime_ns: HOUR_NS / u64::from(TASKS / CPUS),
            weight: 1,
            switches: 100_000,
            cpu: (pid - 2) / (TASKS / CPUS),
        };
        result.tasks.push(t).unwrap();
    }
    RunOutcome {
        monitor: Some(MonitorData {
            stats: MonitorStats {
                samples: samples.len() as u64,
                events: events.len() as u64,
                dropped_events: 1_000,
                sample_stride: 8,
                kernel_state_seen: true,
                ..Default::default()
            },
            events,
            samples,
            guest_tsc_at_stop: Some(HOUR_NS + 30_000),
            ..Default::default()
        }),
        results: vec![Msg::SpinResult(result)],
        finished: true,
        tsc_khz: KHZ,
        ..Default::default()
    }
}

/// In the child: conclude a run of an hour from the made-up outcome.
fn conclude_an_hour() {
    let out = tempfile::tempdir().unwrap();
    let p = lab::Run::new("spin")
        .unwrap()
        .cpus(CPUS)
        .flag("--tasks", TASKS)
        .duration("1h")
        .flag("--out", out.path().display())
        .prepare()
        .unwrap();
    let report = lab::operations::conclude(p, None, outcome());
    let text = serde_json::to_string_pretty(&report).unwrap();
    assert!(report.kept.is_some(), "{:?}", report.error);
    let v = report.verdict.as_ref().unwrap();
    assert_eq!(
        v.status,
        analysis::Status::Inconclusive,
        "dropped events make it inconclusive: {v:?}"
    );
    assert!(text.contains("\"dropped_events\": 1000"));
}

#[test]
#[expect(
    clippy::zombie_processes,
    reason = "the child is reaped by wait4, which also returns its peak RSS"
)]
fn an_hour_at_the_monitors_caps_is_concluded_within_budget() {
    if std::env::var_os(CHILD_ENV).is_some() {
        conclude_an_hour();
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let child = std::process::Command::new(exe)
        .args([
            "--exact",
            "an_hour_at_the_monitors_caps_is_concluded_within_budget",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, "1")
        .spawn()
        .unwrap();
    let mut status = 0;
    // SAFETY: rusage is plain data that wait4 fills; zeroed is valid.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for our own child by pid; std never waits for it (no
    // Child::wait), so the pid cannot be reused meanwhile.
    let pid = unsafe { libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut usage) };
    assert_eq!(pid, child.id() as libc::pid_t);
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "the child failed: {status:#x}"
    );
    let kb = usage.ru_maxrss;
    eprintln!(
        "peak RSS concluding an hour at the caps ({MAX_EVENTS} events, {MAX_SAMPLES} \
         samples): {} MiB",
        kb >> 10
    );
    assert!(kb < BUDGET_KB, "peak RSS {} MiB", kb >> 10);
}
