//! `schedlab periodic`: tasks that wake every period, run a fixed amount
//! of CPU work and should finish within a deadline (rt-app's periodic
//! phase). The guest records each activation's latency and counts the
//! jobs that finished late; the verdict checks the misses against
//! `--max-misses` (and the worst task's p99 latency against
//! `--max-wake-p99` when given). The utilisation the tasks ask for,
//! sum(runtime / period) / CPUs, is in the headline: above 100 % misses
//! are unavoidable, well below it a good scheduler has none.

use super::Summary;
use super::common::{self, latency_json};
use crate::settings::{CommonArgs, RunSettings, parse_duration};
use abi::config::{PERIODIC_MAGIC, PERIODIC_MAX_TASKS, PeriodicConfig};
use analysis::Check;
use clap::Args;
use guest_protocol::{LatencyStats, Msg, PeriodicResult};
use serde_json::json;
use vmm::exit::{Failure, Result};
use vmm::vm::run::RunOutcome;
use zerocopy::IntoBytes;

/// Longest period (and so deadline and runtime) accepted.
const MAX_PERIOD_NS: u64 = 60_000_000_000;

#[derive(Debug, Clone, Args)]
// Shares are not judged (the tasks ask for different amounts of CPU);
// --max-wake-p99 applies to the activation latency the guest measures.
#[command(
    mut_arg("duration", |a| a.default_value("500ms")),
    mut_arg("max_fairness_error", |a| a.hide(true)),
    mut_arg("max_wake_p99", |a| a.help(
        "Largest allowed p99 activation latency of any task, e.g. 2ms [default: off]"
    ))
)]
pub struct PeriodicArgs {
    /// Periodic tasks (1..32) [default: the length of the longest list
    /// given to --period, --runtime or --deadline, else 2].
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub tasks: Option<i64>,
    /// Activation period: one for all tasks or one per task, e.g.
    /// 10ms,20ms. Tasks sleep until each activation; a sleep ends on time
    /// while a CPU runs (or polls idle: --idle poll), and at the next tick
    /// (--tick-hz) on a halted idle CPU.
    #[arg(
        long,
        value_name = "DUR[,DUR...]",
        default_value = "10ms",
        allow_hyphen_values = true
    )]
    pub period: String,
    /// CPU time each activation runs (one for all tasks or one per task);
    /// the task measures its own running time, so time it spends preempted
    /// does not count.
    #[arg(
        long,
        value_name = "DUR[,DUR...]",
        default_value = "2ms",
        allow_hyphen_values = true
    )]
    pub runtime: String,
    /// Time after each activation by which its work must be done (one for
    /// all tasks or one per task; runtime <= deadline <= period)
    /// [default: the period].
    #[arg(long, value_name = "DUR[,DUR...]", allow_hyphen_values = true)]
    pub deadline: Option<String>,
    /// Fixed priority of each task (one for all or one per task), for
    /// fixed-priority policies (`fp`): a whole number from 1 to
    /// 1000000, HIGHER RUNS FIRST (as Linux's SCHED_FIFO priorities).
    /// Without it, `fp` orders tasks by period (rate-monotonic); tasks
    /// given a priority rank above tasks ordered by period. Passed to the
    /// policy as the task's `rt_priority`.
    #[arg(long, value_name = "N[,N...]", allow_hyphen_values = true)]
    pub priority: Option<String>,
    /// Pin each task to one CPU (one for all or one per task), e.g.
    /// --pin 0,0,1: tasks 0 and 1 may run only on CPU 0, task 2 only on
    /// CPU 1 (partitioned scheduling) [default: any CPU].
    #[arg(long, value_name = "CPU[,CPU...]", allow_hyphen_values = true)]
    pub pin: Option<String>,
    /// Deadline misses (all tasks together) the verdict allows ("off": do
    /// not judge them).
    #[arg(
        long,
        value_name = "N|off",
        default_value = "0",
        allow_hyphen_values = true
    )]
    pub max_misses: String,
    #[command(flatten)]
    pub common: CommonArgs,
}

/// One periodic task as asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaskSpec {
    pub period_ns: u64,
    pub runtime_ns: u64,
    pub deadline_ns: u64,
    /// Fixed priority, higher first; 0 = none given.
    pub priority: u32,
    /// The one CPU it is pinned to, if any.
    pub pin: Option<u32>,
}

/// Largest `--priority` accepted.
pub const MAX_PRIORITY: u32 = 1_000_000;

