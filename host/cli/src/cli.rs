//! The command line. Flags are parsed by clap, then validated here into
//! plain settings before anything touches /dev/kvm, so a typo never costs
//! a VM start and every message names the flag at fault.

pub mod judge;
pub mod sched;

use crate::exit::{EXIT_CODES_HELP, Failure, Result};
use crate::ops::fanout::FanoutArgs;
use crate::ops::ipc::IpcArgs;
use crate::ops::mixed::MixedArgs;
use crate::ops::periodic::PeriodicArgs;
use crate::ops::pingpong::PingpongArgs;
use crate::ops::schbench::SchbenchArgs;
use crate::ops::spin::SpinArgs;
use crate::policies_cmd::PoliciesArgs;
use clap::{Args, Parser, Subcommand};
use judge::{JudgeArgs, JudgeSettings};
use sched::{SchedArgs, SchedSettings};
use std::time::Duration;

const ABOUT: &str = "schedlab: a laboratory for CPU schedulers";
const LONG_ABOUT: &str = "\
schedlab is a laboratory for CPU schedulers. It boots a tiny bare-metal guest
kernel on KVM in milliseconds, runs a scheduling workload (an \"operation\")
in it on real virtual CPUs, and reports what each task got, read straight out
of guest memory. There is no Linux in the guest.";

#[derive(Debug, Parser)]
#[command(
    name = "schedlab",
    version,
    about = ABOUT,
    long_about = LONG_ABOUT,
    after_help = EXIT_CODES_HELP,
    propagate_version = true,
    subcommand_required = true,
    arg_required_else_help = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// One subcommand per operation under `guest/operations/` (a unit test keeps
/// the two lists equal), plus the tools in [`TOOL_SUBCOMMANDS`].
// Parsed once per process: boxing the big variant would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// N tasks each repeating a fixed unit of integer work for a while:
    /// shows how the CPU is shared between them.
    #[command(after_help = EXIT_CODES_HELP)]
    Spin(SpinArgs),
    /// Exercise every IPC path of the guest kernel (pid, topic, broadcast,
    /// monitors, full mailboxes, sleeps) and time cross-CPU round trips.
    #[command(after_help = EXIT_CODES_HELP)]
    Ipc(IpcArgs),
    /// Pairs of tasks bouncing a message back and forth (like `perf bench
    /// sched pipe`): round-trip latency and round trips per second.
    #[command(after_help = EXIT_CODES_HELP)]
    Pingpong(PingpongArgs),
    /// Groups of senders and receivers exchanging messages (like
    /// hackbench): time to deliver them all and messages per second.
    #[command(after_help = EXIT_CODES_HELP)]
    Fanout(FanoutArgs),
    /// Periodic tasks with a runtime and a deadline (like rt-app):
    /// activation latency and deadline misses per task.
    #[command(after_help = EXIT_CODES_HELP)]
    Periodic(PeriodicArgs),
    /// Interactive tasks (burst, sleep) alongside CPU hogs: the interactive
    /// tasks' wake-up latency and the hogs' throughput.
    #[command(after_help = EXIT_CODES_HELP)]
    Mixed(MixedArgs),
    /// Message tasks waking groups of workers that compute and reply (like
    /// schbench): wake-up and request latency, requests per second.
    #[command(after_help = EXIT_CODES_HELP)]
    Schbench(SchbenchArgs),
    /// Run a scenario file (TOML): a task mix in the spirit of rt-app.
    ///
    /// Named tasks with counts, weights, affinities and phases (run, sleep,
    /// timer, send, publish, recv, yield); the guest operation that runs
    /// them is `scenario`.
    #[command(after_long_help = crate::scenario::help(), after_help = EXIT_CODES_HELP)]
    Run(crate::scenario::RunArgs),
    /// List the scheduling policies `--policy` accepts.
    Policies(PoliciesArgs),
    /// Compare two results (files or directories of result.json from
    /// --out): each metric's change and whether it regressed.
    #[command(after_help = crate::compare::EXIT_CODES)]
    Compare(crate::compare::CompareArgs),
    /// Run a matrix of workloads x policies x CPU counts, several VMs at a
    /// time, and print one table of verdicts and key metrics.
    #[command(after_help = crate::gauntlet::EXIT_CODES)]
    Gauntlet(crate::gauntlet::GauntletArgs),
}

