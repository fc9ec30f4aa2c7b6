//! A scenario's result: one row per instance (loops, loop time, how late
//! its sleeps ended, messages), the instances as judged tasks (so waits,
//! wake-ups and, for CPU-bound scenarios, shares are judged as for spin),
//! and two checks of its own: every instance got through its phases at
//! least once, and none had to be killed at the end.

use super::compile::Compiled;
use crate::operations::Summary;
use crate::operations::common::{fmt_latency, latency_json, result_failure};
use abi::kstate::Event;
use analysis::{Check, TaskMeta};
use guest_protocol::{LatencyStats, Msg, ScenarioResult, ScenarioTaskResult};
use serde_json::{Value, json};
use vmm::vm::run::RunOutcome;

/// The operation reports its instances in chunks (`SCENARIO_RESULT_CHUNK`
/// a message): joined here, in order. More instances than a scenario can
/// start is a guest that cannot be trusted: the count check below names
/// it.
fn joined(out: &RunOutcome) -> (Option<ScenarioResult>, usize) {
    let mut all: Option<ScenarioResult> = None;
    let mut reported = 0;
    for m in &out.results {
        let Msg::ScenarioResult(part) = m else {
            continue;
        };
        let r = all.get_or_insert_with(|| ScenarioResult {
            elapsed_ns: part.elapsed_ns,
            ..Default::default()
        });
        r.elapsed_ns = r.elapsed_ns.max(part.elapsed_ns);
        r.forks_refused = r.forks_refused.max(part.forks_refused);
        for t in &part.tasks {
            reported += 1;
            let _ = r.tasks.push(*t);
        }
    }
    (all, reported)
}

pub fn summarize(c: &Compiled, out: &RunOutcome) -> Summary {
    let (result, reported) = joined(out);
    let result = result.as_ref();
    let events = out.monitor.as_ref().map_or(&[][..], |m| &m.events[..]);
    let mut s = Summary {
        judged: judged(c, result, events),
        failure: result_failure(out, "scenario", result.is_some()),
        ..Default::default()
    };
    let Some(r) = result else {
        return s;
    };
    let expected = c.instances() as usize;
    let fits = if c.forks {
        (expected..=abi::config::SCENARIO_MAX_INSTANCES).contains(&reported)
    } else {
        reported == expected
    };
    if s.failure.is_none() && !fits {
        s.failure = Some(vmm::exit::Failure::new(
            vmm::exit::ErrorKind::MissingResult,
            format!(
                "the guest reported {} task instances, but the scenario starts {}",
                reported,
                c.instances()
            ),
        ));
    }
    s.elapsed_ns = Some(r.elapsed_ns);
    s.names = r.tasks.iter().map(|t| (t.pid, label(c, t))).collect();
    s.lines = table(c, r);
    s.checks = checks(c, r);
    s.extra = Some(result_json(c, r));
    s
}

/// The task's name as the file gave it (a kind number the guest made up
/// shows as such rather than panicking).
fn name(c: &Compiled, kind: u32) -> String {
    c.kinds
        .get(kind as usize)
        .map_or_else(|| format!("kind{kind}"), |k| k.name.clone())
}

fn label(c: &Compiled, t: &ScenarioTaskResult) -> String {
    format!("{}#{}", name(c, t.kind), t.instance)
}

fn meta(c: &Compiled, kind: usize, pid: u32) -> TaskMeta {
    let k = c.kinds.get(kind);
    TaskMeta {
        pid,
        weight: k.map_or(1, |k| k.weight),
        affinity_cpus: k.map_or(0, |k| k.affinity.count_ones()),
    }
}

