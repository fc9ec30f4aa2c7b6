//! `schedlab spin`: N tasks each repeating a fixed unit of integer work for
//! a while. Under a fair scheduler with equal weights each task gets the
//! same share of the CPU; this shows how close the scheduler comes.

use super::Summary;
use super::affinity::{fmt_cpu_list, parse_affinity};
use crate::report::{TaskRow, Totals};
use crate::settings::{CommonArgs, MAX_WEIGHT, RunSettings, fmt_ns};
use abi::config::{
    SPIN_MAGIC, SPIN_MAX_TASKS, SpinConfig, TEST_FAULT_HANG, TEST_FAULT_NONE, TEST_FAULT_NULL,
    TEST_FAULT_PANIC, TEST_FAULT_STALL, TEST_FAULT_TRIPLE, TEST_FAULT_UD2,
};
use abi::kstate::Event;
use analysis::TaskMeta;
use clap::{Args, ValueEnum};
use guest_protocol::{Msg, SpinResult};
use serde_json::json;
use vmm::exit::{ErrorKind, Failure, Result};
use vmm::vm::run::RunOutcome;
use zerocopy::IntoBytes;

#[derive(Debug, Clone, Args)]
pub struct SpinArgs {
    /// Number of spinning tasks (1..128) [default: the length of the
    /// longest per-task list given to --weights, --nice or --affinity,
    /// else 4].
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub tasks: Option<i64>,
    /// Task weights: one for all tasks or one per task, e.g. 1,1,4. Passed
    /// to the guest for weighted policies; round-robin ignores them.
    #[arg(long, value_name = "W[,W...]", allow_hyphen_values = true)]
    pub weights: Option<String>,
    /// Task nice values, -20..19: one for all tasks or one per task, e.g.
    /// 0,5,-5. Each becomes Linux's weight for it (`sched_prio_to_weight`:
    /// nice 0 is 1024, each step about 1.25x), which weighted policies
    /// (eevdf, vtime) share the CPU by.
    #[arg(
        long,
        value_name = "N[,N...]",
        allow_hyphen_values = true,
        conflicts_with = "weights"
    )]
    pub nice: Option<String>,
    /// CPUs the tasks may run on: one list for all tasks (e.g. 0-3,6) or
    /// one per task separated by '/' (e.g. 0/1/2-3) [default: any CPU].
    #[arg(long, value_name = "CPUS[/CPUS...]", allow_hyphen_values = true)]
    pub affinity: Option<String>,
    /// TEST ONLY: make the guest fail on purpose, to exercise the host's
    /// error paths.
    #[arg(
        long,
        value_enum,
        value_name = "KIND",
        default_value = "none",
        hide = true
    )]
    pub test_fault: TestFault,
    #[command(flatten)]
    pub common: CommonArgs,
}

/// Test-only failure triggers (abi::config::TEST_FAULT_*).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TestFault {
    None,
    Ud2,
    Null,
    Hang,
    Triple,
    Panic,
    Stall,
}

impl TestFault {
    fn code(self) -> u32 {
        match self {
            TestFault::None => TEST_FAULT_NONE,
            TestFault::Ud2 => TEST_FAULT_UD2,
            TestFault::Null => TEST_FAULT_NULL,
            TestFault::Hang => TEST_FAULT_HANG,
            TestFault::Triple => TEST_FAULT_TRIPLE,
            TestFault::Panic => TEST_FAULT_PANIC,
            TestFault::Stall => TEST_FAULT_STALL,
        }
    }
    fn name(self) -> &'static str {
        match self {
            TestFault::None => "none",
            TestFault::Ud2 => "ud2",
            TestFault::Null => "null",
            TestFault::Hang => "hang",
            TestFault::Triple => "triple",
            TestFault::Panic => "panic",
            TestFault::Stall => "stall",
        }
    }
}

/// Validated `spin` flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpinPlan {
    pub tasks: u32,
    pub weights: Vec<u32>,
    /// Per-task CPU mask, 0 = any CPU.
    pub affinity: Vec<u64>,
    pub test_fault: TestFault,
}

