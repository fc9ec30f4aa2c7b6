//! `schedlab schbench`: message tasks waking groups of workers (like
//! schbench, the wake-up benchmark scheduler developers quote most). In
//! rounds until --duration ends, each message task sends every one of its
//! workers a request; a worker notes its wake-up latency (the core's send
//! stamp to running), does --work of CPU work and replies; the message
//! task notes each request's latency (send to reply) and starts the next
//! round when all its workers have replied. Reports wake-up latency
//! p50/p90/p99/p99.9, request latency p50/p99 and requests per second.
//! Its verdict: requests were answered, every one the workers sent
//! arrived, every worker answered some, no task gave up, and the wake-up
//! p99 within --max-wakeup-p99 when one is given.
//!
//! Self-contained on purpose: its flags, their validation ([`prepare`]),
//! the config, the JSON config, the headline and [`summarize`] are all
//! here, so the module moves as one piece.

use super::Summary;
use super::common::{self, fmt_latency, latency_json};
use crate::settings::{CommonArgs, RunSettings, parse_duration};
use abi::config::{
    SCHBENCH_MAGIC, SCHBENCH_MAX_MESSAGE_THREADS, SCHBENCH_MAX_WORKERS, SchbenchConfig,
};
use abi::memmap::MAX_TASKS;
use analysis::Check;
use clap::Args;
use guest_protocol::{LatencyStats, Msg, SchbenchResult};
use serde_json::json;
use vmm::exit::{Failure, Result};
use vmm::vm::run::RunOutcome;
use zerocopy::IntoBytes;

/// Tasks schbench may start: the core's task table less the main task.
pub const MAX_TASKS_SPAWNED: u64 = MAX_TASKS as u64 - 1;
/// Longest --work accepted.
const MAX_WORK_NS: u64 = 1_000_000_000;

#[derive(Debug, Clone, Args)]
// Shares are not judged (workers ask for little CPU, message tasks for
// less), and the wake-up latency judged is the one the workers measure,
// under its own flag: the common --max-wake-p99 is hidden and refused.
#[command(
    mut_arg("max_fairness_error", |a| a.hide(true)),
    mut_arg("max_wake_p99", |a| a.hide(true)),
)]
pub struct SchbenchArgs {
    /// Message tasks, each with its own --workers.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 2,
        allow_negative_numbers = true
    )]
    pub message_threads: i64,
    /// Workers per message task. --message-threads x (1 + --workers) may
    /// be at most 255 (the guest kernel has 256 task slots; one is the
    /// main task).
    #[arg(
        long,
        value_name = "N",
        default_value_t = 4,
        allow_negative_numbers = true
    )]
    pub workers: i64,
    /// CPU work per request (the worker's think time), measured by the
    /// worker: time it spends preempted does not count. schbench's
    /// original default was 10ms (-c 10000); 100us keeps a round short,
    /// so a 200ms run collects thousands of wake-ups.
    #[arg(
        long,
        value_name = "DUR",
        default_value = "100us",
        allow_hyphen_values = true
    )]
    pub work: String,
    /// Largest allowed p99 wake-up latency the workers measure, e.g. 1ms
    /// [default: off].
    #[arg(long, value_name = "DUR|off", allow_hyphen_values = true)]
    pub max_wakeup_p99: Option<String>,
    #[command(flatten)]
    pub common: CommonArgs,
}

/// Validated `schbench` flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchbenchPlan {
    pub message_threads: u32,
    pub workers: u32,
    pub work_ns: u64,
    pub max_wakeup_p99_ns: Option<u64>,
}

impl SchbenchArgs {
    pub fn plan(&self) -> Result<SchbenchPlan> {
        let message_threads = common::count(
            "--message-threads",
            self.message_threads,
            1,
            SCHBENCH_MAX_MESSAGE_THREADS as u32,
            " (the guest's limit)",
        )?;
        let workers = common::count(
            "--workers",
            self.workers,
            1,
            SCHBENCH_MAX_WORKERS as u32,
            " (the guest's limit per message task)",
        )?;
        let plan = SchbenchPlan {
            message_threads,
            workers,
            work_ns: parse_duration("--work", &self.work, 1_000, MAX_WORK_NS)?,
            max_wakeup_p99_ns: common::limit("--max-wakeup-p99", self.max_wakeup_p99.as_deref())?,
        };
        let tasks = plan.config(1).tasks();
        if tasks > MAX_TASKS_SPAWNED {
            return Err(Failure::usage(format!(
                "--message-threads x (1 + --workers) is {message_threads} x (1 + {workers}) = \
                 {tasks} tasks, more than the {MAX_TASKS_SPAWNED} the guest kernel can run \
                 besides the main task: use fewer message threads or workers"
            )));
        }
        Ok(plan)
    }
}

