//! `schedlab pingpong`: pairs of tasks bouncing a message back and forth
//! (like `perf bench sched pipe`). The guest times every round trip; each
//! is two wake-ups and two context switches, so this is the scheduler's
//! wake-up path: on one CPU the switch, across CPUs the IPI and the idle
//! CPU waking. Its verdict: every round trip completed, and the p99 round
//! trip within `--max-rtt-p99` when one is given.

use super::Summary;
use super::common::{self, latency_json, latency_text};
use crate::settings::{CommonArgs, RunSettings};
use abi::config::{PINGPONG_MAGIC, PINGPONG_MAX_PAIRS, PingpongConfig};
use analysis::Check;
use clap::Args;
use guest_protocol::{Msg, PingpongResult};
use serde_json::json;
use vmm::exit::Result;
use vmm::vm::run::RunOutcome;
use zerocopy::IntoBytes;

pub const MAX_ROUNDS: u32 = 1_000_000;
/// A generous round trip for the default timeout (a cross-CPU one with
/// idle halt is about 60 µs here, p99 about 200 µs).
const ROUND_TRIP_BUDGET_NS: u64 = 250_000;

#[derive(Debug, Clone, Args)]
// --duration, fairness and wake-up limits do not apply: the work is a
// fixed number of messages, and the verdict is the operation's checks.
#[command(
    mut_arg("duration", |a| a.hide(true)),
    mut_arg("max_fairness_error", |a| a.hide(true)),
    mut_arg("max_wake_p99", |a| a.hide(true)),
    mut_arg("timeout", |a| a.help(
        "Wall-clock limit for the whole run [default: 5.4s, or 5s + 250us per round trip when longer]"
    ))
)]
pub struct PingpongArgs {
    /// Pairs of tasks (1..64), each bouncing its own message.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 1,
        allow_negative_numbers = true
    )]
    pub pairs: i64,
    /// Round trips each pair makes (1..1000000); the run lasts as long as
    /// they take (--duration does not apply).
    #[arg(
        long,
        value_name = "N",
        default_value_t = 10_000,
        allow_negative_numbers = true
    )]
    pub rounds: i64,
    /// Pin both tasks of a pair to one CPU (pair i on CPU i mod --cpus).
    /// Without it the two tasks of a pair are pinned to different CPUs
    /// (when --cpus >= 2), so every message wakes the other CPU.
    #[arg(long)]
    pub same_cpu: bool,
    /// Largest allowed p99 round-trip time, e.g. 100us [default: off].
    #[arg(long, value_name = "DUR|off", allow_hyphen_values = true)]
    pub max_rtt_p99: Option<String>,
    #[command(flatten)]
    pub common: CommonArgs,
}

/// Validated `pingpong` flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PingpongPlan {
    pub pairs: u32,
    pub rounds: u32,
    pub same_cpu: bool,
    pub max_rtt_p99_ns: Option<u64>,
}

impl PingpongArgs {
    pub fn plan(&self) -> Result<PingpongPlan> {
        Ok(PingpongPlan {
            pairs: common::count(
                "--pairs",
                self.pairs,
                1,
                PINGPONG_MAX_PAIRS as u32,
                " (the guest's limit)",
            )?,
            rounds: common::count("--rounds", self.rounds, 1, MAX_ROUNDS, "")?,
            same_cpu: self.same_cpu,
            max_rtt_p99_ns: common::limit("--max-rtt-p99", self.max_rtt_p99.as_deref())?,
        })
    }
}

impl PingpongPlan {
    pub fn config(&self) -> PingpongConfig {
        PingpongConfig::new(self.pairs, self.rounds, self.same_cpu)
    }

    /// Where the tasks of a pair run, as the guest pins them.
    pub fn placement(&self, cpus: u32) -> &'static str {
        if self.same_cpu || cpus == 1 {
            "same CPU"
        } else {
            "different CPUs"
        }
    }

    fn expected(&self) -> u64 {
        u64::from(self.pairs) * u64::from(self.rounds)
    }
}

/// Flags to plan and settings, with the default timeout raised to cover
/// the round trips.
pub fn prepare(args: &PingpongArgs) -> Result<(PingpongPlan, RunSettings)> {
    let mut settings = args.common.validate()?;
    let plan = args.plan()?;
    common::cover_work(
        &mut settings,
        args.common.timeout.is_some(),
        plan.expected().saturating_mul(ROUND_TRIP_BUDGET_NS),
    );
    Ok((plan, settings))
}