impl SpinArgs {
    /// Validate against the machine's `cpus` (affinity names CPUs).
    pub fn plan(&self, cpus: u32) -> Result<SpinPlan> {
        // A list of one value is for every task; a longer one says how
        // many tasks there are (`spin --nice 0,5,-5` is three tasks).
        let listed = [
            self.weights.as_deref().map(|t| t.split(',').count()),
            self.nice.as_deref().map(|t| t.split(',').count()),
            self.affinity.as_deref().map(|t| t.split('/').count()),
        ]
        .into_iter()
        .flatten()
        .filter(|&n| n > 1)
        .max();
        let n = self.tasks.unwrap_or_else(|| listed.map_or(4, |l| l as i64));
        if n < 1 || n > SPIN_MAX_TASKS as i64 {
            return Err(Failure::usage(format!(
                "--tasks must be between 1 and {SPIN_MAX_TASKS} (the core's limit for spin), got {n}"
            )));
        }
        let tasks = n as u32;
        let weights = match (&self.weights, &self.nice) {
            (Some(text), _) => parse_weights(text, tasks)?,
            (None, Some(text)) => parse_nice(text, tasks)?,
            (None, None) => vec![1; tasks as usize],
        };
        let affinity = match &self.affinity {
            None => vec![0; tasks as usize],
            Some(text) => parse_affinity(text, tasks, cpus)?,
        };
        Ok(SpinPlan {
            tasks,
            weights,
            affinity,
            test_fault: self.test_fault,
        })
    }
}

fn parse_weights(text: &str, tasks: u32) -> Result<Vec<u32>> {
    let mut w = Vec::new();
    for part in text.split(',') {
        let v: u32 = part.trim().parse().map_err(|_| {
            Failure::usage(format!(
                "--weights: '{part}' is not a whole number (write e.g. --weights 1,1,4)"
            ))
        })?;
        if v == 0 || v > MAX_WEIGHT {
            return Err(Failure::usage(format!(
                "--weights: each weight must be between 1 and {MAX_WEIGHT}, got {v}"
            )));
        }
        w.push(v);
    }
    match w.len() {
        1 => Ok(vec![w[0]; tasks as usize]),
        n if n == tasks as usize => Ok(w),
        n => Err(Failure::usage(format!(
            "--weights: give one weight for all tasks or one per task ({tasks}), got {n}"
        ))),
    }
}

/// `--nice` as weights, through Linux's table.
fn parse_nice(text: &str, tasks: u32) -> Result<Vec<u32>> {
    use abi::ipc::{MAX_NICE, MIN_NICE, nice_to_weight};
    let mut w = Vec::new();
    for part in text.split(',') {
        let n: i32 = part.trim().parse().map_err(|_| {
            Failure::usage(format!(
                "--nice: '{part}' is not a whole number (write e.g. --nice 0,5,-5)"
            ))
        })?;
        let weight = nice_to_weight(n).ok_or_else(|| {
            Failure::usage(format!(
                "--nice: each nice value must be between {MIN_NICE} and {MAX_NICE}, got {n}"
            ))
        })?;
        w.push(weight);
    }
    match w.len() {
        1 => Ok(vec![w[0]; tasks as usize]),
        n if n == tasks as usize => Ok(w),
        n => Err(Failure::usage(format!(
            "--nice: give one value for all tasks or one per task ({tasks}), got {n}"
        ))),
    }
}

impl SpinPlan {
    pub fn config(&self, duration_ns: u64) -> SpinConfig {
        let mut c = SpinConfig::new(self.tasks, duration_ns);
        c.test_fault = self.test_fault.code();
        c.weights[..self.weights.len()].copy_from_slice(&self.weights);
        c.affinity[..self.affinity.len()].copy_from_slice(&self.affinity);
        c
    }

    /// The judged task of worker `i` with this pid.
    fn meta(&self, i: usize, pid: u32) -> TaskMeta {
        TaskMeta {
            pid,
            weight: self.weights.get(i).copied().unwrap_or(1),
            affinity_cpus: self.affinity.get(i).map_or(0, |m| m.count_ones()),
        }
    }