/// Validated `periodic` flags.
#[derive(Debug, Clone, PartialEq)]
pub struct PeriodicPlan {
    pub tasks: Vec<TaskSpec>,
    pub max_misses: Option<u64>,
}

/// A comma-separated list of whole numbers in `min..=max`.
fn parse_numbers(flag: &str, text: &str, min: u32, max: u32, what: &str) -> Result<Vec<u64>> {
    text.split(',')
        .map(|part| match part.trim().parse::<u32>() {
            Ok(v) if (min..=max).contains(&v) => Ok(u64::from(v)),
            _ => Err(Failure::usage(format!(
                "{flag}: '{part}' is not {what} (a whole number from {min} to {max})"
            ))),
        })
        .collect()
}

fn parse_list(flag: &str, text: &str) -> Result<Vec<u64>> {
    text.split(',')
        .map(|part| parse_duration(flag, part, 1_000, MAX_PERIOD_NS))
        .collect()
}

/// A list of one value (for every task) or `tasks` values.
fn spread(flag: &str, list: Vec<u64>, tasks: usize) -> Result<Vec<u64>> {
    match list.len() {
        1 => Ok(vec![list[0]; tasks]),
        n if n == tasks => Ok(list),
        n => Err(Failure::usage(format!(
            "{flag}: give one value for all tasks or one per task ({tasks}), got {n}"
        ))),
    }
}

impl PeriodicArgs {
    pub fn plan(&self) -> Result<PeriodicPlan> {
        let period = parse_list("--period", &self.period)?;
        let runtime = parse_list("--runtime", &self.runtime)?;
        let deadline = match &self.deadline {
            Some(t) => Some(parse_list("--deadline", t)?),
            None => None,
        };
        let priority = match &self.priority {
            Some(t) => Some(parse_numbers(
                "--priority",
                t,
                1,
                MAX_PRIORITY,
                "a priority",
            )?),
            None => None,
        };
        let pin = match &self.pin {
            Some(t) => Some(parse_numbers(
                "--pin",
                t,
                0,
                abi::memmap::MAX_CPUS as u32 - 1,
                "a CPU number",
            )?),
            None => None,
        };
        let longest = [
            period.len(),
            runtime.len(),
            deadline.as_ref().map_or(1, Vec::len),
            priority.as_ref().map_or(1, Vec::len),
            pin.as_ref().map_or(1, Vec::len),
        ]
        .into_iter()
        .max()
        .unwrap_or(1);
        let default_tasks = if longest > 1 { longest as i64 } else { 2 };
        let n = common::count(
            "--tasks",
            self.tasks.unwrap_or(default_tasks),
            1,
            PERIODIC_MAX_TASKS as u32,
            "",
        )? as usize;
        let period = spread("--period", period, n)?;
        let runtime = spread("--runtime", runtime, n)?;
        let deadline = match deadline {
            Some(d) => spread("--deadline", d, n)?,
            None => period.clone(),
        };
        let priority = match priority {
            Some(p) => spread("--priority", p, n)?,
            None => vec![0; n],
        };
        let pin = match pin {
            Some(p) => spread("--pin", p, n)?.into_iter().map(Some).collect(),
            None => vec![None; n],
        };
        let mut tasks = Vec::with_capacity(n);
        for i in 0..n {
            let t = TaskSpec {
                period_ns: period[i],
                runtime_ns: runtime[i],
                deadline_ns: deadline[i],
                priority: priority[i] as u32,
                pin: pin[i].map(|c| c as u32),
            };
            if t.runtime_ns > t.deadline_ns || t.deadline_ns > t.period_ns {
                return Err(Failure::usage(format!(
                    "task {i}: need --runtime <= --deadline <= --period, got runtime {}, \
                     deadline {}, period {}",
                    crate::settings::fmt_ns(t.runtime_ns),
                    crate::settings::fmt_ns(t.deadline_ns),
                    crate::settings::fmt_ns(t.period_ns)
                )));
            }
            tasks.push(t);
        }
        let max_misses = match self.max_misses.trim() {
            "off" | "none" => None,
            t => Some(t.parse::<u64>().map_err(|_| {
                Failure::usage(format!(
                    "--max-misses: '{t}' is not a whole number or off (e.g. --max-misses 0)"
                ))
            })?),
        };
        Ok(PeriodicPlan { tasks, max_misses })
    }
}

