//! `schedlab ipc`: the guest exercises every IPC path of the core (send to
//! a pid, topics, broadcast, monitors and exit notices, full mailboxes,
//! sleeps and receive timeouts) and times cross-CPU ping-pong round trips.
//! Its verdict is its checks: the run passes when every one of them did.

use super::{Prepared, Summary};
use crate::cli::CommonArgs;
use crate::exit::{ErrorKind, Failure, Result};
use crate::vm::run::RunOutcome;
use abi::config::{IPC_MAGIC, IpcConfig};
use analysis::Check;
use clap::Args;
use guest_protocol::{IpcResult, Msg};
use serde_json::json;

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

pub fn main(args: &IpcArgs) -> u8 {
    let json = args.common.json;
    let prepared = args.common.validate().and_then(|s| Ok((args.rounds()?, s)));
    let (rounds, settings) = match prepared {
        Ok(p) => p,
        Err(f) => return super::usage_error("ipc", json, &f),
    };
    let sched = &settings.sched;
    let prep = Prepared {
        name: "ipc",
        config: IpcConfig::new(rounds).as_bytes().to_vec(),
        config_magic: IPC_MAGIC,
        config_json: json!({
            "rounds": rounds,
            "cpus": sched.cpus,
            "policy": sched.policy.name,
            "tick_hz": sched.tick_hz,
            "idle": sched.idle.name(),
            "sample_hz": settings.judge.sample_hz,
            "seed": settings.seed,
            "timeout_ns": settings.timeout.as_nanos() as u64,
        }),
        headline: format!(
            "ipc: {rounds} round trips on {} vCPU{}, policy {}, tick {} Hz, idle {}",
            sched.cpus,
            if sched.cpus == 1 { "" } else { "s" },
            sched.policy.name,
            sched.tick_hz,
            sched.idle.name()
        ),
        settings,
    };
    super::execute(&prep, summarize)
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
    });
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser;
    use guest_protocol::IpcCheck;

    #[test]
    fn rounds_are_bounded() {
        for (v, ok) in [("0", false), ("1", true), ("4096", true), ("4097", false)] {
            let Command::Ipc(a) = Cli::try_parse_from(["schedlab", "ipc", "--rounds", v])
                .unwrap()
                .command
            else {
                unreachable!()
            };
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
