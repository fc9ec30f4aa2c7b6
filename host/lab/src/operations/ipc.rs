//! `schedlab ipc`: the guest exercises every IPC path of the core (send to
//! a pid, topics, broadcast, monitors and exit notices, full mailboxes,
//! sleeps and receive timeouts) and times cross-CPU ping-pong round trips.
//! Its verdict is its checks: the run passes when every one of them did.

use super::Summary;
use crate::settings::{CommonArgs, RunSettings};
use abi::config::{IPC_MAGIC, IpcConfig};
use analysis::Check;
use clap::Args;
use guest_protocol::{IpcResult, Msg};
use serde_json::json;
use vmm::exit::{ErrorKind, Failure, Result};
use vmm::vm::run::RunOutcome;
use zerocopy::IntoBytes;

/// The guest keeps at most this many round-trip times.
pub const MAX_ROUNDS: u32 = 4096;

#[derive(Debug, Clone, Args)]
pub struct IpcArgs {
    /// Cross-CPU ping-pong round trips to time (1..4096).
    #[arg(
        long,
        value_name = "N",
        default_value_t = 1000,
        allow_negative_numbers = true
    )]
    pub rounds: i64,
    #[command(flatten)]
    pub common: CommonArgs,
}

impl IpcArgs {
    fn rounds(&self) -> Result<u32> {
        if self.rounds < 1 || self.rounds > MAX_ROUNDS as i64 {
            return Err(Failure::usage(format!(
                "--rounds must be between 1 and {MAX_ROUNDS}, got {}",
                self.rounds
            )));
        }
        Ok(self.rounds as u32)
    }
}

/// The `ipc` operation.
pub struct Ipc;

impl super::Operation for Ipc {
    const NAME: &'static str = "ipc";
    const ABOUT: &'static str = "Exercise every IPC path of the guest kernel (pid, topic, broadcast, \
                                 monitors, full mailboxes, sleeps) and time cross-CPU round trips";
    const CONFIG_MAGIC: u32 = IPC_MAGIC;
    // ipc's length is its round trips, not a duration.
    const GAUNTLET_FLAGS: Option<&'static [&'static str]> = Some(&["--rounds", "200"]);
    type Args = IpcArgs;
    type Plan = u32;

    fn plan(args: &IpcArgs, _: &clap::ArgMatches) -> Result<(u32, RunSettings)> {
        let settings = args.common.validate()?;
        Ok((args.rounds()?, settings))
    }

    fn config(rounds: &u32, _: &RunSettings) -> Vec<u8> {
        IpcConfig::new(*rounds).as_bytes().to_vec()
    }

    fn config_json(rounds: &u32, _: &RunSettings) -> serde_json::Value {
        json!({ "rounds": rounds })
    }

    fn headline(rounds: &u32, s: &RunSettings) -> String {
        let sched = &s.sched;
        format!(
            "ipc: {rounds} round trips on {} vCPU{}, policy {}, tick {} Hz, idle {}",
            sched.cpus,
            if sched.cpus == 1 { "" } else { "s" },
            sched.policy.name,
            sched.tick_hz,
            sched.idle.name()
        )
    }

    fn summarize(_: &u32, out: &RunOutcome) -> Summary {
        summarize(out)
    }
}

pub fn summarize(out: &RunOutcome) -> Summary {
    let result = out.results.iter().rev().find_map(|m| match m {
        Msg::IpcResult(r) => Some(r),
        _ => None,
    });
    let mut s = Summary::default();
    match result {
        Some(r) => {
            s.checks = checks(r);
            s.extra = Some(json!({
                "rounds": r.rounds,
                "cpus": r.cpus,
                "rtt_p50_ns": r.rtt_p50_ns,
                "rtt_p99_ns": r.rtt_p99_ns,
                "rtt_max_ns": r.rtt_max_ns,
            }));
        }
        None if out.failure.is_none() && out.finished => {
            s.failure = Some(Failure::new(
                ErrorKind::MissingResult,
                "the guest finished but sent no ipc result",
            ));
        }
        None => {}
    }
    s
}

/// The guest's checks, plus the round trips as a check of their own (a
/// run that timed none did not exercise the ping-pong path).
fn checks(r: &IpcResult) -> Vec<Check> {
    let mut c: Vec<Check> = r
        .checks
        .iter()
        .map(|k| Check {
            name: format!("ipc_{}", k.name.as_str()),
            value: f64::from(u8::from(k.passed)),
            limit: 1.0,
            passed: k.passed,
            detail: k.detail.as_str().to_string(),
            judged: true,
        })
        .collect();
    c.push(Check {
        name: "ipc_round_trips".into(),
        value: f64::from(r.rounds),
        limit: 1.0,
        passed: r.rounds > 0,
        detail: format!(
            "{} ping-pong round trips (cross-CPU when there are 2+ CPUs): p50 {:.1} µs, p99 {:.1} µs, max {:.1} µs",
            r.rounds,
            r.rtt_p50_ns as f64 / 1e3,
            r.rtt_p99_ns as f64 / 1e3,
            r.rtt_max_ns as f64 / 1e3
        ),
        judged: true,
    });
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use guest_protocol::IpcCheck;

    #[test]
    fn rounds_are_bounded() {
        for (v, ok) in [("0", false), ("1", true), ("4096", true), ("4097", false)] {
            let a: crate::operations::ipc::IpcArgs =
                crate::parse_args(&["schedlab", "ipc", "--rounds", v]);
            assert_eq!(a.rounds().is_ok(), ok, "{v}");
        }
    }

    #[test]
    fn result_becomes_checks_and_a_missing_one_is_an_error() {
        let mut r = IpcResult {
            rounds: 10,
            rtt_p50_ns: 30_000,
            ..Default::default()
        };
        let mut k = IpcCheck {
            passed: false,
            ..Default::default()
        };
        let _ = k.name.push_str("topic");
        let _ = k.detail.push_str("one subscriber got nothing");
        r.checks.push(k).unwrap();
        let mut out = RunOutcome {
            finished: true,
            ..Default::default()
        };
        assert_eq!(
            summarize(&out).failure.unwrap().kind,
            ErrorKind::MissingResult
        );
        out.results.push(Msg::IpcResult(r));
        let s = summarize(&out);
        assert!(s.failure.is_none());
        assert_eq!(s.checks.len(), 2);
        assert_eq!(s.checks[0].name, "ipc_topic");
        assert!(!s.checks[0].passed);
        assert!(s.checks[1].passed && s.checks[1].detail.contains("p50 30.0 µs"));
        assert_eq!(s.extra.unwrap()["rtt_p50_ns"], 30_000);
    }
}
