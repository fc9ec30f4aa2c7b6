//! `schedlab mixed`: interactive tasks (a short burst of CPU, then a
//! sleep, again) alongside CPU hogs. A scheduler that favours tasks that
//! sleep wakes the interactive ones promptly however busy the hogs keep
//! the CPU; a FIFO makes them wait for a hog to finish. Reports the
//! interactive tasks' wake-up latency as they measured it (end of the
//! requested sleep to running again) and the hogs' throughput; the
//! verdict checks the interactive tasks woke at all and, with
//! `--max-wake-p99`, how late.

use super::Summary;
use super::common::{self, latency_json, latency_text};
use crate::settings::{CommonArgs, RunSettings, parse_duration};
use abi::config::{MIXED_MAGIC, MixedConfig};
use analysis::Check;
use clap::Args;
use guest_protocol::{MixedResult, Msg};
use serde_json::json;
use vmm::exit::{Failure, Result};
use vmm::vm::run::RunOutcome;
use zerocopy::IntoBytes;

/// Tasks mixed may start (the ABI's limit, as a u32 for the flags).
pub const MAX_WORKERS: u32 = abi::config::MAX_WORKERS as u32;
const MAX_PHASE_NS: u64 = 10_000_000_000;

// Shares are not judged (interactive tasks and hogs ask for different
// amounts of CPU); --max-wake-p99 applies to the wake-up latency the
// interactive tasks measure.
#[derive(Debug, Clone, Args)]
#[command(
    mut_arg("max_fairness_error", |a| a.hide(true)),
    mut_arg("max_wake_p99", |a| a.help(
        "Largest allowed p99 wake-up latency of the interactive tasks, e.g. 5ms [default: off]"
    ))
)]
pub struct MixedArgs {
    /// Interactive tasks: each runs --burst of CPU work, sleeps --sleep,
    /// and again, until the duration ends.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 2,
        allow_negative_numbers = true
    )]
    pub interactive: i64,
    /// CPU hogs: tasks that only compute (like spin) until the duration
    /// ends. --interactive + --hogs may be at most 255.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 2,
        allow_negative_numbers = true
    )]
    pub hogs: i64,
    /// CPU time of one interactive burst (measured by the task: time it
    /// spends preempted does not count).
    #[arg(
        long,
        value_name = "DUR",
        default_value = "500us",
        allow_hyphen_values = true
    )]
    pub burst: String,
    /// Sleep between bursts. A sleep ends on time when a CPU passes a
    /// preemption point or polls idle (--idle poll); a halted idle CPU
    /// notices it at its next tick (--tick-hz).
    #[arg(
        long,
        value_name = "DUR",
        default_value = "5ms",
        allow_hyphen_values = true
    )]
    pub sleep: String,
    #[command(flatten)]
    pub common: CommonArgs,
}

/// Validated `mixed` flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MixedPlan {
    pub interactive: u32,
    pub hogs: u32,
    pub burst_ns: u64,
    pub sleep_ns: u64,
}

impl MixedArgs {
    /// Validate against the run's `duration_ns` (at least one burst and
    /// sleep must fit, or nothing is measured).
    pub fn plan(&self, duration_ns: u64) -> Result<MixedPlan> {
        let interactive = common::count("--interactive", self.interactive, 1, MAX_WORKERS, "")?;
        let hogs = common::count("--hogs", self.hogs, 0, MAX_WORKERS, "")?;
        if interactive + hogs > MAX_WORKERS {
            return Err(Failure::usage(format!(
                "--interactive + --hogs is {}, more than the {MAX_WORKERS} tasks the guest \
                 kernel can run besides the main task",
                interactive + hogs
            )));
        }
        let burst_ns = parse_duration("--burst", &self.burst, 1_000, MAX_PHASE_NS)?;
        let sleep_ns = parse_duration("--sleep", &self.sleep, 1_000, MAX_PHASE_NS)?;
        if duration_ns <= burst_ns + sleep_ns {
            return Err(Failure::usage(format!(
                "--duration ({}) must be longer than --burst + --sleep ({} + {}), or the \
                 interactive tasks never wake up",
                crate::settings::fmt_ns(duration_ns),
                crate::settings::fmt_ns(burst_ns),
                crate::settings::fmt_ns(sleep_ns)
            )));
        }
        Ok(MixedPlan {
            interactive,
            hogs,
            burst_ns,
            sleep_ns,
        })
    }
}