impl SchbenchPlan {
    pub fn config(&self, duration_ns: u64) -> SchbenchConfig {
        SchbenchConfig::new(
            self.message_threads,
            self.workers,
            self.work_ns,
            duration_ns,
        )
    }

    pub fn total_workers(&self) -> u64 {
        u64::from(self.message_threads) * u64::from(self.workers)
    }
}

/// Flags to plan and settings. The default timeout also covers the round
/// a message task starts just before --duration ends: every worker's work
/// on one CPU.
pub fn prepare(args: &SchbenchArgs) -> Result<(SchbenchPlan, RunSettings)> {
    let mut settings = args.common.validate()?;
    if settings.judge.max_wake_p99_ns.is_some() {
        return Err(Failure::usage(
            "--max-wake-p99 judges the wake-ups the host sees, which schbench does not use: \
             use --max-wakeup-p99 (the wake-up latency its workers measure)",
        ));
    }
    let plan = args.plan()?;
    common::cover_work(
        &mut settings,
        args.common.timeout.is_some(),
        plan.total_workers().saturating_mul(plan.work_ns),
    );
    Ok((plan, settings))
}

/// The `schbench` operation.
pub struct Schbench;

impl super::Operation for Schbench {
    const NAME: &'static str = "schbench";
    const ABOUT: &'static str = "Message tasks waking groups of workers that compute and reply \
                                 (like schbench): wake-up and request latency, requests per second";
    const CONFIG_MAGIC: u32 = SCHBENCH_MAGIC;
    type Args = SchbenchArgs;
    type Plan = SchbenchPlan;

    fn plan(args: &SchbenchArgs, _: &clap::ArgMatches) -> Result<(SchbenchPlan, RunSettings)> {
        prepare(args)
    }

    fn config(plan: &SchbenchPlan, s: &RunSettings) -> Vec<u8> {
        plan.config(s.duration_ns).as_bytes().to_vec()
    }

    fn config_json(plan: &SchbenchPlan, s: &RunSettings) -> serde_json::Value {
        json!({
            "message_threads": plan.message_threads,
            "workers": plan.workers,
            "tasks": plan.config(s.duration_ns).tasks(),
            "work_ns": plan.work_ns,
            "duration_ns": s.duration_ns,
            "max_wakeup_p99_ns": plan.max_wakeup_p99_ns,
        })
    }

    fn headline(plan: &SchbenchPlan, s: &RunSettings) -> String {
        let fmt = crate::settings::fmt_ns;
        format!(
            "schbench: {} message task{} x {} worker{} ({} of work per request) for {}, {}",
            plan.message_threads,
            if plan.message_threads == 1 { "" } else { "s" },
            plan.workers,
            if plan.workers == 1 { "" } else { "s" },
            fmt(plan.work_ns),
            fmt(s.duration_ns),
            common::machine(s)
        )
    }

    fn summarize(plan: &SchbenchPlan, out: &RunOutcome) -> Summary {
        summarize(plan, out)
    }
}

/// "p50 1.0 µs, p90 ..., p99 ..., p99.9 ..., max ... (N samples)"
fn wakeup_text(l: &LatencyStats) -> String {
    format!(
        "p50 {}, p90 {}, p99 {}, p99.9 {}, max {} ({} samples)",
        fmt_latency(l.p50_ns),
        fmt_latency(l.p90_ns),
        fmt_latency(l.p99_ns),
        fmt_latency(l.p999_ns),
        fmt_latency(l.max_ns),
        l.count
    )
}

