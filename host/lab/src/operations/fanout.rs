//! `schedlab fanout`: groups of senders and receivers (like hackbench).
//! Every sender sends `--messages` messages to every receiver of its group
//! and blocks while a receiver's mailbox (16 messages) is full, so many
//! tasks keep waking each other. Reports the time from the first send to
//! the last receive and the messages per second; the verdict checks every
//! message arrived (each receiver also checks, in the guest, that each
//! sender's messages came in order).

use super::Summary;
use super::common;
use crate::settings::{CommonArgs, RunSettings};
use abi::config::{FANOUT_MAGIC, FanoutConfig};
use analysis::Check;
use clap::Args;
use guest_protocol::{FanoutResult, Msg};
use serde_json::json;
use vmm::exit::{Failure, Result};
use vmm::vm::run::RunOutcome;
use zerocopy::IntoBytes;

/// Tasks fanout may start (the ABI's limit, as a u32 for the flags).
pub const MAX_WORKERS: u32 = abi::config::MAX_WORKERS as u32;
pub const MAX_MESSAGES: u32 = 1_000_000;
/// A generous time per message for the default timeout.
const MESSAGE_BUDGET_NS: u64 = 100_000;

#[derive(Debug, Clone, Args)]
// --duration, fairness and wake-up limits do not apply: the work is a
// fixed number of messages, and the verdict is the operation's checks.
#[command(
    mut_arg("duration", |a| a.hide(true)),
    mut_arg("max_fairness_error", |a| a.hide(true)),
    mut_arg("max_wake_p99", |a| a.hide(true)),
    mut_arg("timeout", |a| a.help(
        "Wall-clock limit for the whole run [default: 5.4s, or 5s + 100us per message when longer]"
    ))
)]
pub struct FanoutArgs {
    /// Groups; each has its own senders and receivers.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 2,
        allow_negative_numbers = true
    )]
    pub groups: i64,
    /// Senders per group.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 4,
        allow_negative_numbers = true
    )]
    pub senders: i64,
    /// Receivers per group. groups x (senders + receivers) may be at most
    /// 255 (the guest kernel has 256 task slots; one is the main task).
    #[arg(
        long,
        value_name = "N",
        default_value_t = 4,
        allow_negative_numbers = true
    )]
    pub receivers: i64,
    /// Messages each sender sends to each receiver of its group
    /// (1..1000000); the run lasts as long as they take (--duration does
    /// not apply).
    #[arg(
        long,
        value_name = "N",
        default_value_t = 100,
        allow_negative_numbers = true
    )]
    pub messages: i64,
    #[command(flatten)]
    pub common: CommonArgs,
}

/// Validated `fanout` flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FanoutPlan {
    pub groups: u32,
    pub senders: u32,
    pub receivers: u32,
    pub messages: u32,
}

impl FanoutArgs {
    pub fn plan(&self) -> Result<FanoutPlan> {
        let groups = common::count("--groups", self.groups, 1, MAX_WORKERS, "")?;
        let senders = common::count("--senders", self.senders, 1, MAX_WORKERS, "")?;
        let receivers = common::count("--receivers", self.receivers, 1, MAX_WORKERS, "")?;
        let messages = common::count("--messages", self.messages, 1, MAX_MESSAGES, "")?;
        let tasks = u64::from(groups) * u64::from(senders + receivers);
        if tasks > u64::from(MAX_WORKERS) {
            return Err(Failure::usage(format!(
                "--groups x (--senders + --receivers) is {groups} x ({senders} + {receivers}) = \
                 {tasks} tasks, more than the {MAX_WORKERS} the guest kernel can run besides the \
                 main task: use fewer groups, senders or receivers"
            )));
        }
        Ok(FanoutPlan {
            groups,
            senders,
            receivers,
            messages,
        })
    }
}

impl FanoutPlan {
    pub fn config(&self) -> FanoutConfig {
        FanoutConfig::new(self.groups, self.senders, self.receivers, self.messages)
    }

    pub fn tasks(&self) -> u32 {
        self.groups * (self.senders + self.receivers)
    }

    /// Messages that must arrive: every sender to every receiver of its
    /// group, `messages` times.
    pub fn expected(&self) -> u64 {
        u64::from(self.groups)
            * u64::from(self.senders)
            * u64::from(self.receivers)
            * u64::from(self.messages)
    }
}

/// Flags to plan and settings, with the default timeout raised to cover
/// the messages.
pub fn prepare(args: &FanoutArgs) -> Result<(FanoutPlan, RunSettings)> {
    let mut settings = args.common.validate()?;
    let plan = args.plan()?;
    common::cover_work(
        &mut settings,
        args.common.timeout.is_some(),
        plan.expected().saturating_mul(MESSAGE_BUDGET_NS),
    );
    Ok((plan, settings))
}

/// The `fanout` operation.
pub struct Fanout;

impl super::Operation for Fanout {
    const NAME: &'static str = "fanout";
    const ABOUT: &'static str = "Groups of senders and receivers exchanging messages (like \
                                 hackbench): time to deliver them all and messages per second";
    const CONFIG_MAGIC: u32 = FANOUT_MAGIC;
    type Args = FanoutArgs;
    type Plan = FanoutPlan;

    fn plan(args: &FanoutArgs, _: &clap::ArgMatches) -> Result<(FanoutPlan, RunSettings)> {
        prepare(args)
    }