/// Subcommands that are not operations (they start no VM).
#[cfg(test)]
pub const TOOL_SUBCOMMANDS: &[&str] = &["policies", "compare", "gauntlet"];

/// Subcommands named otherwise than the operation they run.
#[cfg(test)]
pub const RENAMED_SUBCOMMANDS: &[(&str, &str)] = &[("run", "scenario")];

/// Flags every operation takes.
#[derive(Debug, Clone, Args)]
pub struct CommonArgs {
    /// How long the workload runs, e.g. 200ms, 1s, 2.5s, 500us (at most 1h).
    #[arg(
        long,
        value_name = "DUR",
        default_value = "200ms",
        allow_hyphen_values = true
    )]
    pub duration: String,
    /// Base time slice the scheduling policy uses (1us..1s).
    #[arg(
        long,
        value_name = "DUR",
        default_value = "1ms",
        allow_hyphen_values = true
    )]
    pub slice: String,
    /// Seed for anything random in the guest.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub seed: u64,
    /// Wall-clock limit for the whole run [default: max(5s, 2 x duration + 5s)].
    #[arg(long, value_name = "DUR", allow_hyphen_values = true)]
    pub timeout: Option<String>,
    /// Guest RAM in MiB [default: 64].
    #[arg(long, value_name = "MiB")]
    pub mem: Option<u64>,
    /// Print exactly one JSON object on stdout instead of tables.
    #[arg(long)]
    pub json: bool,
    /// Keep the run in DIR (created if missing): result.json (the report,
    /// the host and the versions, written even when the run fails), and
    /// timeline.svg and latency.svg drawn from the scheduling events.
    #[arg(long, value_name = "DIR")]
    pub out: Option<std::path::PathBuf>,
    /// Also print the guest's info and debug log lines to stderr.
    #[arg(short, long)]
    pub verbose: bool,
    #[command(flatten)]
    pub sched: SchedArgs,
    #[command(flatten)]
    pub judge: JudgeArgs,
}

/// Validated run settings shared by all operations.
#[derive(Debug, Clone, PartialEq)]
pub struct RunSettings {
    pub duration_ns: u64,
    pub slice_ns: u64,
    pub seed: u64,
    pub timeout: Duration,
    pub mem_bytes: u64,
    pub json: bool,
    /// `--out` (checked here, created when the run starts).
    pub out: Option<std::path::PathBuf>,
    pub verbose: bool,
    pub sched: SchedSettings,
    pub judge: JudgeSettings,
}

const NS_PER_SEC: u64 = 1_000_000_000;
pub const HOUR_NS: u64 = 3600 * NS_PER_SEC;

impl CommonArgs {
    pub fn validate(&self) -> Result<RunSettings> {
        let duration_ns = parse_duration("--duration", &self.duration, 1, HOUR_NS)?;
        let slice_ns = parse_duration("--slice", &self.slice, 1_000, NS_PER_SEC)?;
        let timeout = match &self.timeout {
            Some(t) => Duration::from_nanos(parse_duration("--timeout", t, 1, HOUR_NS)?),
            None => default_timeout(duration_ns),
        };
        let mem_bytes = match self.mem {
            None => abi::memmap::GUEST_RAM_DEFAULT,
            Some(mib) => {
                let min = abi::memmap::GUEST_RAM_MIN >> 20;
                let max = crate::vm::setup::MAX_RAM_BYTES >> 20;
                if mib < min || mib > max || mib % 2 != 0 {
                    return Err(Failure::usage(format!(
                        "--mem must be an even number of MiB between {min} and {max}, got {mib}"
                    )));
                }
                mib << 20
            }
        };
        Ok(RunSettings {
            duration_ns,
            slice_ns,
            seed: self.seed,
            timeout,
            mem_bytes,
            json: self.json,
            out: match &self.out {
                Some(dir) => Some(crate::outputs::check_dir(dir)?),
                None => None,
            },
            verbose: self.verbose,
            sched: self.sched.validate()?,
            judge: self.judge.validate()?,
        })
    }
}