impl MixedPlan {
    pub fn config(&self, duration_ns: u64) -> MixedConfig {
        MixedConfig::new(
            self.interactive,
            self.hogs,
            self.burst_ns,
            self.sleep_ns,
            duration_ns,
        )
    }
}

/// The `mixed` operation.
pub struct Mixed;

impl super::Operation for Mixed {
    const NAME: &'static str = "mixed";
    const ABOUT: &'static str = "Interactive tasks (burst, sleep) alongside CPU hogs: the interactive \
                                 tasks' wake-up latency and the hogs' throughput";
    const CONFIG_MAGIC: u32 = MIXED_MAGIC;
    type Args = MixedArgs;
    /// The plan and the wake-up p99 limit its check uses.
    type Plan = (MixedPlan, Option<u64>);

    fn plan(args: &MixedArgs, _: &clap::ArgMatches) -> Result<(Self::Plan, RunSettings)> {
        let settings = args.common.validate()?;
        let plan = args.plan(settings.duration_ns)?;
        Ok(((plan, settings.judge.max_wake_p99_ns), settings))
    }

    fn config((plan, _): &Self::Plan, s: &RunSettings) -> Vec<u8> {
        plan.config(s.duration_ns).as_bytes().to_vec()
    }

    fn config_json((plan, _): &Self::Plan, s: &RunSettings) -> serde_json::Value {
        json!({
            "interactive": plan.interactive,
            "hogs": plan.hogs,
            "burst_ns": plan.burst_ns,
            "sleep_ns": plan.sleep_ns,
            "duration_ns": s.duration_ns,
        })
    }

    fn headline((plan, _): &Self::Plan, s: &RunSettings) -> String {
        let fmt = crate::settings::fmt_ns;
        format!(
            "mixed: {} interactive task{} ({} burst, {} sleep) and {} hog{} for {}, {}",
            plan.interactive,
            if plan.interactive == 1 { "" } else { "s" },
            fmt(plan.burst_ns),
            fmt(plan.sleep_ns),
            plan.hogs,
            if plan.hogs == 1 { "" } else { "s" },
            fmt(s.duration_ns),
            common::machine(s)
        )
    }

    fn summarize((_, max_wake_p99): &Self::Plan, out: &RunOutcome) -> Summary {
        summarize(*max_wake_p99, out)
    }
}

pub fn summarize(max_wake_p99_ns: Option<u64>, out: &RunOutcome) -> Summary {
    let result = out.results.iter().rev().find_map(|m| match m {
        Msg::MixedResult(r) => Some(r),
        _ => None,
    });
    let mut s = Summary {
        failure: common::result_failure(out, "mixed", result.is_some()),
        ..Summary::default()
    };
    let Some(r) = result else {
        return s;
    };
    let wake = r.wake().copied().unwrap_or_default();
    let (hog_rate, hog_rate_text) = common::rate(r.hog_units, r.elapsed_ns);
    s.elapsed_ns = Some(r.elapsed_ns);
    s.extra = Some(json!({
        "interactive": r.interactive,
        "hogs": r.hogs,
        "bursts": r.bursts,
        "wake": latency_json(&wake),
        "hog_units": r.hog_units,
        "hog_units_per_sec": hog_rate,
        "elapsed_ns": r.elapsed_ns,
    }));
    s.lines = vec![
        format!(
            "interactive wake-up latency (up to a tick more where a halted CPU woke it): {}",
            latency_text(&wake)
        ),
        format!(
            "interactive bursts: {}; hogs: {hog_rate_text} units/s ({} units in {:.3} ms)",
            r.bursts,
            r.hog_units,
            r.elapsed_ns as f64 / 1e6
        ),
    ];
    s.checks = checks(r, max_wake_p99_ns);
    s
}