    fn config(plan: &FanoutPlan, _: &RunSettings) -> Vec<u8> {
        plan.config().as_bytes().to_vec()
    }

    fn config_json(plan: &FanoutPlan, _: &RunSettings) -> serde_json::Value {
        json!({
            "groups": plan.groups,
            "senders": plan.senders,
            "receivers": plan.receivers,
            "messages": plan.messages,
            "tasks": plan.tasks(),
            "expected_messages": plan.expected(),
        })
    }

    fn headline(plan: &FanoutPlan, s: &RunSettings) -> String {
        format!(
            "fanout: {} group{} of {} sender{} -> {} receiver{}, {} message{} each way = {} \
             messages, {} tasks, {}",
            plan.groups,
            plural(plan.groups),
            plan.senders,
            plural(plan.senders),
            plan.receivers,
            plural(plan.receivers),
            plan.messages,
            plural(plan.messages),
            plan.expected(),
            plan.tasks(),
            common::machine(s)
        )
    }

    fn summarize(plan: &FanoutPlan, out: &RunOutcome) -> Summary {
        summarize(plan, out)
    }
}

fn plural(n: u32) -> &'static str {
    if n == 1 { "" } else { "s" }
}

pub fn summarize(plan: &FanoutPlan, out: &RunOutcome) -> Summary {
    let result = out.results.iter().rev().find_map(|m| match m {
        Msg::FanoutResult(r) => Some(r),
        _ => None,
    });
    let mut s = Summary {
        failure: common::result_failure(out, "fanout", result.is_some()),
        ..Summary::default()
    };
    let Some(r) = result else {
        return s;
    };
    let (per_sec, per_sec_text) = common::rate(r.delivered, r.elapsed_ns);
    s.elapsed_ns = Some(r.elapsed_ns);
    s.extra = Some(json!({
        "groups": r.groups,
        "senders": r.senders,
        "receivers": r.receivers,
        "messages": r.messages,
        "expected": plan.expected(),
        "delivered": r.delivered,
        "elapsed_ns": r.elapsed_ns,
        "messages_per_sec": per_sec,
    }));
    s.lines = vec![format!(
        "delivered {}/{} messages in {:.3} ms (first send to last receive): {per_sec_text} \
         messages/s",
        r.delivered,
        plan.expected(),
        r.elapsed_ns as f64 / 1e6
    )];
    s.checks = vec![check(plan, r)];
    s
}

fn check(plan: &FanoutPlan, r: &FanoutResult) -> Check {
    let expected = plan.expected();
    Check {
        name: "fanout_delivered".into(),
        value: r.delivered as f64,
        limit: expected as f64,
        passed: r.delivered == expected,
        detail: format!(
            "{}/{expected} messages arrived, in order per sender ({} x {} x {} x {})",
            r.delivered, plan.groups, plan.senders, plan.receivers, plan.messages
        ),
        judged: true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use abi::config::OperationConfig;
    use vmm::exit::ErrorKind;

    fn args(extra: &[&str]) -> FanoutArgs {
        let mut argv = vec!["schedlab", "fanout"];
        argv.extend_from_slice(extra);
        let a: crate::operations::fanout::FanoutArgs = crate::parse_args(&argv);
        a
    }

    #[test]
    fn defaults_and_the_task_table_limit() {
        let p = args(&[]).plan().unwrap();
        assert_eq!(
            (p.groups, p.senders, p.receivers, p.messages),
            (2, 4, 4, 100)
        );
        assert_eq!((p.tasks(), p.expected()), (16, 3200));
        let c = p.config();
        assert_eq!(FanoutConfig::from_bytes(c.as_bytes()), Some(c));
        // 15 x (8 + 9) = 255 fits; 16 x 16 = 256 does not.
        let ok = args(&["--groups", "15", "--senders", "8", "--receivers", "9"]).plan();
        assert_eq!(ok.unwrap().tasks(), 255);
        let e = args(&["--groups", "16", "--senders", "8", "--receivers", "8"])
            .plan()
            .unwrap_err();
        assert!(e.message.contains("= 256 tasks"), "{e}");
        assert_eq!(e.exit_code(), 64);
        for flag in ["--groups", "--senders", "--receivers", "--messages"] {
            let e = args(&[flag, "0"]).plan().unwrap_err();
            assert!(e.message.starts_with(flag), "{e}");
        }
    }

    #[test]
    fn every_message_must_arrive() {
        let plan = args(&["--groups", "1", "--senders", "2", "--receivers", "3"])
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
        let r = |delivered| FanoutResult {
            groups: 1,
            senders: 2,
            receivers: 3,
            messages: 100,
            elapsed_ns: 2_000_000,
            delivered,
        };
        out.results.push(Msg::FanoutResult(r(600)));
        let s = summarize(&plan, &out);
        assert!(s.failure.is_none() && s.checks[0].passed, "{:?}", s.checks);
        assert_eq!(s.extra.as_ref().unwrap()["messages_per_sec"], 300_000.0);
        assert!(s.lines[0].starts_with("delivered 600/600 messages in 2.000 ms"));
        out.results.push(Msg::FanoutResult(r(599)));
        let s = summarize(&plan, &out);
        assert!(!s.checks[0].passed);
        assert!(s.checks[0].detail.starts_with("599/600"));
    }
}
