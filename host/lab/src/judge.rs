//! After a run: turn what the monitor collected into metrics and a verdict
//! with the `analysis` crate. The window and the judged tasks come from the
//! operation (e.g. spin's workers); everything else here is about not
//! over-trusting partial data: a run the monitor could not watch properly
//! is inconclusive, and says why, rather than passing.

use crate::settings::judge::JudgeSettings;
use abi::kstate::{EV_EXIT, EV_SPAWN, Event};
use analysis::{Check, CpuSample, Metrics, Replay, Scope, Status, TaskMeta, Verdict};
use vmm::monitor::MonitorData;
use vmm::monitor::live::Alarm;
use vmm::signals::Signal;
use vmm::vm::run::EarlyEnd;

pub struct JudgeInput<'a> {
    pub cpus: u32,
    /// The machine's shape: which migrations crossed an LLC or a node.
    pub topology: Option<abi::topology::Topology>,
    /// The longest slice a policy keeping to `--slice` gives on this tick
    /// (slice + one tick period), in ns; 0 if unknown. Sets how much
    /// unfairness the run's own granularity can show (see analysis).
    pub quantum_ns: u64,
    pub tsc_khz: u64,
    pub settings: &'a JudgeSettings,
    /// The tasks whose shares and waits are judged.
    pub judged: &'a [TaskMeta],
    /// The operation's own checks (see ops::Summary::checks).
    pub op_checks: &'a [Check],
    /// The guest finished on its own (else the run was stopped).
    pub finished: bool,
    pub ended_early: Option<&'a EarlyEnd>,
    /// A signal stopped the run (see [`interrupted_verdict`]).
    pub interrupted: Option<Signal>,
}

pub struct Judgement {
    pub metrics: Metrics,
    pub verdict: Verdict,
    /// Length of the stretch shares were judged over (see
    /// fairness_window), when it differs from the whole window.
    pub fairness_window_ns: Option<u64>,
    /// The longest a CPU went without a timer interrupt or wake-up reaching
    /// it, as the host's samples saw it, in ns (see [`clock_lag_ns`]).
    pub clock_lag_ns: u64,
    /// Samples of a CPU idle while tasks were queued for it (see
    /// [`idle_with_work`]).
    pub idle_with_work: u64,
}

/// Samples in which a CPU was idle while its record said tasks were
/// queued for it: a wake-up the CPU did not act on (the core's or the
/// policy's bug) or a sample torn between the two fields' updates. A
/// diagnostic, not a check: shown in `metrics.idle_with_work_samples`.
pub fn idle_with_work(samples: &[CpuSample]) -> u64 {
    samples.iter().filter(|s| s.idle && s.rq_len > 0).count() as u64
}

/// The longest a CPU went without hearing its timer during the window, in
/// ns (see [`analysis::ClockLag`], which the live monitor uses too).
/// Beyond a tick period it is time the host took, and wall-time checks
/// may be excused by it as by the host's run-queue waits. `samples` are in
/// time order.
pub fn clock_lag_ns(samples: &[CpuSample], tsc_khz: u64) -> u64 {
    analysis::ticks_to_ns(analysis::ClockLag::of(samples).ticks(), tsc_khz)
}

/// `[start, end]` in guest TSC: from the first spawn of a judged task (the
/// workload starting) to the run's end -- the last event, or when the
/// monitor stopped if the run was cut short (a task still waiting then
/// has waited until then).
pub fn window(
    events: &[Event],
    judged: &[TaskMeta],
    finished: bool,
    stop: Option<u64>,
) -> (u64, u64) {
    if events.is_empty() {
        // Nothing happened that could be measured: an empty window (which
        // the verdict calls inconclusive), not one from 0 to the stop.
        return (0, 0);
    }
    let first_spawn = events
        .iter()
        .filter(|e| e.kind == EV_SPAWN && judged.iter().any(|t| t.pid == e.pid))
        .map(|e| e.tsc)
        .min();
    let start = first_spawn
        .or_else(|| events.iter().map(|e| e.tsc).min())
        .unwrap_or(0);
    let last = events.iter().map(|e| e.tsc).max().unwrap_or(start);
    let end = match (finished, stop) {
        (false, Some(s)) => last.max(s),
        _ => last,
    };
    (start, end.max(start))
}