pub fn summarize(plan: &SchbenchPlan, out: &RunOutcome) -> Summary {
    let result = out.results.iter().rev().find_map(|m| match m {
        Msg::SchbenchResult(r) => Some(r),
        _ => None,
    });
    let mut s = Summary {
        failure: common::result_failure(out, "schbench", result.is_some()),
        ..Summary::default()
    };
    let Some(r) = result else {
        return s;
    };
    let wakeup = r.wakeup().copied().unwrap_or_default();
    let request = r.request().copied().unwrap_or_default();
    let (per_sec, per_sec_text) = common::rate(r.requests, r.elapsed_ns);
    s.elapsed_ns = Some(r.elapsed_ns);
    s.extra = Some(json!({
        "message_threads": r.message_threads,
        "workers": r.workers,
        "work_ns": r.work_ns,
        "wakeup": latency_json(&wakeup),
        "request": latency_json(&request),
        "requests": r.requests,
        "answered": r.answered,
        "rounds": r.rounds,
        "requests_per_sec": per_sec,
        "min_worker_requests": r.min_worker_requests,
        "max_worker_requests": r.max_worker_requests,
        "failed_tasks": r.failed_tasks,
        "elapsed_ns": r.elapsed_ns,
    }));
    s.lines = vec![
        format!("wake-up latency: {}", wakeup_text(&wakeup)),
        format!(
            "request latency: p50 {}, p99 {}, max {} ({} requests, {} of work each)",
            fmt_latency(request.p50_ns),
            fmt_latency(request.p99_ns),
            fmt_latency(request.max_ns),
            request.count,
            fmt_latency(r.work_ns)
        ),
        format!(
            "throughput: {per_sec_text} requests/s ({} requests in {} rounds, {:.3} ms)",
            r.requests,
            r.rounds,
            r.elapsed_ns as f64 / 1e6
        ),
    ];
    s.checks = checks(plan, r);
    s
}