impl PeriodicPlan {
    pub fn config(&self, duration_ns: u64) -> PeriodicConfig {
        let mut c = PeriodicConfig::new(duration_ns);
        c.tasks = self.tasks.len() as u32;
        for (i, t) in self.tasks.iter().enumerate() {
            c.period_ns[i] = t.period_ns;
            c.runtime_ns[i] = t.runtime_ns;
            c.deadline_ns[i] = t.deadline_ns;
            c.priority[i] = t.priority;
            c.affinity[i] = t.pin.map_or(0, |cpu| 1u64 << cpu);
        }
        c
    }

    /// `--pin` names only CPUs the run has.
    pub fn check_pins(&self, cpus: u32) -> Result<()> {
        match self
            .tasks
            .iter()
            .enumerate()
            .find_map(|(i, t)| t.pin.filter(|&c| c >= cpus).map(|c| (i, c)))
        {
            Some((i, c)) => Err(Failure::usage(format!(
                "--pin: task {i} is pinned to CPU {c}, but the run has {cpus} CPU{} (0..{})",
                if cpus == 1 { "" } else { "s" },
                cpus - 1
            ))),
            None => Ok(()),
        }
    }

    /// Demand per CPU for the tasks pinned to `cpu`.
    pub fn pinned_utilisation(&self, cpu: u32) -> f64 {
        self.tasks
            .iter()
            .filter(|t| t.pin == Some(cpu))
            .map(|t| t.runtime_ns as f64 / t.period_ns as f64)
            .sum()
    }

    /// sum(runtime / period): CPUs' worth of work the tasks ask for.
    pub fn demand(&self) -> f64 {
        self.tasks
            .iter()
            .map(|t| t.runtime_ns as f64 / t.period_ns as f64)
            .sum()
    }

    /// Demand per CPU: above 1, deadlines cannot all be met.
    pub fn utilisation(&self, cpus: u32) -> f64 {
        self.demand() / f64::from(cpus.max(1))
    }
}

/// The `periodic` operation.
pub struct Periodic;

impl super::Operation for Periodic {
    const NAME: &'static str = "periodic";
    const ABOUT: &'static str = "Periodic tasks with a runtime and a deadline (like rt-app): \
                                 activation latency and deadline misses per task";
    const CONFIG_MAGIC: u32 = PERIODIC_MAGIC;
    type Args = PeriodicArgs;
    /// The plan and the wake-up p99 limit its check uses.
    type Plan = (PeriodicPlan, Option<u64>);

    fn plan(args: &PeriodicArgs, _: &clap::ArgMatches) -> Result<(Self::Plan, RunSettings)> {
        let settings = args.common.validate()?;
        let plan = args.plan()?;
        plan.check_pins(settings.sched.cpus)?;
        Ok(((plan, settings.judge.max_wake_p99_ns), settings))
    }

    fn config((plan, _): &Self::Plan, s: &RunSettings) -> Vec<u8> {
        plan.config(s.duration_ns).as_bytes().to_vec()
    }

    fn config_json((plan, _): &Self::Plan, s: &RunSettings) -> serde_json::Value {
        let ms = |v: &dyn Fn(&TaskSpec) -> u64| -> Vec<u64> { plan.tasks.iter().map(v).collect() };
        json!({
            "tasks": plan.tasks.len(),
            "duration_ns": s.duration_ns,
            "period_ns": ms(&|t| t.period_ns),
            "runtime_ns": ms(&|t| t.runtime_ns),
            "deadline_ns": ms(&|t| t.deadline_ns),
            "priority": plan.tasks.iter().map(|t| t.priority).collect::<Vec<_>>(),
            "pin": plan.tasks.iter().map(|t| t.pin).collect::<Vec<_>>(),
            "demand_cpus": plan.demand(),
            "utilisation": plan.utilisation(s.sched.cpus),
            "max_misses": plan.max_misses,
        })
    }

    fn headline((plan, _): &Self::Plan, s: &RunSettings) -> String {
        let cpus = s.sched.cpus;
        let n = plan.tasks.len();
        format!(
            "periodic: {n} task{} for {}, utilisation {:.1} % of {cpus} vCPU{} \
             (sum of runtime/period {:.3}), {}",
            if n == 1 { "" } else { "s" },
            crate::settings::fmt_ns(s.duration_ns),
            plan.utilisation(cpus) * 100.0,
            if cpus == 1 { "" } else { "s" },
            plan.demand(),
            common::machine(s)
        )
    }