    /// The workers, by pid: from the result when the guest sent one, else
    /// (a run stopped early) from the spawn events: the core spawns the
    /// operation's main task first (the rings are drained from boot, so its
    /// spawn is the first one seen), then main spawns the workers in index
    /// order.
    pub fn judged(&self, result: Option<&SpinResult>, events: &[Event]) -> Vec<TaskMeta> {
        if let Some(r) = result {
            return r
                .tasks
                .iter()
                .enumerate()
                .map(|(i, t)| self.meta(i, t.pid))
                .collect();
        }
        super::worker_spawns(events)
            .iter()
            .take(self.tasks as usize)
            .enumerate()
            .map(|(i, e)| self.meta(i, e.pid))
            .collect()
    }
}

/// Entry point of the subcommand; returns the process exit code.
/// The `spin` operation.
pub struct Spin;

impl super::Operation for Spin {
    const NAME: &'static str = "spin";
    const ABOUT: &'static str = "N tasks each repeating a fixed unit of integer work for a while: \
                                 shows how the CPU is shared between them";
    const CONFIG_MAGIC: u32 = SPIN_MAGIC;
    type Args = SpinArgs;
    type Plan = SpinPlan;

    fn plan(args: &SpinArgs, _: &clap::ArgMatches) -> Result<(SpinPlan, RunSettings)> {
        let settings = args.common.validate()?;
        let plan = args.plan(settings.sched.cpus)?;
        Ok((plan, settings))
    }

    fn config(plan: &SpinPlan, s: &RunSettings) -> Vec<u8> {
        plan.config(s.duration_ns).as_bytes().to_vec()
    }

    fn config_json(plan: &SpinPlan, s: &RunSettings) -> serde_json::Value {
        json!({
            "tasks": plan.tasks,
            "duration_ns": s.duration_ns,
            "weights": plan.weights,
            "affinity": plan.affinity.iter().map(|m| fmt_cpu_list(*m)).collect::<Vec<_>>(),
            "test_fault": plan.test_fault.name(),
        })
    }

    fn headline(plan: &SpinPlan, s: &RunSettings) -> String {
        let sched = &s.sched;
        format!(
            "spin: {} task{} for {} on {} vCPU{}, policy {}, slice {}, tick {} Hz, idle {}",
            plan.tasks,
            if plan.tasks == 1 { "" } else { "s" },
            fmt_ns(s.duration_ns),
            sched.cpus,
            if sched.cpus == 1 { "" } else { "s" },
            sched.policy.name,
            fmt_ns(s.slice_ns),
            sched.tick_hz,
            sched.idle.name()
        )
    }

    fn summarize(plan: &SpinPlan, out: &RunOutcome) -> Summary {
        summarize(plan, out)
    }
}

/// Rows, totals and any failure the result itself shows.
pub fn summarize(plan: &SpinPlan, out: &RunOutcome) -> Summary {
    let result = out.results.iter().rev().find_map(|m| match m {
        Msg::SpinResult(r) => Some(r),
        _ => None,
    });
    let events = out.monitor.as_ref().map_or(&[][..], |m| &m.events[..]);
    let mut s = Summary {
        judged: plan.judged(result, events),
        ..Default::default()
    };
    let Some(r) = result else {
        if out.failure.is_none() && out.finished {
            s.failure = Some(Failure::new(
                ErrorKind::MissingResult,
                "the guest finished but sent no spin result",
            ));
        }
        return s;
    };
    s.tasks = rows(r);
    s.totals = Some(totals(r));
    s.elapsed_ns = Some(r.elapsed_ns);
    if out.failure.is_none() {
        if r.tasks.len() != plan.tasks as usize {
            s.failure = Some(Failure::new(
                ErrorKind::MissingResult,
                format!(
                    "the guest reported {} tasks, but {} were asked for",
                    r.tasks.len(),
                    plan.tasks
                ),
            ));
        } else if let Some(c) = out.complete.as_ref().filter(|c| c.exit_code != 0) {
            s.failure = Some(Failure::new(
                ErrorKind::GuestFailed,
                format!("the spin operation exited with code {}", c.exit_code),
            ));
        }
    }
    s
}