/// Where shares are compared with entitlements: while every judged task
/// exists, from the last one's spawn to the first one's exit (or `end`).
/// Entitlement assumes they all compete; before the last spawn the early
/// ones have the CPUs to themselves and after the first exit the others
/// inherit its share, so judging over the whole run would blame the
/// policy for the workload's ramp (e.g. a task spawned 10 ms late on a
/// CPU that must first be woken looks 5 % short in a 200 ms run). None if
/// a judged task's spawn is missing or no such stretch exists.
pub fn fairness_window(events: &[Event], judged: &[TaskMeta], end: u64) -> Option<(u64, u64)> {
    let mut last_spawn = 0u64;
    for t in judged {
        let spawn = events
            .iter()
            .filter(|e| e.kind == EV_SPAWN && e.pid == t.pid)
            .map(|e| e.tsc)
            .min()?;
        last_spawn = last_spawn.max(spawn);
    }
    let first_exit = events
        .iter()
        .filter(|e| e.kind == EV_EXIT && judged.iter().any(|t| t.pid == e.pid))
        .map(|e| e.tsc)
        .min()
        .unwrap_or(end)
        .min(end);
    (!judged.is_empty() && first_exit > last_spawn).then_some((last_spawn, first_exit))
}

/// Take shares, entitlements and fairness errors from the steady-state
/// analysis; everything else (runtimes, waits, latencies, CPUs) stays over
/// the whole window.
fn use_steady_shares(m: &mut Metrics, steady: &Metrics) {
    for t in &mut m.tasks {
        if let Some(s) = steady.tasks.iter().find(|s| s.pid == t.pid) {
            t.share = s.share;
            t.entitled_share = s.entitled_share;
            t.fairness_error = s.fairness_error;
        }
    }
    m.max_fairness_error = steady.max_fairness_error;
}

/// Samples inside the window, with `rq_len` turned into nr_running (tasks
/// on the CPU: the queued ones plus the running one), which is what a
/// person compares with "8 tasks on 4 CPUs = 2 each". In place: the
/// store can be tens of megabytes at the end of a long run, and a copy
/// would double it.
pub fn nr_running_samples(mut samples: Vec<CpuSample>, start: u64, end: u64) -> Vec<CpuSample> {
    samples.retain(|s| (start..=end).contains(&s.tsc));
    for s in &mut samples {
        s.rq_len = s.rq_len.saturating_add(u32::from(s.current_pid != 0));
    }
    samples
}