    fn summarize((plan, max_wake_p99): &Self::Plan, out: &RunOutcome) -> Summary {
        summarize(plan, *max_wake_p99, out)
    }
}

pub fn summarize(plan: &PeriodicPlan, max_wake_p99_ns: Option<u64>, out: &RunOutcome) -> Summary {
    let result = out.results.iter().rev().find_map(|m| match m {
        Msg::PeriodicResult(r) => Some(r),
        _ => None,
    });
    let mut s = Summary {
        failure: common::result_failure(out, "periodic", result.is_some()),
        ..Summary::default()
    };
    let Some(r) = result else {
        return s;
    };
    if s.failure.is_none() && r.tasks.len() != plan.tasks.len() {
        s.failure = Some(Failure::new(
            vmm::exit::ErrorKind::MissingResult,
            format!(
                "the guest reported {} periodic tasks, but {} were asked for",
                r.tasks.len(),
                plan.tasks.len()
            ),
        ));
    }
    let activations: u64 = r.tasks.iter().map(|t| t.activations).sum();
    let misses: u64 = r.tasks.iter().map(|t| t.misses).sum();
    let cpus = (out.vcpu_host.len() as u32).max(1);
    let overflow = overhead_overflow(plan, r, cpus);
    let excused = |t: &guest_protocol::PeriodicTask| {
        if overflow.is_some() {
            t.misses
        } else {
            away_misses(t)
        }
    };
    let away: u64 = r.tasks.iter().map(excused).sum();
    s.elapsed_ns = Some(r.elapsed_ns);
    s.extra = Some(json!({
        "demand_cpus": plan.demand(),
        "activations": activations,
        "misses": misses,
        "away_misses": away,
        "overhead_overflow": overflow.map(|(need, cap)| json!({"needed_cpus": need, "cpus": cap})),
        "elapsed_ns": r.elapsed_ns,
        "tasks": r.tasks.iter().map(|t| json!({
            "pid": t.pid,
            "period_ns": t.period_ns,
            "runtime_ns": t.runtime_ns,
            "deadline_ns": t.deadline_ns,
            "activations": t.activations,
            "misses": t.misses,
            "away_misses": excused(t),
            "lost_ns": t.lost_ns,
            "waited_ns": t.waited_ns,
            "priority": t.priority,
            "affinity": t.affinity,
            "ran_on": t.ran_on,
            "latency": latency_json(&t.latency().copied().unwrap_or_default()),
            "response": latency_json(&t.response().copied().unwrap_or_default()),
        })).collect::<Vec<_>>(),
    }));
    s.lines = lines(r);
    s.checks = checks(plan, r, max_wake_p99_ns, away);
    if let (Some((need, cap)), Some(c)) = (
        overflow,
        s.checks
            .iter_mut()
            .find(|c| c.name == "periodic_deadline_misses"),
    ) {
        c.detail.push_str(&format!(
            "; the tasks ask for {:.2} CPUs of {cap}, but with the time interrupts and the host \
             took from their jobs (lost_ns) they needed {need:.2}: no miss is evidence against \
             the policy (a lower --tick-hz takes less of the CPU)",
            plan.demand()
        ));
    }
    s
}

/// When a set that fits its CPUs does not fit once the time taken from
/// its jobs is added (`lost_ns`: interrupts, exits, the host; 7-8 % of a
/// busy vCPU at a 1 kHz tick on this PVM host), (CPUs' worth needed, CPUs
/// there) for the group that overflowed: the whole machine, or a CPU the
/// tasks pinned to it. Then every miss is the overhead's, whatever the
/// policy: an overloaded CPU misses deadlines under any scheduler.
fn overhead_overflow(plan: &PeriodicPlan, r: &PeriodicResult, cpus: u32) -> Option<(f64, u32)> {
    let elapsed = r.elapsed_ns.max(1) as f64;
    // The guest's rows, matched to the plan's tasks by position (the
    // count was checked; a short result simply covers fewer tasks).
    let load = |keep: &dyn Fn(&TaskSpec) -> bool| -> (f64, f64) {
        plan.tasks
            .iter()
            .zip(&r.tasks)
            .filter(|(spec, _)| keep(spec))
            .fold((0.0, 0.0), |(d, l), (spec, t)| {
                let u = spec.runtime_ns as f64 / spec.period_ns as f64;
                (d + u, l + u + t.lost_ns as f64 / elapsed)
            })
    };
    let over = |(demand, with_lost): (f64, f64), cap: f64| demand <= cap && with_lost > cap;
    for cpu in 0..cpus {
        let l = load(&|s: &TaskSpec| s.pin == Some(cpu));
        if over(l, 1.0) {
            return Some((l.1, 1));
        }
    }
    let all = load(&|_: &TaskSpec| true);
    over(all, f64::from(cpus)).then_some((all.1, cpus))
}