fn checks(plan: &SchbenchPlan, r: &SchbenchResult) -> Vec<Check> {
    let workers = plan.total_workers();
    let mut c = vec![
        Check {
            name: "schbench_requests".into(),
            value: r.requests as f64,
            limit: r.answered as f64,
            passed: r.requests > 0 && r.requests == r.answered && r.failed_tasks == 0,
            detail: format!(
                "{} requests answered, {} replies sent by the workers, {} task{} gave up",
                r.requests,
                r.answered,
                r.failed_tasks,
                if r.failed_tasks == 1 { "" } else { "s" }
            ),
            judged: true,
        },
        Check {
            name: "schbench_workers_progressed".into(),
            value: r.min_worker_requests as f64,
            limit: 1.0,
            passed: r.min_worker_requests > 0,
            detail: format!(
                "each of the {workers} workers answered between {} and {} requests",
                r.min_worker_requests, r.max_worker_requests
            ),
            judged: true,
        },
    ];
    c.extend(common::latency_check(
        "max_wakeup_p99_ns",
        "worker wake-up latency",
        &r.wakeup().copied().unwrap_or_default(),
        plan.max_wakeup_p99_ns,
    ));
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use abi::config::OperationConfig;
    use vmm::exit::ErrorKind;

    fn args(extra: &[&str]) -> SchbenchArgs {
        let mut argv = vec!["schedlab", "schbench"];
        argv.extend_from_slice(extra);
        crate::parse_args(&argv)
    }

    #[test]
    fn defaults_and_bounds() {
        let p = args(&[]).plan().unwrap();
        assert_eq!(
            p,
            SchbenchPlan {
                message_threads: 2,
                workers: 4,
                work_ns: 100_000,
                max_wakeup_p99_ns: None
            }
        );
        let c = p.config(200_000_000);
        assert_eq!(SchbenchConfig::from_bytes(c.as_bytes()), Some(c));
        assert_eq!((c.tasks(), c.duration_ns), (10, 200_000_000));
        let m = |a: &[&str]| args(a).plan().unwrap_err().message;
        for (flag, bad) in [
            ("--message-threads", "0"),
            ("--message-threads", "17"),
            ("--workers", "0"),
            ("--workers", "129"),
        ] {
            let e = m(&[flag, bad]);
            assert!(
                e.starts_with(&format!("{flag} must be between 1 and")),
                "{e}"
            );
            assert!(e.ends_with(&format!("got {bad}")), "{e}");
        }
        assert!(m(&["--work", "0us"]).starts_with("--work: '0us'"));
        assert!(m(&["--work", "2s"]).contains("too long"));
        assert!(m(&["--max-wakeup-p99", "x"]).starts_with("--max-wakeup-p99: 'x'"));
        // 16 x (1 + 16) = 272 tasks: each flag is in range, the product not.
        let e = m(&["--message-threads", "16", "--workers", "16"]);
        assert!(e.contains("= 272 tasks, more than the 255"), "{e}");
        let p = args(&["--message-threads", "15", "--workers", "16"])
            .plan()
            .unwrap();
        assert_eq!(p.config(1).tasks(), 255);
        let p = args(&["--workers", "1", "--max-wakeup-p99", "2ms"])
            .plan()
            .unwrap();
        assert_eq!((p.workers, p.max_wakeup_p99_ns), (1, Some(2_000_000)));
    }

    #[test]
    fn the_hosts_wake_up_limit_is_refused_for_the_workers_own() {
        let e = prepare(&args(&["--max-wake-p99", "1ms"])).unwrap_err();
        assert_eq!(e.exit_code(), 64);
        assert!(e.message.contains("use --max-wakeup-p99"), "{e}");
        assert!(prepare(&args(&["--max-wake-p99", "off"])).is_ok());
        use crate::operations::{Entry, Registered};
        let help = Registered::<Schbench>::NEW
            .command()
            .render_long_help()
            .to_string();
        assert!(help.contains("--max-wakeup-p99") && help.contains("--message-threads"));
        for hidden in ["--max-wake-p99 <", "--max-fairness-error"] {
            assert!(!help.contains(hidden), "{hidden} shown: {help}");
        }
    }

    #[test]
    fn the_default_timeout_covers_a_last_round_of_long_work() {
        let (_, s) = prepare(&args(&[])).unwrap();
        assert_eq!(s.timeout, std::time::Duration::from_millis(5_400));
        // 8 workers x 1s of work, all on one CPU: 5s + 8s.
        let (_, s) = prepare(&args(&["--work", "1s"])).unwrap();
        assert_eq!(s.timeout, std::time::Duration::from_secs(13));
        let (_, s) = prepare(&args(&["--work", "1s", "--timeout", "2s"])).unwrap();
        assert_eq!(s.timeout, std::time::Duration::from_secs(2));
    }

    fn stats(count: u64, p50: u64, p99: u64) -> LatencyStats {
        LatencyStats {
            count,
            p50_ns: p50,
            p90_ns: (p50 + p99) / 2,
            p99_ns: p99,
            p999_ns: p99 * 2,
            max_ns: p99 * 3,
            mean_ns: p50,
        }
    }

    fn result(requests: u64, answered: u64, min_worker: u64, wake_p99: u64) -> SchbenchResult {
        let mut r = SchbenchResult {
            message_threads: 2,
            workers: 4,
            work_ns: 100_000,
            requests,
            answered,
            rounds: requests / 4,
            elapsed_ns: 200_000_000,
            min_worker_requests: min_worker,
            max_worker_requests: min_worker + 3,
            ..Default::default()
        };
        r.set_wakeup(stats(requests, wake_p99 / 4, wake_p99));
        r.set_request(stats(requests, 150_000, 400_000));
        r
    }

    #[test]
    fn requests_must_be_answered_by_every_worker_and_wake_ups_stay_under_the_limit() {
        let plan = args(&["--max-wakeup-p99", "50us"]).plan().unwrap();
        let mut out = RunOutcome {
            finished: true,
            ..Default::default()
        };
        assert_eq!(
            summarize(&plan, &out).failure.unwrap().kind,
            ErrorKind::MissingResult
        );
        out.results
            .push(Msg::SchbenchResult(result(2000, 2000, 240, 40_000)));
        let s = summarize(&plan, &out);
        assert!(s.failure.is_none());
        assert!(s.checks.iter().all(|c| c.passed), "{:?}", s.checks);
        let x = s.extra.unwrap();
        assert_eq!(x["requests_per_sec"], 10_000.0);
        assert_eq!(x["wakeup"]["p999_ns"], 80_000);
        assert_eq!(x["request"]["p50_ns"], 150_000);
        assert_eq!(
            s.lines[0],
            "wake-up latency: p50 10.0 µs, p90 25.0 µs, p99 40.0 µs, p99.9 80.0 µs, \
             max 120.0 µs (2000 samples)"
        );
        assert!(
            s.lines[2].starts_with("throughput: 10.00 k requests/s (2000 requests in 500 rounds")
        );

        let failed = |r: SchbenchResult| -> Vec<String> {
            let mut out = RunOutcome {
                finished: true,
                ..Default::default()
            };
            out.results.push(Msg::SchbenchResult(r));
            summarize(&plan, &out)
                .checks
                .into_iter()
                .filter(|c| !c.passed)
                .map(|c| c.name)
                .collect()
        };
        assert_eq!(
            failed(result(1999, 2000, 240, 40_000)),
            ["schbench_requests"]
        );
        assert_eq!(
            failed(result(0, 0, 0, 0)),
            ["schbench_requests", "schbench_workers_progressed"]
        );
        assert_eq!(
            failed(result(2000, 2000, 0, 40_000)),
            ["schbench_workers_progressed"]
        );
        assert_eq!(
            failed(result(2000, 2000, 240, 60_000)),
            ["max_wakeup_p99_ns"]
        );
        let mut gave_up = result(2000, 2000, 240, 40_000);
        gave_up.failed_tasks = 1;
        assert_eq!(failed(gave_up), ["schbench_requests"]);
    }
}