/// Measure and judge a run. `replay` is `m.events` replayed for
/// `inp.cpus` CPUs (the caller's, so the pictures can be drawn from the
/// same one); it is measured over the window and, for shares, over the
/// fairness window.
pub fn judge(m: MonitorData, replay: &Replay, inp: &JudgeInput<'_>) -> Judgement {
    debug_assert_eq!(
        (replay.events, replay.cpus),
        (m.events.len() as u64, inp.cpus)
    );
    let stop = m.guest_tsc_at_stop;
    let (start, end) = window(&m.events, inp.judged, inp.finished, stop);
    let samples = nr_running_samples(m.samples, start, end);
    let clock_lag_ns = clock_lag_ns(&samples, inp.tsc_khz);
    let idle_with_work = idle_with_work(&samples);
    // A policy that promises equal shares is held to equal shares,
    // whatever weights the tasks carry.
    let equal: Vec<TaskMeta>;
    let tasks = if inp.settings.shares == Some(crate::settings::policy::Shares::Equal) {
        equal = inp
            .judged
            .iter()
            .map(|t| TaskMeta { weight: 1, ..*t })
            .collect();
        &equal[..]
    } else {
        inp.judged
    };
    let mut scope = Scope {
        tsc_khz: inp.tsc_khz,
        start_tsc: start,
        end_tsc: end,
        tasks,
        lost_events: m.stats.lost_events,
        quantum_ns: inp.quantum_ns,
        topology: inp.topology,
    };
    let mut metrics = analysis::analyze_replay(replay, &scope, &samples);
    let fairness = fairness_window(&m.events, inp.judged, end);
    let mut fairness_window_ns = None;
    if let Some((s, e)) = fairness.filter(|&(s, e)| (s, e) != (start, end)) {
        scope.start_tsc = s;
        scope.end_tsc = e;
        let steady = analysis::analyze_replay(replay, &scope, &[]);
        use_steady_shares(&mut metrics, &steady);
        fairness_window_ns = Some(steady.window_ns);
    }
    let stalls: Vec<analysis::Stall> = inp
        .ended_early
        .and_then(|e| e.stall.clone())
        .into_iter()
        .collect();
    let mut verdict = if inp.judged.is_empty() && !inp.op_checks.is_empty() {
        checks_verdict(&metrics, inp.op_checks, &stalls)
    } else {
        let mut v = analysis::verdict(&metrics, &inp.settings.thresholds(), &stalls);
        // A starvation alarm is a waiting check; where waits are not
        // promised the monitor raised none.
        add_op_checks(&mut v, inp.op_checks);
        for why in doubts(&m.stats, inp, metrics.window_ns) {
            v.reasons.push(why);
            if v.status == Status::Pass {
                v.status = Status::Inconclusive;
            }
        }
        v
    };
    if let Some(e) = inp.ended_early {
        add_live_check(&mut verdict, e);
    }
    if let Some(sig) = inp.interrupted {
        interrupted_verdict(&mut verdict, sig);
    }
    Judgement {
        metrics,
        verdict,
        fairness_window_ns,
        clock_lag_ns,
        idle_with_work,
    }
}

/// An operation that judges itself (its result is a list of checks): the
/// verdict is those checks plus any stall, with no fairness thresholds.
fn checks_verdict(metrics: &Metrics, checks: &[Check], stalls: &[analysis::Stall]) -> Verdict {
    // Only for the stall check and its reasons, which come first.
    let s = analysis::verdict(metrics, &analysis::Thresholds::default(), stalls);
    let mut reasons: Vec<String> = s.reasons.into_iter().take(stalls.len()).collect();
    let mut all: Vec<Check> = checks.to_vec();
    all.extend(s.checks);
    for c in all.iter().filter(|c| !c.passed && c.name != "stalls") {
        reasons.push(format!("{}: {}", c.name, c.detail));
    }
    let status = if all.iter().all(|c| c.passed) {
        Status::Pass
    } else {
        Status::Fail
    };
    Verdict {
        status,
        checks: all,
        reasons,
    }
}

/// An operation's own checks next to the thresholds' (e.g. a scenario's
/// judged instances plus its progress checks): a failed one fails the run.
fn add_op_checks(v: &mut Verdict, checks: &[Check]) {
    for c in checks {
        if !c.passed {
            v.reasons.push(format!("{}: {}", c.name, c.detail));
            v.status = Status::Fail;
        }
        v.checks.push(c.clone());
    }
}

/// A starved task stopped the run: a failed check of its own, named first,
/// since the metrics only see the wait up to the stop. (A stall is already
/// one of `analysis::verdict`'s checks.)
fn add_live_check(v: &mut Verdict, e: &EarlyEnd) {
    if let Alarm::PolicyHung {
        cpu_ns, budget_ns, ..
    } = e.alarm
    {
        v.checks.push(Check {
            name: "policy_budget".into(),
            value: cpu_ns as f64,
            limit: budget_ns as f64,
            passed: false,
            detail: e.message.clone(),
            judged: true,
        });
        v.reasons.insert(0, e.message.clone());
    }
    if let Alarm::Starved {
        waited_ns,
        limit_ns,
        ..
    } = e.alarm
    {
        v.checks.push(Check {
            name: "starvation".into(),
            value: waited_ns as f64,
            limit: limit_ns as f64,
            passed: false,
            detail: e.message.clone(),
            judged: true,
        });
        v.reasons.insert(0, e.message.clone());
    }
    v.status = Status::Fail;
}