/// A task's misses that time away explains (see the guest's
/// `PeriodicTask::away_misses`), never more than its misses: the guest's
/// word is not trusted.
fn away_misses(t: &guest_protocol::PeriodicTask) -> u64 {
    t.away_misses.min(t.misses)
}

fn lines(r: &PeriodicResult) -> Vec<String> {
    let ms = |ns: u64| format!("{:.3}", ns as f64 / 1e6);
    let mut l = vec![format!(
        "{:>5} {:>9} {:>9} {:>9} {:>5} {:>11} {:>7} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "pid",
        "period",
        "runtime",
        "deadline",
        "prio",
        "activations",
        "misses",
        "lat p50",
        "lat p99",
        "lat max",
        "resp p50",
        "resp p99",
        "resp max"
    )];
    for t in &r.tasks {
        let lat = t.latency().copied().unwrap_or_default();
        let resp = t.response().copied().unwrap_or_default();
        let prio = match t.priority {
            0 => "-".to_string(),
            p => p.to_string(),
        };
        l.push(format!(
            "{:>5} {:>9} {:>9} {:>9} {:>5} {:>11} {:>7} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
            t.pid,
            ms(t.period_ns),
            ms(t.runtime_ns),
            ms(t.deadline_ns),
            prio,
            t.activations,
            t.misses,
            ms(lat.p50_ns),
            ms(lat.p99_ns),
            ms(lat.max_ns),
            ms(resp.p50_ns),
            ms(resp.p99_ns),
            ms(resp.max_ns)
        ));
    }
    l.push(
        "(times in ms; lat: activation -> running, up to a tick more on a halted idle CPU; \
         resp: activation -> job done)"
            .into(),
    );
    l
}

/// The task with the highest p99 activation latency.
fn worst_latency(r: &PeriodicResult) -> Option<(u32, LatencyStats)> {
    r.tasks
        .iter()
        .filter_map(|t| t.latency().map(|l| (t.pid, *l)))
        .max_by_key(|(_, l)| l.p99_ns)
}