/// Every instance, by pid: from the result, or (a run stopped early) from
/// the spawn events: the operation's main task is spawned first, then the
/// instances in order (kind 0's, then kind 1's, ...).
fn judged(c: &Compiled, result: Option<&ScenarioResult>, events: &[Event]) -> Vec<TaskMeta> {
    if let Some(r) = result {
        return r
            .tasks
            .iter()
            .map(|t| meta(c, t.kind as usize, t.pid))
            .collect();
    }
    let kind_of: Vec<usize> = c
        .kinds
        .iter()
        .enumerate()
        .flat_map(|(k, kind)| std::iter::repeat_n(k, kind.count as usize))
        .collect();
    crate::operations::worker_spawns(events)
        .iter()
        .zip(kind_of)
        .map(|(e, k)| meta(c, k, e.pid))
        .collect()
}

fn lat(l: Option<&LatencyStats>, f: fn(&LatencyStats) -> u64) -> String {
    l.filter(|l| l.count > 0)
        .map_or_else(|| "-".into(), |l| fmt_latency(f(l)))
}

fn table(c: &Compiled, r: &ScenarioResult) -> Vec<String> {
    let w = c
        .kinds
        .iter()
        .map(|k| k.name.len() + 3)
        .max()
        .unwrap_or(4)
        .max(8);
    let mut lines = vec![format!(
        "{:<w$} {:>5} {:>9} {:>10} {:>10} {:>10} {:>10} {:>10} {:>8} {:>8}",
        "task",
        "pid",
        "loops",
        "loop p50",
        "loop p99",
        "loop max",
        "late p99",
        "late max",
        "sent",
        "recv"
    )];
    for t in &r.tasks {
        let (l, o) = (t.loop_time(), t.sleep_overrun());
        lines.push(format!(
            "{:<w$} {:>5} {:>9} {:>10} {:>10} {:>10} {:>10} {:>10} {:>8} {:>8}",
            label(c, t),
            t.pid,
            t.loops,
            lat(l, |l| l.p50_ns),
            lat(l, |l| l.p99_ns),
            lat(l, |l| l.max_ns),
            lat(o, |l| l.p99_ns),
            lat(o, |l| l.max_ns),
            t.sent,
            t.received
        ));
    }
    lines.push(
        "(loop: one pass through the task's phases; late: how late its sleeps and timers \
         ended)"
            .into(),
    );
    // Tasks with a timer are periodic to the policy (edf and fp read it).
    let ms = |ns: u64| crate::settings::fmt_ns(ns);
    for k in c.kinds.iter().filter(|k| k.rt.period_ns != 0) {
        lines.push(format!(
            "{}: periodic to the policy: period {}, runtime {}, deadline {}",
            k.name,
            ms(k.rt.period_ns),
            ms(k.rt.runtime_ns),
            ms(k.rt.deadline_ns)
        ));
    }
    for k in c.kinds.iter().filter(|k| k.rt.priority != 0) {
        lines.push(format!(
            "{}: fixed priority {} to the policy (higher first; fp orders by it)",
            k.name, k.rt.priority
        ));
    }
    if !c.syncs.is_empty() {
        lines.extend(sync_table(c, r, w));
    }
    if c.forks {
        let forked = r.tasks.iter().filter(|t| forked(c, t)).count();
        lines.push(format!(
            "forks: {forked} instance(s) forked{}",
            match r.forks_refused {
                0 => String::new(),
                n => format!(
                    ", {n} refused (every one of the {} instance slots taken)",
                    abi::config::SCENARIO_MAX_INSTANCES
                ),
            }
        ));
    }
    lines
}

/// Who waited how long for mutexes, and how long each task was blocked
/// in `wait` and `barrier` phases (priority inversion shows here: a task
/// that should run first waiting on a lock a lesser one holds).
fn sync_table(c: &Compiled, r: &ScenarioResult, w: usize) -> Vec<String> {
    let mut lines = vec![format!(
        "{:<w$} {:>9} {:>10} {:>10} {:>10} {:>12}",
        "task", "locks", "wait p50", "wait p99", "wait max", "blocked"
    )];
    for t in &r.tasks {
        let l = t.lock_wait();
        lines.push(format!(
            "{:<w$} {:>9} {:>10} {:>10} {:>10} {:>12}",
            label(c, t),
            l.map_or(0, |l| l.count),
            lat(l, |l| l.p50_ns),
            lat(l, |l| l.p99_ns),
            lat(l, |l| l.max_ns),
            fmt_latency(t.sync_wait_ns),
        ));
    }
    lines.push(format!(
        "(locks: mutexes taken and how long each waited for one; blocked: time in wait and \
         barrier phases; sync objects: {})",
        c.syncs.join(", ")
    ));
    lines
}