/// Checks whose failure more run time could not undo: a wait that already
/// went over its limit, or a CPU that stalled, happened whatever the rest
/// of the run would have done.
pub const LASTING_CHECKS: &[&str] = &["max_wait_ns", "starvation", "stalls", "policy_budget"];

/// A run a signal cut short is judged over the part that ran, which
/// proves nothing about the rest: a pass there is inconclusive, and so is
/// a failure of a statistic (shares, a p99, an operation's own counts)
/// that the rest of the run could have changed. A failed lasting check
/// ([`LASTING_CHECKS`]) stays a failure: that task did wait too long.
/// The checks keep their measured values either way.
pub fn interrupted_verdict(v: &mut Verdict, sig: Signal) {
    let lasting: Vec<&str> = v
        .checks
        .iter()
        .filter(|c| c.judged && !c.passed && LASTING_CHECKS.contains(&c.name.as_str()))
        .map(|c| c.name.as_str())
        .collect();
    if !lasting.is_empty() && v.status == Status::Fail {
        let why = format!(
            "note: interrupted by {}: judged over the part of the run before it; {} failed \
             there, which the rest of the run could not undo",
            sig.name(),
            lasting.join(", ")
        );
        v.reasons.push(why);
        return;
    }
    let what = match v.status {
        Status::Pass => "a pass over that part does not decide the whole run",
        Status::Fail => "its failures are statistics the rest of the run could have changed",
        Status::Inconclusive => "and that part could not decide it either",
    };
    v.reasons.insert(
        0,
        format!(
            "interrupted by {}: judged over the part of the run before it; {what}",
            sig.name()
        ),
    );
    v.status = Status::Inconclusive;
}