fn checks(
    plan: &PeriodicPlan,
    r: &PeriodicResult,
    max_wake_p99_ns: Option<u64>,
    away: u64,
) -> Vec<Check> {
    let mut c = Vec::new();
    let activations: u64 = r.tasks.iter().map(|t| t.activations).sum();
    let misses: u64 = r.tasks.iter().map(|t| t.misses).sum();
    if let Some(limit) = plan.max_misses {
        let worst = r.tasks.iter().max_by_key(|t| t.misses);
        let mut detail = format!(
            "{misses} of {activations} activations finished past their deadline (limit {limit})"
        );
        if let Some(t) = worst.filter(|t| t.misses > 0) {
            detail.push_str(&format!(
                "; most: task {} missed {} of {}",
                t.pid, t.misses, t.activations
            ));
        }
        if away > 0 {
            detail.push_str(&format!(
                "; {away} by jobs that time taken from them by interrupts or the host (away, \
                 not waiting for a CPU) made late"
            ));
        }
        c.push(Check {
            name: "periodic_deadline_misses".into(),
            value: misses as f64,
            limit: limit as f64,
            passed: misses <= limit,
            detail,
            judged: true,
        });
    }
    if let Some((pid, l)) = worst_latency(r) {
        c.extend(common::latency_check(
            "max_wake_p99_ns",
            &format!("activation latency (worst task {pid})"),
            &l,
            max_wake_p99_ns,
        ));
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use abi::config::OperationConfig;
    use guest_protocol::PeriodicTask;

    fn args(extra: &[&str]) -> PeriodicArgs {
        let mut argv = vec!["schedlab", "periodic"];
        argv.extend_from_slice(extra);
        let a: crate::operations::periodic::PeriodicArgs = crate::parse_args(&argv);
        a
    }

    fn spec(period_ms: u64, runtime_ms: u64, deadline_ms: u64) -> TaskSpec {
        TaskSpec {
            period_ns: period_ms * 1_000_000,
            runtime_ns: runtime_ms * 1_000_000,
            deadline_ns: deadline_ms * 1_000_000,
            priority: 0,
            pin: None,
        }
    }

    #[test]
    fn priorities_and_pins_reach_the_config() {
        let p = args(&["--period", "10ms,40ms", "--priority", "1,5", "--pin", "1,0"])
            .plan()
            .unwrap();
        assert_eq!((p.tasks[0].priority, p.tasks[1].priority), (1, 5));
        assert_eq!((p.tasks[0].pin, p.tasks[1].pin), (Some(1), Some(0)));
        let c = p.config(1_000_000);
        assert_eq!((c.priority[0], c.priority[1]), (1, 5));
        assert_eq!((c.affinity[0], c.affinity[1], c.affinity[2]), (2, 1, 0));
        assert!(p.check_pins(2).is_ok());
        let e = p.check_pins(1).unwrap_err();
        assert_eq!(e.exit_code(), 64);
        assert!(
            e.message.starts_with("--pin: task 0 is pinned to CPU 1"),
            "{}",
            e.message
        );
        assert!((p.pinned_utilisation(0) - 0.05).abs() < 1e-12);
        let p = args(&["--tasks", "3", "--pin", "1"]).plan().unwrap();
        assert!(p.tasks.iter().all(|t| t.pin == Some(1)));
        let p = args(&["--period", "10ms"]).plan().unwrap();
        assert_eq!(p.config(1).affinity[0], 0, "unpinned: any CPU");
    }

    #[test]
    fn defaults_one_value_for_all_or_one_per_task() {
        let a = args(&[]);
        assert_eq!(a.common.validate().unwrap().duration_ns, 500_000_000);
        let p = a.plan().unwrap();
        assert_eq!(p.tasks, vec![spec(10, 2, 10); 2]);
        assert_eq!(p.max_misses, Some(0));
        assert!((p.utilisation(1) - 0.4).abs() < 1e-12);
        assert!((p.utilisation(2) - 0.2).abs() < 1e-12);

        let p = args(&["--period", "10ms,20ms,40ms", "--runtime", "1ms"])
            .plan()
            .unwrap();
        assert_eq!(
            p.tasks,
            vec![spec(10, 1, 10), spec(20, 1, 20), spec(40, 1, 40)]
        );
        let p = args(&["--tasks", "2", "--deadline", "5ms,8ms"])
            .plan()
            .unwrap();
        assert_eq!(p.tasks, vec![spec(10, 2, 5), spec(10, 2, 8)]);
        let c = p.config(1_000_000);
        assert_eq!(
            (c.tasks, c.deadline_ns[1], c.deadline_ns[2]),
            (2, 8_000_000, 0)
        );
        assert_eq!(PeriodicConfig::from_bytes(c.as_bytes()), Some(c));
    }

    #[test]
    fn bad_values_name_their_flag() {
        let m = |a: &[&str]| args(a).plan().unwrap_err().message;
        assert!(m(&["--tasks", "3", "--period", "1ms,2ms"]).starts_with("--period: give one"));
        assert!(m(&["--tasks", "33"]).starts_with("--tasks must be between 1 and 32"));
        assert!(m(&["--period", "10"]).starts_with("--period: '10' has no unit"));
        assert!(m(&["--runtime", "20ms"]).contains("need --runtime <= --deadline <= --period"));
        assert!(m(&["--deadline", "1ms"]).starts_with("task 0: need"));
        assert!(m(&["--max-misses", "x"]).starts_with("--max-misses: 'x'"));
        assert!(m(&["--priority", "0"]).starts_with("--priority: '0' is not a priority"));
        assert!(m(&["--tasks", "2", "--priority", "1,2,3"]).starts_with("--priority: give one"));
        assert!(m(&["--pin", "-1"]).starts_with("--pin: '-1' is not a CPU number"));
        assert_eq!(
            args(&["--max-misses", "off"]).plan().unwrap().max_misses,
            None
        );
    }

    fn result(misses: &[u64], p99_ns: u64) -> PeriodicResult {
        let mut r = PeriodicResult {
            elapsed_ns: 500_000_000,
            ..Default::default()
        };
        for (i, &m) in misses.iter().enumerate() {
            let mut t = PeriodicTask {
                pid: 2 + i as u32,
                period_ns: 10_000_000,
                runtime_ns: 2_000_000,
                deadline_ns: 10_000_000,
                activations: 50,
                misses: m,
                ..Default::default()
            };
            t.set_latency(LatencyStats {
                count: 50,
                p50_ns: p99_ns / 4,
                p99_ns: p99_ns * (i as u64 + 1),
                max_ns: p99_ns * 2 * (i as u64 + 1),
                mean_ns: p99_ns / 3,
                ..Default::default()
            });
            r.tasks.push(t).unwrap();
        }
        r
    }

    #[test]
    fn a_set_the_overhead_overflows_blames_no_miss_on_the_policy() {
        // 2 tasks of 2/10 ms and 9/20 ms on 1 CPU: demand 0.65; with 0.25
        // lost from each task's jobs the CPU needed 1.15.
        let plan = args(&["--period", "10ms,20ms", "--runtime", "2ms,9ms"])
            .plan()
            .unwrap();
        let mut r = result(&[3, 5], 500_000);
        for t in r.tasks.iter_mut() {
            t.lost_ns = 125_000_000;
        }
        assert_eq!(overhead_overflow(&plan, &r, 1).map(|(_, c)| c), Some(1));
        let need = overhead_overflow(&plan, &r, 1).unwrap().0;
        assert!((need - 1.15).abs() < 1e-9, "{need}");
        // Two CPUs hold it, lost time and all; a set over its CPUs by its
        // own demand is the schedule's, not the overhead's.
        assert_eq!(overhead_overflow(&plan, &r, 2), None);
        let heavy = args(&["--period", "10ms", "--runtime", "8ms", "--tasks", "2"])
            .plan()
            .unwrap();
        assert_eq!(overhead_overflow(&heavy, &r, 1), None);
        // A pinned CPU overflows on its own.
        let pinned = args(&[
            "--period",
            "10ms,20ms",
            "--runtime",
            "2ms,9ms",
            "--pin",
            "1,1",
        ])
        .plan()
        .unwrap();
        assert_eq!(overhead_overflow(&pinned, &r, 2).map(|(_, c)| c), Some(1));
        // The summary then counts every miss as the overhead's.
        let mut out = RunOutcome {
            finished: true,
            vcpu_host: vec![(0, Default::default())],
            ..Default::default()
        };
        out.results.push(Msg::PeriodicResult(r));
        let s = summarize(&plan, None, &out);
        let x = s.extra.unwrap();
        assert_eq!(
            (x["misses"].as_u64(), x["away_misses"].as_u64()),
            (Some(8), Some(8))
        );
        let c = s
            .checks
            .iter()
            .find(|c| c.name == "periodic_deadline_misses")
            .unwrap();
        assert!(
            c.detail.contains("no miss is evidence against the policy"),
            "{}",
            c.detail
        );
    }

    #[test]
    fn misses_and_latency_are_judged() {
        let plan = args(&[]).plan().unwrap();
        let mut out = RunOutcome {
            finished: true,
            ..Default::default()
        };
        out.results
            .push(Msg::PeriodicResult(result(&[0, 0], 500_000)));
        let s = summarize(&plan, Some(2_000_000), &out);
        assert!(s.failure.is_none());
        assert!(s.checks.iter().all(|c| c.passed), "{:?}", s.checks);
        assert_eq!(s.checks.len(), 2);
        assert!(
            s.checks[1].detail.contains("worst task 3"),
            "{:?}",
            s.checks[1]
        );
        assert_eq!(s.extra.as_ref().unwrap()["activations"], 100);
        assert_eq!(s.lines.len(), 4);

        out.results
            .push(Msg::PeriodicResult(result(&[3, 7], 1_500_000)));
        let s = summarize(&plan, Some(2_000_000), &out);
        assert!(!s.checks[0].passed);
        assert!(
            s.checks[0]
                .detail
                .starts_with("10 of 100 activations finished past their deadline (limit 0); most: task 3 missed 7 of 50"),
            "{}",
            s.checks[0].detail
        );
        assert!(!s.checks[1].passed, "worst p99 is 3 ms");
        assert!(summarize(&plan, None, &out).checks.len() == 1);

        out.results.push(Msg::PeriodicResult(result(&[0], 1)));
        assert!(
            summarize(&plan, None, &out)
                .failure
                .unwrap()
                .message
                .contains("reported 1 periodic tasks, but 2")
        );
    }
}