/// Forked at run time (numbered past its kind's count): it may have
/// started too close to the end to get through its phases once.
fn forked(c: &Compiled, t: &ScenarioTaskResult) -> bool {
    c.kinds
        .get(t.kind as usize)
        .is_some_and(|k| t.instance >= k.count)
}

fn checks(c: &Compiled, r: &ScenarioResult) -> Vec<Check> {
    let idle: Vec<String> = r
        .tasks
        .iter()
        .filter(|t| t.loops == 0 && !forked(c, t))
        .map(|t| label(c, t))
        .collect();
    let killed: Vec<String> = r
        .tasks
        .iter()
        .filter(|t| t.loop_time().is_none())
        .map(|t| label(c, t))
        .collect();
    let n = r.tasks.len();
    let first = r.tasks.iter().filter(|t| !forked(c, t)).count();
    vec![
        Check {
            name: "scenario_progress".into(),
            value: (first - idle.len()) as f64,
            limit: first as f64,
            passed: idle.is_empty(),
            detail: if idle.is_empty() && first < n {
                format!(
                    "all {first} instances started with the run got through their phases at \
                     least once ({} forked later are not held to it)",
                    n - first
                )
            } else if idle.is_empty() {
                format!("all {n} instances got through their phases at least once")
            } else {
                format!(
                    "{} of {first} instances never got through their phases: {} (waiting for a \
                     message nobody sends? a phase longer than the duration?)",
                    idle.len(),
                    idle.join(", ")
                )
            },
            judged: true,
        },
        Check {
            name: "scenario_stopped".into(),
            value: killed.len() as f64,
            limit: 0.0,
            passed: killed.is_empty(),
            detail: if killed.is_empty() {
                format!("all {n} instances stopped by themselves at the end")
            } else {
                format!(
                    "{} instances were still running after the duration and were killed \
                     (blocked sending to each other's full mailboxes?): {}",
                    killed.len(),
                    killed.join(", ")
                )
            },
            judged: true,
        },
    ]
}

fn opt_latency(l: Option<&LatencyStats>) -> Value {
    l.map_or(Value::Null, latency_json)
}

fn result_json(c: &Compiled, r: &ScenarioResult) -> Value {
    let tasks: Vec<Value> = r
        .tasks
        .iter()
        .map(|t| {
            json!({
                "task": name(c, t.kind),
                "kind": t.kind,
                "instance": t.instance,
                "pid": t.pid,
                "loops": t.loops,
                "loop_time": opt_latency(t.loop_time()),
                "sleep_overrun": opt_latency(t.sleep_overrun()),
                "sent": t.sent,
                "received": t.received,
                "run_ns": t.run_ns,
                "run_away_ns": t.run_away_ns,
                "lock_wait": opt_latency(t.lock_wait()),
                "sync_wait_ns": t.sync_wait_ns,
            })
        })
        .collect();
    let kinds: Vec<Value> = c
        .kinds
        .iter()
        .enumerate()
        .map(|(k, kind)| {
            let mine = || r.tasks.iter().filter(move |t| t.kind as usize == k);
            let rt = |v: u64| {
                if kind.rt.period_ns == 0 {
                    Value::Null
                } else {
                    json!(v)
                }
            };
            json!({
                "task": kind.name,
                "period_ns": rt(kind.rt.period_ns),
                "runtime_ns": rt(kind.rt.runtime_ns),
                "deadline_ns": rt(kind.rt.deadline_ns),
                "priority": (kind.rt.priority != 0).then_some(kind.rt.priority),
                "delay_ns": kind.delay_ns,
                "instances": mine().count(),
                "loops": mine().map(|t| t.loops).sum::<u64>(),
                "sent": mine().map(|t| t.sent).sum::<u64>(),
                "received": mine().map(|t| t.received).sum::<u64>(),
            })
        })
        .collect();
    json!({
        "elapsed_ns": r.elapsed_ns,
        "tasks": tasks,
        "kinds": kinds,
        "syncs": c.syncs,
        "forked": r.tasks.iter().filter(|t| forked(c, t)).count(),
        "forks_refused": r.forks_refused,
    })
}