fn checks(r: &MixedResult, max_wake_p99_ns: Option<u64>) -> Vec<Check> {
    let wake = r.wake().copied().unwrap_or_default();
    let mut c = vec![Check {
        name: "mixed_wakeups".into(),
        value: wake.count as f64,
        limit: 1.0,
        passed: wake.count > 0,
        detail: format!(
            "{} wake-ups of {} interactive task{} measured, {} bursts",
            wake.count,
            r.interactive,
            if r.interactive == 1 { "" } else { "s" },
            r.bursts
        ),
        judged: true,
    }];
    c.extend(common::latency_check(
        "max_wake_p99_ns",
        "interactive wake-up latency",
        &wake,
        max_wake_p99_ns,
    ));
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use abi::config::OperationConfig;
    use guest_protocol::LatencyStats;
    use vmm::exit::ErrorKind;

    fn args(extra: &[&str]) -> MixedArgs {
        let mut argv = vec!["schedlab", "mixed"];
        argv.extend_from_slice(extra);
        let a: crate::operations::mixed::MixedArgs = crate::parse_args(&argv);
        a
    }

    #[test]
    fn defaults_and_bounds() {
        let p = args(&[]).plan(200_000_000).unwrap();
        assert_eq!(
            p,
            MixedPlan {
                interactive: 2,
                hogs: 2,
                burst_ns: 500_000,
                sleep_ns: 5_000_000
            }
        );
        let c = p.config(200_000_000);
        assert_eq!(MixedConfig::from_bytes(c.as_bytes()), Some(c));
        assert_eq!(args(&["--hogs", "0"]).plan(200_000_000).unwrap().hogs, 0);
        let m = |a: &[&str]| args(a).plan(200_000_000).unwrap_err().message;
        assert!(m(&["--interactive", "0"]).starts_with("--interactive must be between 1"));
        assert!(m(&["--interactive", "200", "--hogs", "56"]).contains("is 256, more than"));
        assert!(m(&["--burst", "x"]).starts_with("--burst: 'x'"));
        assert!(m(&["--sleep", "-1ms"]).starts_with("--sleep: '-1ms'"));
        let e = args(&[]).plan(5_000_000).unwrap_err();
        assert!(
            e.message.starts_with("--duration (5ms) must be longer"),
            "{e}"
        );
    }

    fn result(count: u64, p99_ns: u64) -> MixedResult {
        let mut r = MixedResult {
            interactive: 2,
            hogs: 2,
            hog_units: 4_000_000,
            elapsed_ns: 200_000_000,
            bursts: 60,
            ..Default::default()
        };
        r.set_wake(LatencyStats {
            count,
            p50_ns: p99_ns / 2,
            p99_ns,
            max_ns: p99_ns,
            mean_ns: p99_ns / 2,
            ..Default::default()
        });
        r
    }

    #[test]
    fn wake_ups_are_required_and_judged_against_max_wake_p99() {
        let mut out = RunOutcome {
            finished: true,
            ..Default::default()
        };
        assert_eq!(
            summarize(None, &out).failure.unwrap().kind,
            ErrorKind::MissingResult
        );
        out.results.push(Msg::MixedResult(result(58, 800_000)));
        let s = summarize(Some(1_000_000), &out);
        assert!(s.failure.is_none());
        assert!(s.checks.iter().all(|c| c.passed), "{:?}", s.checks);
        assert_eq!(s.extra.as_ref().unwrap()["hog_units_per_sec"], 20_000_000.0);
        assert!(
            s.lines[1].contains("hogs: 20.00 M units/s"),
            "{:?}",
            s.lines
        );
        let s = summarize(Some(500_000), &out);
        assert!(!s.checks[1].passed);
        out.results.push(Msg::MixedResult(result(0, 0)));
        let s = summarize(None, &out);
        assert_eq!(s.checks.len(), 1);
        assert!(!s.checks[0].passed);
    }
}