/// max(5 s, 2 x duration + 5 s): room for boot and reporting on a slow,
/// emulated CPL0 without letting a hung guest block a script for long.
pub fn default_timeout(duration_ns: u64) -> Duration {
    let ns = duration_ns.saturating_mul(2).saturating_add(5 * NS_PER_SEC);
    Duration::from_nanos(ns.max(5 * NS_PER_SEC))
}

/// Parse "200ms", "1s", "10us", "500ns", "2.5s" into nanoseconds, exactly
/// (no floating point), and check it lies in `[min_ns, max_ns]`.
pub fn parse_duration(flag: &str, text: &str, min_ns: u64, max_ns: u64) -> Result<u64> {
    let bad = |why: &str| Failure::usage(format!("{flag}: '{text}' {why}"));
    let t = text.trim();
    if t.starts_with('-') {
        return Err(bad("is negative: it must be greater than zero"));
    }
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let unit_ns: u128 = match unit.trim() {
        "ns" => 1,
        "us" | "µs" => 1_000,
        "ms" => 1_000_000,
        "s" => NS_PER_SEC as u128,
        "" => {
            return Err(bad(
                "has no unit: write e.g. 200ms, 1s, 2.5s, 10us or 500ns",
            ));
        }
        _ => {
            return Err(bad(
                "has an unknown unit: use ns, us, ms or s (e.g. 200ms, 2.5s)",
            ));
        }
    };
    let (int, frac) = num.split_once('.').unwrap_or((num, ""));
    if int.is_empty() && frac.is_empty() || frac.contains('.') {
        return Err(bad("is not a number followed by a unit (e.g. 200ms, 2.5s)"));
    }
    // At most 20 digits each, so the u128 arithmetic below cannot overflow.
    if int.len() > 20 || frac.len() > 20 {
        return Err(bad("is far too long to be a duration"));
    }
    let int_v: u128 = if int.is_empty() {
        0
    } else {
        int.parse().map_err(|_| bad("is not a number"))?
    };
    let mut ns = int_v * unit_ns;
    if !frac.is_empty() {
        let frac_v: u128 = frac.parse().map_err(|_| bad("is not a number"))?;
        ns += frac_v * unit_ns / 10u128.pow(frac.len() as u32);
    }
    if ns == 0 {
        return Err(bad("must be greater than zero"));
    }
    if ns < min_ns as u128 {
        return Err(bad(&format!(
            "is too short: the minimum is {}",
            fmt_ns(min_ns)
        )));
    }
    if ns > max_ns as u128 {
        return Err(bad(&format!(
            "is too long: the maximum is {}",
            fmt_ns(max_ns)
        )));
    }
    Ok(ns as u64)
}