/// Why the data may not support a pass, beyond what `analysis` checks.
fn doubts(s: &vmm::monitor::MonitorStats, inp: &JudgeInput<'_>, window_ns: u64) -> Vec<String> {
    let mut d = Vec::new();
    if !s.kernel_state_seen {
        d.push(
            "the guest never published its kernel state, so the host saw no scheduling events"
                .to_string(),
        );
    }
    // A run shorter than two sample periods may rightly have none (a
    // scenario with `loop = 1` ends in well under a millisecond); the
    // events still tell every switch. Longer, no sample means the monitor
    // did not watch.
    let period_ns = 1_000_000_000 / u64::from(inp.settings.sample_hz.max(1));
    if inp.settings.sample_hz > 0
        && s.samples == 0
        && s.kernel_state_seen
        && window_ns >= 2 * period_ns
    {
        d.push("the monitor took no samples of the CPUs' run queues".to_string());
    }
    if s.dropped_events > 0 {
        d.push(format!(
            "the host kept only the first {} events ({} more not kept)",
            s.events, s.dropped_events
        ));
    }
    if s.malformed_rings > 0 || s.bad_events > 0 {
        d.push(format!(
            "the guest's event rings were malformed {} times and held {} bad entries: events \
             are missing",
            s.malformed_rings, s.bad_events
        ));
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;
    use abi::kstate::{EV_SWITCH, PREV_EXITED, PREV_IDLE, PREV_PREEMPTED};
    use vmm::monitor::MonitorStats;

    /// [`super::judge`] with the events replayed here, as `ops::execute`
    /// replays them.
    fn judge(m: MonitorData, inp: &JudgeInput<'_>) -> Judgement {
        let replay = Replay::from_events(&m.events, inp.cpus);
        super::judge(m, &replay, inp)
    }

    const KHZ: u64 = 1_000_000; // 1 tick = 1 ns

    fn settings() -> JudgeSettings {
        JudgeSettings {
            sample_hz: 1000,
            stall_threshold_ns: 250_000_000,
            max_wait_ns: Some(100_000_000),
            max_fairness_error: Some(0.1),
            max_wake_p99_ns: None,
            extra: Vec::new(),
            shares: Some(crate::settings::policy::Shares::Weighted),
            wait_judged: true,
            unjudged: Vec::new(),
        }
    }

    /// Two tasks alternate every ms on one CPU for 100 ms, then exit.
    fn fair_run() -> MonitorData {
        let mut events = vec![
            Event::new(1_000, EV_SWITCH, 0, 1, 0, PREV_IDLE),
            Event::new(5_000_000, EV_SPAWN, 0, 2, 1, 0),
            Event::new(5_000_000, EV_SPAWN, 0, 3, 1, 0),
        ];
        let mut prev = 1;
        for i in 0..100u64 {
            let pid = 2 + (i % 2) as u32;
            events.push(Event::new(
                5_000_000 + i * 1_000_000,
                EV_SWITCH,
                0,
                pid,
                prev,
                PREV_PREEMPTED,
            ));
            prev = pid;
        }
        events.push(Event::new(105_000_000, EV_EXIT, 0, 3, 0, 0));
        events.push(Event::new(105_000_000, EV_SWITCH, 0, 0, 3, PREV_EXITED));
        let samples = (0..100)
            .map(|i| CpuSample {
                tsc: 5_500_000 + i * 1_000_000,
                cpu: 0,
                current_pid: 2,
                rq_len: 1,
                clock_tsc: 5_000_000 + i * 1_000_000,
                irq_tsc: 0,
                max_irq_gap: 0,
                idle: false,
            })
            .collect();
        MonitorData {
            events,
            samples,
            stats: MonitorStats {
                kernel_state_seen: true,
                samples: 100,
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn tasks() -> Vec<TaskMeta> {
        [2, 3]
            .map(|pid| TaskMeta {
                pid,
                weight: 1,
                affinity_cpus: 0,
            })
            .to_vec()
    }

    fn input<'a>(s: &'a JudgeSettings, judged: &'a [TaskMeta]) -> JudgeInput<'a> {
        JudgeInput {
            cpus: 1,
            topology: None,
            quantum_ns: 0,
            tsc_khz: KHZ,
            settings: s,
            judged,
            op_checks: &[],
            finished: true,
            ended_early: None,
            interrupted: None,
        }
    }

    #[test]
    fn clock_lag_is_the_longest_a_cpu_went_without_its_timer() {
        let sample = |tsc, clock_tsc, irq_tsc, idle, current_pid| CpuSample {
            tsc,
            clock_tsc,
            irq_tsc,
            idle,
            current_pid,
            ..Default::default()
        };
        let samples = [
            sample(10_000_000, 9_500_000, 0, true, 0),
            // 21 ms behind while idle: a late tick.
            sample(40_000_000, 19_000_000, 0, true, 0),
            // Busy with the scheduler's clock held back (a deferred tick),
            // but its interrupts still stamped: 1 ms.
            sample(90_000_000, 10_000_000, 89_000_000, false, 2),
            // Busy and no interrupt for 13 ms: the vCPU was frozen.
            sample(120_000_000, 100_000_000, 107_000_000, false, 2),
            // Not yet running anything (booting): not counted.
            sample(130_000_000, 0, 0, false, 0),
        ];
        assert_eq!(clock_lag_ns(&samples, KHZ), 21_000_000);
        assert_eq!(clock_lag_ns(&samples[2..3], KHZ), 1_000_000);
        assert_eq!(clock_lag_ns(&samples[2..], KHZ), 13_000_000);
        assert_eq!(clock_lag_ns(&samples[4..], KHZ), 0);
    }

    #[test]
    fn clock_lag_counts_a_freeze_the_guest_measured_only_if_it_grew_in_the_window() {
        let sample = |cpu, tsc, max_irq_gap| CpuSample {
            cpu,
            tsc,
            clock_tsc: tsc,
            irq_tsc: tsc,
            max_irq_gap,
            current_pid: 2,
            ..Default::default()
        };
        // CPU 0 froze for 16 ms between samples (no sample saw it); CPU 1
        // had a 30 ms gap while booting, before the window, and none since.
        let samples = [
            sample(0, 1_000_000, 1_000_000),
            sample(1, 1_000_000, 30_000_000),
            sample(0, 20_000_000, 16_000_000),
            sample(1, 20_000_000, 30_000_000),
        ];
        assert_eq!(clock_lag_ns(&samples, KHZ), 16_000_000);
        assert_eq!(clock_lag_ns(&[samples[1], samples[3]], KHZ), 0);
    }

    #[test]
    fn no_samples_is_a_doubt_only_for_a_run_long_enough_to_have_some() {
        let s = settings();
        let inp = input(&s, &[]);
        let stats = MonitorStats {
            kernel_state_seen: true,
            ..Default::default()
        };
        // 1 kHz: a 0.5 ms scenario may rightly have no sample, 5 ms not.
        assert!(doubts(&stats, &inp, 500_000).is_empty());
        let d = doubts(&stats, &inp, 5_000_000);
        assert_eq!(d, ["the monitor took no samples of the CPUs' run queues"]);
    }

    #[test]
    fn window_runs_from_the_first_judged_spawn_to_the_end() {
        let m = fair_run();
        assert_eq!(
            window(&m.events, &tasks(), true, Some(1 << 40)),
            (5_000_000, 105_000_000)
        );
        assert_eq!(
            window(&m.events, &tasks(), false, Some(200_000_000)),
            (5_000_000, 200_000_000),
            "a stopped run ends when it was stopped"
        );
        assert_eq!(
            window(&m.events, &[], true, None).0,
            1_000,
            "no judged spawn: first event"
        );
        assert_eq!(window(&[], &tasks(), true, None), (0, 0));
        assert_eq!(window(&[], &tasks(), false, Some(1 << 40)), (0, 0));
    }

    #[test]
    fn fairness_is_judged_while_every_judged_task_exists() {
        let e = |tsc, kind, pid| Event::new(tsc, kind, 0, pid, 0, 0);
        let events = [
            e(10, EV_SPAWN, 2),
            e(30, EV_SPAWN, 3),
            e(90, EV_EXIT, 3),
            e(95, EV_EXIT, 2),
        ];
        assert_eq!(fairness_window(&events, &tasks(), 100), Some((30, 90)));
        assert_eq!(
            fairness_window(&events[..2], &tasks(), 100),
            Some((30, 100))
        );
        assert_eq!(
            fairness_window(&events[..1], &tasks(), 100),
            None,
            "pid 3 never spawned"
        );
        assert_eq!(
            fairness_window(
                &[e(10, EV_SPAWN, 2), e(5, EV_EXIT, 2), e(30, EV_SPAWN, 3)],
                &tasks(),
                100
            ),
            None
        );
        assert_eq!(fairness_window(&events, &[], 100), None);
    }

    /// Task 3 starts 20 ms late; from then on both get exactly half.
    #[test]
    fn a_late_start_is_not_unfairness() {
        let mut m = fair_run();
        m.events.retain(|e| !(e.kind == EV_SPAWN && e.pid == 3));
        m.events.push(Event::new(25_000_000, EV_SPAWN, 0, 3, 1, 0));
        // Before 25 ms only task 2 runs (drop task 3's early switches).
        m.events
            .retain(|e| !(e.kind == EV_SWITCH && e.tsc < 25_000_000 && e.tsc > 5_000_000));
        let s = settings();
        let judged = tasks();
        let j = judge(m, &input(&s, &judged));
        assert!(j.metrics.tasks[0].runtime_ns > j.metrics.tasks[1].runtime_ns + 15_000_000);
        assert!(j.metrics.max_fairness_error < 0.05, "{:?}", j.metrics.tasks);
        assert_eq!(j.verdict.status, Status::Pass, "{:?}", j.verdict);
    }

    #[test]
    fn operation_checks_count_alongside_judged_tasks() {
        let s = settings();
        let judged = tasks();
        let failed = Check {
            name: "scenario_progress".into(),
            value: 1.0,
            limit: 2.0,
            passed: false,
            detail: "pong#0 never got through its phases".into(),
            judged: true,
        };
        let checks = [failed];
        let inp = JudgeInput {
            op_checks: &checks,
            ..input(&s, &judged)
        };
        let j = judge(fair_run(), &inp);
        assert_eq!(j.verdict.status, Status::Fail, "{:?}", j.verdict);
        assert!(
            j.verdict
                .checks
                .iter()
                .any(|c| c.name == "scenario_progress")
        );
        assert!(
            j.verdict
                .checks
                .iter()
                .any(|c| c.name != "scenario_progress")
        );
        assert!(
            j.verdict.reasons.iter().any(|r| r.contains("pong#0")),
            "{:?}",
            j.verdict.reasons
        );
        let ok = [Check {
            passed: true,
            ..checks[0].clone()
        }];
        let inp = JudgeInput {
            op_checks: &ok,
            ..input(&s, &judged)
        };
        assert_eq!(judge(fair_run(), &inp).verdict.status, Status::Pass);
    }

    #[test]
    fn samples_count_the_running_task_and_stay_in_the_window() {
        let s = [
            CpuSample {
                tsc: 10,
                rq_len: 1,
                current_pid: 4,
                ..Default::default()
            },
            CpuSample {
                tsc: 20,
                rq_len: 0,
                current_pid: 0,
                ..Default::default()
            },
            CpuSample {
                tsc: 99,
                ..Default::default()
            },
        ];
        let n = nr_running_samples(s.to_vec(), 5, 50);
        assert_eq!(n.iter().map(|s| s.rq_len).collect::<Vec<_>>(), [2, 0]);
    }

    #[test]
    fn a_fair_run_passes_with_two_tasks_per_cpu() {
        let s = settings();
        let judged = tasks();
        let j = judge(fair_run(), &input(&s, &judged));
        assert_eq!(j.verdict.status, Status::Pass, "{:?}", j.verdict);
        assert_eq!(j.metrics.tasks.len(), 2);
        assert!((j.metrics.tasks[0].share - 0.5).abs() < 0.01);
        assert!(
            (j.metrics.cpus[0].mean_rq_len - 2.0).abs() < 1e-9,
            "nr_running"
        );
    }

    #[test]
    fn a_live_stop_fails_the_run_and_names_the_task() {
        let s = settings();
        let judged = tasks();
        let e = EarlyEnd {
            alarm: Alarm::Starved {
                pid: 3,
                cpu: 0,
                waited_ns: 150_000_000,
                limit_ns: 100_000_000,
                allowance_ns: 0,
            },
            message: "task 3 waited 150 ms runnable".into(),
            stall: None,
        };
        let j = judge(
            fair_run(),
            &JudgeInput {
                finished: false,
                ended_early: Some(&e),
                ..input(&s, &judged)
            },
        );
        assert_eq!(j.verdict.status, Status::Fail);
        assert_eq!(j.verdict.reasons[0], "task 3 waited 150 ms runnable");
        let c = j
            .verdict
            .checks
            .iter()
            .find(|c| c.name == "starvation")
            .unwrap();
        assert!(!c.passed);
    }

    #[test]
    fn an_interrupted_pass_is_inconclusive_but_a_lasting_failure_stands() {
        let s = settings();
        let judged = tasks();
        let interrupted = |s: &JudgeSettings| {
            judge(
                fair_run(),
                &JudgeInput {
                    finished: false,
                    interrupted: Some(Signal::Int),
                    ..input(s, &judged)
                },
            )
            .verdict
        };
        let whole = judge(fair_run(), &input(&s, &judged)).verdict;
        assert_eq!(whole.status, Status::Pass, "{:?}", whole.reasons);
        let v = interrupted(&s);
        assert_eq!(v.status, Status::Inconclusive);
        assert!(
            v.reasons[0].starts_with("interrupted by SIGINT"),
            "{:?}",
            v.reasons
        );
        // Each task waits 1 ms between its slices: over a 0.5 ms limit,
        // and no later part of the run could take that wait back.
        let strict = JudgeSettings {
            max_wait_ns: Some(500_000),
            ..settings()
        };
        let v = interrupted(&strict);
        assert_eq!(v.status, Status::Fail, "{:?}", v.reasons);
        assert!(
            v.reasons
                .iter()
                .any(|r| r.contains("interrupted by SIGINT") && r.contains("max_wait_ns")),
            "{:?}",
            v.reasons
        );
    }

    #[test]
    fn an_interrupted_statistic_failure_is_inconclusive() {
        let check = |name: &str, passed| Check {
            name: name.into(),
            value: 1.0,
            limit: 0.5,
            passed,
            detail: String::new(),
            judged: true,
        };
        let mut v = Verdict {
            status: Status::Fail,
            checks: vec![
                check("max_wait_ns", true),
                check("max_fairness_error", false),
            ],
            reasons: vec!["task 2 got 30 %".into()],
        };
        interrupted_verdict(&mut v, Signal::Term);
        assert_eq!(v.status, Status::Inconclusive);
        assert!(v.reasons[0].starts_with("interrupted by SIGTERM"), "{v:?}");
        assert_eq!(
            v.reasons[1], "task 2 got 30 %",
            "the measured failure is kept"
        );
        assert!(!v.checks[1].passed, "checks keep their measured result");
        let mut v = Verdict {
            status: Status::Fail,
            checks: vec![check("stalls", false)],
            reasons: vec![],
        };
        interrupted_verdict(&mut v, Signal::Hup);
        assert_eq!(v.status, Status::Fail);
    }

    #[test]
    fn a_stall_is_a_failure_with_its_place() {
        let s = settings();
        let judged = tasks();
        let e = EarlyEnd {
            alarm: Alarm::Stall {
                cpu: 0,
                pid: 2,
                stalled_ns: 300_000_000,
            },
            message: "CPU 0 stalled".into(),
            stall: Some(analysis::Stall {
                cpu: 0,
                pid: 2,
                stalled_ns: 300_000_000,
                rip: Some(0x40_0123),
                function: Some("spin::stall".into()),
            }),
        };
        let j = judge(
            fair_run(),
            &JudgeInput {
                finished: false,
                ended_early: Some(&e),
                ..input(&s, &judged)
            },
        );
        assert_eq!(j.verdict.status, Status::Fail);
        assert!(
            j.verdict
                .reasons
                .iter()
                .any(|r| r.contains("CPU 0 stalled") && r.contains("spin::stall")),
            "{:?}",
            j.verdict.reasons
        );
    }

    #[test]
    fn missing_or_incomplete_data_is_inconclusive_not_a_pass() {
        let s = settings();
        let judged = tasks();
        let j = judge(MonitorData::default(), &input(&s, &judged));
        assert_eq!(j.verdict.status, Status::Inconclusive);
        assert!(
            j.verdict
                .reasons
                .iter()
                .any(|r| r.contains("never published"))
        );

        let mut m = fair_run();
        m.stats.samples = 0;
        m.samples.clear();
        let j = judge(m, &input(&s, &judged));
        assert_eq!(j.verdict.status, Status::Inconclusive);
        assert!(j.verdict.reasons.iter().any(|r| r.contains("no samples")));

        let mut m = fair_run();
        m.stats.malformed_rings = 1;
        assert_eq!(
            judge(m, &input(&s, &judged)).verdict.status,
            Status::Inconclusive
        );
        assert_eq!(
            judge(fair_run(), &input(&s, &[])).verdict.status,
            Status::Inconclusive
        );
    }
}