fn rows(r: &SpinResult) -> Vec<TaskRow> {
    let total: u64 = r.tasks.iter().map(|t| t.runtime_ns).sum();
    r.tasks
        .iter()
        .map(|t| TaskRow {
            pid: t.pid,
            units: t.units,
            runtime_ns: t.runtime_ns,
            share: if total == 0 {
                0.0
            } else {
                t.runtime_ns as f64 / total as f64
            },
            weight: t.weight,
            nice: abi::ipc::weight_to_nice(t.weight),
            switches: t.switches,
            cpu: t.cpu,
            entitled_share: None,
            max_wait_ns: None,
            wake_p99_ns: None,
            migrations: None,
            migrations_cross_llc: None,
            migrations_cross_node: None,
        })
        .collect()
}

fn totals(r: &SpinResult) -> Totals {
    let units: u64 = r.tasks.iter().map(|t| t.units).sum();
    let runtime_ns: u64 = r.tasks.iter().map(|t| t.runtime_ns).sum();
    let secs = r.elapsed_ns as f64 / 1e9;
    Totals {
        units,
        runtime_ns,
        units_per_sec: if secs > 0.0 { units as f64 / secs } else { 0.0 },
        switches: r.tasks.iter().map(|t| t.switches).sum(),
        preempt_point_ns: (r.preempt_point_ps > 0).then(|| r.preempt_point_ps as f64 / 1000.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use abi::config::OperationConfig;
    use abi::kstate::EV_SPAWN;
    use guest_protocol::SpinTask;

    fn args(extra: &[&str]) -> SpinArgs {
        let mut argv = vec!["schedlab", "spin"];
        argv.extend_from_slice(extra);
        let a: crate::operations::spin::SpinArgs = crate::parse_args(&argv);
        a
    }

    #[test]
    fn task_count_is_bounded_with_the_documented_message() {
        for bad in ["0", "500", "-1"] {
            let err = args(&["--tasks", bad]).plan(4).unwrap_err();
            assert_eq!(
                err.message,
                format!("--tasks must be between 1 and 128 (the core's limit for spin), got {bad}")
            );
            assert_eq!(err.exit_code(), 64);
        }
        assert_eq!(args(&[]).plan(4).unwrap().tasks, 4);
        assert_eq!(args(&["--tasks", "128"]).plan(4).unwrap().tasks, 128);
        // A per-task list says how many tasks there are.
        let n = |a: &[&str]| args(a).plan(4).map(|p| p.tasks).map_err(|e| e.message);
        assert_eq!(n(&["--nice", "0,5,-5"]), Ok(3));
        assert_eq!(n(&["--weights", "1,1,10"]), Ok(3));
        assert_eq!(n(&["--affinity", "0/1"]), Ok(2));
        assert_eq!(n(&["--nice", "5"]), Ok(4), "one value is for all tasks");
        assert_eq!(
            n(&["--weights", "1,2", "--affinity", "0/1/2"]).map_err(|e| e.starts_with("--weights")),
            Err(true)
        );
        assert!(n(&["--tasks", "2", "--nice", "0,5,-5"]).is_err());
    }

    #[test]
    fn weights_are_one_for_all_or_one_each() {
        assert_eq!(
            args(&["--tasks", "3", "--weights", "2"])
                .plan(4)
                .unwrap()
                .weights,
            [2, 2, 2]
        );
        assert_eq!(
            args(&["--tasks", "3", "--weights", "1,1,4"])
                .plan(4)
                .unwrap()
                .weights,
            [1, 1, 4]
        );
        assert!(
            args(&["--tasks", "3", "--weights", "1,4"])
                .plan(4)
                .unwrap_err()
                .message
                .contains("one per task (3)")
        );
        assert!(
            args(&["--weights", "0"])
                .plan(4)
                .unwrap_err()
                .message
                .starts_with("--weights")
        );
        assert!(
            args(&["--weights", "x"])
                .plan(4)
                .unwrap_err()
                .message
                .starts_with("--weights")
        );
        assert!(args(&["--weights", "-1"]).plan(4).is_err());
    }

    #[test]
    fn config_carries_the_plan() {
        let plan = args(&["--tasks", "3", "--weights", "1,2,3", "--test-fault", "null"])
            .plan(4)
            .unwrap();
        let c = plan.config(7_000_000);
        assert_eq!(
            (c.tasks, c.duration_ns, c.test_fault),
            (3, 7_000_000, TEST_FAULT_NULL)
        );
        assert_eq!(&c.weights[..4], &[1, 2, 3, 1]);
        assert_eq!(SpinConfig::from_bytes(c.as_bytes()), Some(c));
    }

    #[test]
    fn summary_computes_shares_and_flags_missing_results() {
        let plan = args(&["--tasks", "2"]).plan(4).unwrap();
        let mut out = RunOutcome {
            finished: true,
            ..Default::default()
        };
        assert_eq!(
            summarize(&plan, &out).failure.unwrap().kind,
            ErrorKind::MissingResult
        );
        let mut r = SpinResult {
            elapsed_ns: 2_000_000_000,
            ..Default::default()
        };
        for (pid, units, runtime) in [(2, 100, 300), (3, 300, 100)] {
            let t = SpinTask {
                pid,
                units,
                runtime_ns: runtime,
                weight: 1,
                ..Default::default()
            };
            r.tasks.push(t).unwrap();
        }
        out.results.push(Msg::SpinResult(r));
        let s = summarize(&plan, &out);
        assert!(s.failure.is_none());
        assert_eq!(s.tasks[0].share, 0.75);
        let t = s.totals.unwrap();
        assert_eq!((t.units, t.runtime_ns, t.units_per_sec), (400, 400, 200.0));
    }

    #[test]
    fn affinity_is_validated_against_the_cpu_count_and_reaches_the_config() {
        let plan = args(&["--tasks", "3", "--affinity", "0/1/2-3"])
            .plan(4)
            .unwrap();
        assert_eq!(plan.affinity, [1, 2, 0b1100]);
        let c = plan.config(1);
        assert_eq!(&c.affinity[..4], &[1, 2, 0b1100, 0]);
        let e = args(&["--tasks", "2", "--affinity", "3"])
            .plan(2)
            .unwrap_err();
        assert!(e.message.starts_with("--affinity: '3' names CPU 3"), "{e}");
        assert_eq!(args(&[]).plan(1).unwrap().affinity, [0; 4]);
    }

    #[test]
    fn judged_tasks_come_from_the_result_or_else_the_spawns() {
        let plan = args(&["--tasks", "2", "--weights", "1,4", "--affinity", "0-1/1"])
            .plan(2)
            .unwrap();
        let mut r = SpinResult::default();
        for pid in [7, 9] {
            r.tasks
                .push(SpinTask {
                    pid,
                    ..Default::default()
                })
                .unwrap();
        }
        let from_result = plan.judged(Some(&r), &[]);
        assert_eq!(
            from_result,
            [
                TaskMeta {
                    pid: 7,
                    weight: 1,
                    affinity_cpus: 2
                },
                TaskMeta {
                    pid: 9,
                    weight: 4,
                    affinity_cpus: 1
                }
            ]
        );
        let spawn = |tsc, pid| Event {
            tsc,
            kind: EV_SPAWN,
            pid,
            ..Default::default()
        };
        // Out of order in the buffer; main (pid 1) spawned first.
        let events = [spawn(30, 3), spawn(10, 1), spawn(20, 2)];
        let from_events = plan.judged(None, &events);
        assert_eq!(
            from_events
                .iter()
                .map(|t| (t.pid, t.weight))
                .collect::<Vec<_>>(),
            [(2, 1), (3, 4)]
        );
        assert!(plan.judged(None, &[]).is_empty());
    }
}