#[cfg(test)]
mod tests {
    use super::super::compile::compile;
    use super::super::schema::parse;
    use super::*;
    use abi::kstate::EV_SPAWN;

    fn scenario() -> Compiled {
        let text = "[[task]]\nname = \"ping\"\nphases = [{ send = \"pong\" }, { recv = \"forever\" }]\n\
                    [[task]]\nname = \"pong\"\ncount = 2\nweight = 4\naffinity = \"0-1\"\n\
                    phases = [{ recv = \"forever\" }, { send = \"ping\" }]\n";
        compile(&parse(text).unwrap(), 2, 1_000_000).unwrap()
    }

    fn task(kind: u32, instance: u32, pid: u32, loops: u64, done: bool) -> ScenarioTaskResult {
        let mut t = ScenarioTaskResult {
            kind,
            instance,
            pid,
            loops,
            sent: loops,
            received: loops,
            ..Default::default()
        };
        if done {
            t.set_loop_time(LatencyStats {
                count: loops,
                p50_ns: 30_000,
                p99_ns: 90_000,
                max_ns: 2_000_000,
                mean_ns: 35_000,
                ..Default::default()
            });
            t.set_sleep_overrun(LatencyStats::default());
        }
        t
    }

    fn outcome(tasks: &[ScenarioTaskResult]) -> RunOutcome {
        let mut r = ScenarioResult {
            elapsed_ns: 200_000_000,
            ..Default::default()
        };
        for t in tasks {
            r.tasks.push(*t).unwrap();
        }
        RunOutcome {
            finished: true,
            results: vec![Msg::ScenarioResult(r)],
            ..Default::default()
        }
    }

    #[test]
    fn timer_tasks_show_their_period_runtime_and_deadline() {
        let text = "[[task]]\nname = \"tick\"\ndeadline = \"8ms\"\n\
                    phases = [{ run = \"2ms\" }, { timer = \"10ms\" }]\n\
                    [[task]]\nname = \"bg\"\nphases = [{ run = \"1ms\" }]\n";
        let c = compile(&parse(text).unwrap(), 1, 1_000_000).unwrap();
        let s = summarize(
            &c,
            &outcome(&[task(0, 0, 2, 10, true), task(1, 0, 3, 1, true)]),
        );
        let rt: Vec<&String> = s
            .lines
            .iter()
            .filter(|l| l.contains("periodic to"))
            .collect();
        assert_eq!(rt.len(), 1, "{:?}", s.lines);
        assert!(
            rt[0].starts_with("tick: periodic to the policy: period 10"),
            "{}",
            rt[0]
        );
        let v = s.extra.unwrap();
        assert_eq!(v["kinds"][0]["period_ns"], 10_000_000);
        assert_eq!(v["kinds"][0]["runtime_ns"], 2_000_000);
        assert_eq!(v["kinds"][0]["deadline_ns"], 8_000_000);
        assert!(v["kinds"][1]["period_ns"].is_null());
    }