/// The `pingpong` operation.
pub struct Pingpong;

impl super::Operation for Pingpong {
    const NAME: &'static str = "pingpong";
    const ABOUT: &'static str = "Pairs of tasks bouncing a message back and forth (like `perf bench \
                                 sched pipe`): round-trip latency and round trips per second";
    const CONFIG_MAGIC: u32 = PINGPONG_MAGIC;
    type Args = PingpongArgs;
    type Plan = PingpongPlan;

    fn plan(args: &PingpongArgs, _: &clap::ArgMatches) -> Result<(PingpongPlan, RunSettings)> {
        prepare(args)
    }

    fn config(plan: &PingpongPlan, _: &RunSettings) -> Vec<u8> {
        plan.config().as_bytes().to_vec()
    }

    fn config_json(plan: &PingpongPlan, s: &RunSettings) -> serde_json::Value {
        json!({
            "pairs": plan.pairs,
            "rounds": plan.rounds,
            "same_cpu": plan.same_cpu,
            "placement": plan.placement(s.sched.cpus),
            "max_rtt_p99_ns": plan.max_rtt_p99_ns,
        })
    }

    fn headline(plan: &PingpongPlan, s: &RunSettings) -> String {
        format!(
            "pingpong: {} pair{} x {} round trips, the tasks of a pair on {}, {}",
            plan.pairs,
            if plan.pairs == 1 { "" } else { "s" },
            plan.rounds,
            if plan.placement(s.sched.cpus) == "same CPU" {
                "the same CPU"
            } else {
                "different CPUs"
            },
            common::machine(s)
        )
    }

    fn summarize(plan: &PingpongPlan, out: &RunOutcome) -> Summary {
        summarize(plan, out)
    }
}

pub fn summarize(plan: &PingpongPlan, out: &RunOutcome) -> Summary {
    let result = out.results.iter().rev().find_map(|m| match m {
        Msg::PingpongResult(r) => Some(r),
        _ => None,
    });
    let mut s = Summary {
        failure: common::result_failure(out, "pingpong", result.is_some()),
        ..Summary::default()
    };
    let Some(r) = result else {
        return s;
    };
    let rtt = r.rtt().copied().unwrap_or_default();
    let (per_sec, per_sec_text) = common::rate(r.round_trips, r.elapsed_ns);
    s.elapsed_ns = Some(r.elapsed_ns);
    s.extra = Some(json!({
        "pairs": r.pairs,
        "rounds": r.rounds,
        "same_cpu": r.same_cpu,
        "round_trips": r.round_trips,
        "elapsed_ns": r.elapsed_ns,
        "round_trips_per_sec": per_sec,
        "rtt": latency_json(&rtt),
    }));
    s.lines = vec![
        format!("round trip: {}", latency_text(&rtt)),
        format!(
            "throughput: {per_sec_text} round trips/s ({} round trips in {:.3} ms)",
            r.round_trips,
            r.elapsed_ns as f64 / 1e6
        ),
    ];
    s.checks = checks(plan, r);
    s
}