/// A duration for messages, in the largest unit that divides it evenly.
pub fn fmt_ns(ns: u64) -> String {
    for (unit, name) in [
        (HOUR_NS, "h"),
        (NS_PER_SEC, "s"),
        (1_000_000, "ms"),
        (1_000, "us"),
    ] {
        if ns >= unit && ns.is_multiple_of(unit) {
            return format!("{}{name}", ns / unit);
        }
    }
    format!("{ns}ns")
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn d(text: &str) -> std::result::Result<u64, String> {
        parse_duration("--duration", text, 1, HOUR_NS).map_err(|e| e.message)
    }

    #[test]
    fn durations_parse_exactly() {
        assert_eq!(d("200ms"), Ok(200_000_000));
        assert_eq!(d("1s"), Ok(1_000_000_000));
        assert_eq!(d("10us"), Ok(10_000));
        assert_eq!(d("10µs"), Ok(10_000));
        assert_eq!(d("500ns"), Ok(500));
        assert_eq!(d("2.5s"), Ok(2_500_000_000));
        assert_eq!(d("0.001s"), Ok(1_000_000));
        assert_eq!(d(".5ms"), Ok(500_000));
        assert_eq!(d("3600s"), Ok(HOUR_NS));
    }

    #[test]
    fn bad_durations_name_the_flag_and_the_value() {
        assert_eq!(
            d("0ms").unwrap_err(),
            "--duration: '0ms' must be greater than zero"
        );
        assert!(d("-5ms").unwrap_err().contains("negative"));
        assert!(d("200").unwrap_err().contains("has no unit"));
        assert!(d("2h").unwrap_err().contains("unknown unit"));
        assert!(d("abc").unwrap_err().starts_with("--duration: 'abc'"));
        assert!(d("1.2.3s").is_err());
        assert!(d("ms").is_err());
        assert!(d("3601s").unwrap_err().contains("the maximum is 1h"));
        assert!(d("99999999999999999999999s").is_err());
        let slice = parse_duration("--slice", "500ns", 1_000, NS_PER_SEC).unwrap_err();
        assert!(
            slice.message.starts_with("--slice: '500ns' is too short"),
            "{}",
            slice.message
        );
    }

    #[test]
    fn default_timeout_leaves_room_for_boot() {
        assert_eq!(default_timeout(200_000_000), Duration::from_millis(5_400));
        assert_eq!(default_timeout(10 * NS_PER_SEC), Duration::from_secs(25));
    }

    #[test]
    fn common_flags_validate() {
        let cli = Cli::try_parse_from(["schedlab", "spin", "--mem", "3"]).unwrap();
        let Command::Spin(a) = cli.command else {
            unreachable!()
        };
        assert!(
            a.common
                .validate()
                .unwrap_err()
                .message
                .starts_with("--mem")
        );
        let cli = Cli::try_parse_from(["schedlab", "spin", "--slice", "2s"]).unwrap();
        let Command::Spin(a) = cli.command else {
            unreachable!()
        };
        assert!(
            a.common
                .validate()
                .unwrap_err()
                .message
                .starts_with("--slice")
        );
        let cli =
            Cli::try_parse_from(["schedlab", "spin", "--timeout", "1s", "--mem", "128"]).unwrap();
        let Command::Spin(a) = cli.command else {
            unreachable!()
        };
        let s = a.common.validate().unwrap();
        assert_eq!(s.timeout, Duration::from_secs(1));
        assert_eq!(s.mem_bytes, 128 << 20);
    }

    #[test]
    fn every_operation_has_a_subcommand_and_vice_versa() {
        let mut subcommands: Vec<String> = Cli::command()
            .get_subcommands()
            .map(|c| c.get_name().to_string())
            .filter(|n| n != "help" && !TOOL_SUBCOMMANDS.contains(&n.as_str()))
            .map(
                |n| match RENAMED_SUBCOMMANDS.iter().find(|(sub, _)| *sub == n) {
                    Some((_, op)) => op.to_string(),
                    None => n,
                },
            )
            .collect();
        subcommands.sort();
        let mut ops: Vec<String> = crate::images::operation_names()
            .map(str::to_string)
            .collect();
        ops.sort();
        assert!(
            !ops.is_empty(),
            "build.rs found no directories under guest/operations/"
        );
        assert_eq!(
            subcommands, ops,
            "the subcommands must be exactly the operations under guest/operations/"
        );
    }

    #[test]
    fn help_lists_exit_codes_and_hides_test_flags() {
        let help = Cli::command().render_long_help().to_string();
        assert!(help.contains("Exit codes:"));
        assert!(help.contains("spin"));
        let mut cmd = Cli::command();
        let spin = cmd
            .find_subcommand_mut("spin")
            .unwrap()
            .render_long_help()
            .to_string();
        assert!(spin.contains("--tasks"));
        assert!(!spin.contains("--test-fault"));
        assert!(!spin.contains("--starve-pid"));
        for flag in [
            "--cpus",
            "--policy",
            "--tick-hz",
            "--idle",
            "--sample-hz",
            "--max-wait",
        ] {
            assert!(spin.contains(flag), "spin --help lacks {flag}");
        }
    }
}