    #[test]
    fn a_result_becomes_rows_checks_and_judged_tasks() {
        let c = scenario();
        let out = outcome(&[
            task(0, 0, 2, 100, true),
            task(1, 0, 3, 50, true),
            task(1, 1, 4, 50, true),
        ]);
        let s = summarize(&c, &out);
        assert!(s.failure.is_none(), "{:?}", s.failure);
        assert!(s.checks.iter().all(|c| c.passed), "{:?}", s.checks);
        assert_eq!(
            s.judged
                .iter()
                .map(|t| (t.pid, t.weight, t.affinity_cpus))
                .collect::<Vec<_>>(),
            [(2, 1, 0), (3, 4, 2), (4, 4, 2)]
        );
        assert!(s.lines[0].starts_with("task "), "{:?}", s.lines);
        assert!(s.lines[1].starts_with("ping#0 "), "{:?}", s.lines);
        assert!(s.lines[1].contains("30.0 µs") && s.lines[1].contains("2.00 ms"));
        assert!(s.lines[3].starts_with("pong#1 "), "{:?}", s.lines);
        let v = s.extra.unwrap();
        assert_eq!(v["tasks"][0]["task"], "ping");
        assert_eq!(v["tasks"][0]["loop_time"]["p50_ns"], 30_000);
        assert_eq!(v["kinds"][1]["loops"], 100);
        assert_eq!(v["kinds"][1]["instances"], 2);
    }

    #[test]
    fn results_in_chunks_are_joined_and_too_many_instances_named() {
        let c = scenario();
        let part = |tasks: &[ScenarioTaskResult], elapsed_ns| {
            let mut r = ScenarioResult {
                elapsed_ns,
                ..Default::default()
            };
            for t in tasks {
                r.tasks.push(*t).unwrap();
            }
            Msg::ScenarioResult(r)
        };
        let mut out = outcome(&[task(0, 0, 2, 100, true)]);
        out.results
            .push(part(&[task(1, 0, 3, 50, true), task(1, 1, 4, 50, true)], 9));
        let s = summarize(&c, &out);
        assert!(s.failure.is_none(), "{:?}", s.failure);
        assert_eq!(s.names.len(), 3);
        assert_eq!(s.names[&4], "pong#1");
        assert_eq!(s.elapsed_ns, Some(200_000_000));
        // A guest that reports more instances than the scenario starts.
        out.results.push(part(&[task(1, 1, 5, 1, true)], 1));
        let s = summarize(&c, &out);
        assert!(
            s.failure
                .unwrap()
                .message
                .contains("reported 4 task instances, but the scenario starts 3")
        );
    }

    #[test]
    fn idle_and_killed_instances_fail_their_checks_by_name() {
        let c = scenario();
        let out = outcome(&[
            task(0, 0, 2, 100, true),
            task(1, 0, 3, 0, true),
            task(1, 1, 4, 7, false),
        ]);
        let s = summarize(&c, &out);
        let progress = &s.checks[0];
        assert!(
            !progress.passed && progress.detail.contains("pong#0"),
            "{progress:?}"
        );
        let stopped = &s.checks[1];
        assert!(
            !stopped.passed && stopped.detail.contains("pong#1"),
            "{stopped:?}"
        );
        assert!(s.lines[3].contains("        -"), "{:?}", s.lines);
        assert!(s.extra.unwrap()["tasks"][2]["loop_time"].is_null());
    }

    #[test]
    fn a_short_or_missing_result_is_a_failure_and_spawns_name_the_tasks() {
        let c = scenario();
        let s = summarize(&c, &outcome(&[task(0, 0, 2, 1, true)]));
        assert!(
            s.failure
                .unwrap()
                .message
                .contains("reported 1 task instances")
        );
        let none = RunOutcome {
            finished: true,
            ..Default::default()
        };
        let s = summarize(&c, &none);
        assert!(s.failure.unwrap().message.contains("no scenario result"));
        let spawn = |tsc, pid| Event {
            tsc,
            kind: EV_SPAWN,
            pid,
            ..Default::default()
        };
        let events = [spawn(40, 5), spawn(10, 1), spawn(20, 2), spawn(30, 3)];
        let j = judged(&c, None, &events);
        assert_eq!(
            j.iter().map(|t| (t.pid, t.weight)).collect::<Vec<_>>(),
            [(2, 1), (3, 4), (5, 4)]
        );
    }
}