fn checks(plan: &PingpongPlan, r: &PingpongResult) -> Vec<Check> {
    let expected = plan.expected();
    let mut c = vec![Check {
        name: "pingpong_round_trips".into(),
        value: r.round_trips as f64,
        limit: expected as f64,
        passed: r.round_trips == expected,
        detail: format!(
            "{}/{expected} round trips completed ({} pair{} x {})",
            r.round_trips,
            plan.pairs,
            if plan.pairs == 1 { "" } else { "s" },
            plan.rounds
        ),
        judged: true,
    }];
    c.extend(common::latency_check(
        "max_rtt_p99_ns",
        "round trip",
        &r.rtt().copied().unwrap_or_default(),
        plan.max_rtt_p99_ns,
    ));
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use abi::config::OperationConfig;
    use guest_protocol::LatencyStats;
    use vmm::exit::ErrorKind;

    fn args(extra: &[&str]) -> PingpongArgs {
        let mut argv = vec!["schedlab", "pingpong"];
        argv.extend_from_slice(extra);
        let a: crate::operations::pingpong::PingpongArgs = crate::parse_args(&argv);
        a
    }

    #[test]
    fn defaults_and_bounds() {
        let p = args(&[]).plan().unwrap();
        assert_eq!(
            p,
            PingpongPlan {
                pairs: 1,
                rounds: 10_000,
                same_cpu: false,
                max_rtt_p99_ns: None
            }
        );
        for (flag, bad) in [("--pairs", "0"), ("--pairs", "65"), ("--rounds", "0")] {
            let e = args(&[flag, bad]).plan().unwrap_err();
            assert!(e.message.starts_with(flag), "{e}");
            assert!(e.message.ends_with(&format!("got {bad}")), "{e}");
        }
        let p = args(&["--same-cpu", "--pairs", "3", "--max-rtt-p99", "50us"])
            .plan()
            .unwrap();
        assert_eq!(
            (p.pairs, p.same_cpu, p.max_rtt_p99_ns),
            (3, true, Some(50_000))
        );
        let c = p.config();
        assert_eq!((c.pairs, c.rounds, c.same_cpu), (3, 10_000, 1));
        assert_eq!(PingpongConfig::from_bytes(c.as_bytes()), Some(c));
    }

    #[test]
    fn the_default_timeout_covers_the_rounds_unless_one_is_given() {
        let (_, s) = prepare(&args(&[])).unwrap();
        assert_eq!(s.timeout, std::time::Duration::from_millis(7_500));
        let (_, s) = prepare(&args(&["--rounds", "10"])).unwrap();
        assert_eq!(s.timeout, std::time::Duration::from_millis(5_400));
        let (_, s) = prepare(&args(&["--timeout", "1s"])).unwrap();
        assert_eq!(s.timeout, std::time::Duration::from_secs(1));
    }

    #[test]
    fn placement_follows_the_flag_and_the_cpus() {
        let p = args(&[]).plan().unwrap();
        assert_eq!(p.placement(2), "different CPUs");
        assert_eq!(p.placement(1), "same CPU");
        assert_eq!(
            args(&["--same-cpu"]).plan().unwrap().placement(4),
            "same CPU"
        );
    }

    #[test]
    fn duration_is_hidden_because_rounds_decide() {
        use crate::operations::{Entry, Registered};
        let help = Registered::<Pingpong>::NEW
            .command()
            .render_long_help()
            .to_string();
        assert!(help.contains("--rounds") && help.contains("--same-cpu"));
        for hidden in ["--duration <", "--max-fairness-error", "--max-wake-p99"] {
            assert!(!help.contains(hidden), "{hidden} shown: {help}");
        }
        assert!(help.contains("--cpus") && help.contains("--idle"));
    }

    fn result(round_trips: u64, p99_ns: u64) -> PingpongResult {
        let mut r = PingpongResult {
            pairs: 2,
            rounds: 100,
            round_trips,
            elapsed_ns: 10_000_000,
            ..Default::default()
        };
        r.set_rtt(LatencyStats {
            count: round_trips,
            p50_ns: p99_ns / 2,
            p99_ns,
            max_ns: p99_ns * 2,
            mean_ns: p99_ns / 2,
            ..Default::default()
        });
        r
    }

    #[test]
    fn every_round_trip_must_complete_and_the_p99_stay_under_its_limit() {
        let plan = args(&["--pairs", "2", "--rounds", "100", "--max-rtt-p99", "20us"])
            .plan()
            .unwrap();
        let mut out = RunOutcome {
            finished: true,
            ..Default::default()
        };
        assert_eq!(
            summarize(&plan, &out).failure.unwrap().kind,
            ErrorKind::MissingResult
        );
        out.results.push(Msg::PingpongResult(result(200, 10_000)));
        let s = summarize(&plan, &out);
        assert!(s.failure.is_none());
        assert!(s.checks.iter().all(|c| c.passed), "{:?}", s.checks);
        let x = s.extra.unwrap();
        assert_eq!(x["round_trips_per_sec"], 20_000.0);
        assert_eq!(x["rtt"]["p99_ns"], 10_000);
        assert!(s.lines[1].starts_with("throughput: 20.00 k round trips/s"));

        out.results.push(Msg::PingpongResult(result(150, 30_000)));
        let s = summarize(&plan, &out);
        let failed: Vec<&str> = s
            .checks
            .iter()
            .filter(|c| !c.passed)
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(failed, ["pingpong_round_trips", "max_rtt_p99_ns"]);
        assert!(s.checks[0].detail.starts_with("150/200 round trips"));
    }
}
