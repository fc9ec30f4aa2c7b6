//! The flags every operation shares. Parsed by clap, then validated here
//! into plain settings before anything touches /dev/kvm, so a typo never
//! costs a VM start and every message names the flag at fault.

pub mod bpf_object;
pub mod judge;
pub mod policy;
pub mod sched;
pub mod topology;

use abi::boot::{MAX_SLICE_NS, MIN_SLICE_NS};
use clap::Args;
use judge::{JudgeArgs, JudgeSettings};
use sched::{SchedArgs, SchedSettings};
use std::time::Duration;
use vmm::exit::{Failure, Result};

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
    /// the host and the versions, written even when the run fails or a
    /// signal stops it), timeline.svg and latency.svg drawn from the
    /// scheduling events, the events themselves as trace.perfetto-trace
    /// (open it in ui.perfetto.dev or trace_processor) and events.jsonl
    /// (one JSON object per event, for scripts).
    #[arg(long, value_name = "DIR")]
    pub out: Option<std::path::PathBuf>,
    /// Write the run's scheduling events as a Perfetto trace to FILE
    /// (also without --out): every switch, wake-up, spawn, migration and
    /// exit, per CPU, tasks named by their operation or scenario.
    #[arg(long, value_name = "FILE")]
    pub trace: Option<std::path::PathBuf>,
    /// Draw timeline.svg over this stretch of the run only, in time since
    /// its first event, e.g. 100ms..120ms: individual slices become
    /// readable where a whole run is a barcode (needs --out).
    #[arg(long, value_name = "START..END")]
    pub timeline_window: Option<String>,
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
    /// `--trace` (checked here).
    pub trace: Option<std::path::PathBuf>,
    /// `--timeline-window`, ns since the first event.
    pub timeline_window: Option<(u64, u64)>,
    pub verbose: bool,
    pub sched: SchedSettings,
    pub judge: JudgeSettings,
}

pub use vmm::units::{HOUR_NS, NS_PER_SEC, fmt_ns};

impl RunSettings {
    /// The stall threshold the monitor applies: `--stall-threshold`, but
    /// at least two tick periods. A CPU's clock advances at its ticks, and
    /// an idle one, or one whose only task reaches the scheduler from its
    /// preemption points, may hear nothing else for a whole period: with
    /// `--tick-hz 1` every run was stopped as stalled after 250 ms.
    pub fn stall_threshold_ns(&self) -> u64 {
        let period = NS_PER_SEC / u64::from(self.sched.tick_hz.max(1));
        self.judge.stall_threshold_ns.max(2 * period)
    }
}

/// Largest task weight accepted: the core's limit, defined once in the ABI.
pub use abi::ipc::MAX_WEIGHT;

impl CommonArgs {
    pub fn validate(&self) -> Result<RunSettings> {
        let duration_ns = parse_duration("--duration", &self.duration, 1, HOUR_NS)?;
        let slice_ns = parse_duration("--slice", &self.slice, MIN_SLICE_NS, MAX_SLICE_NS)?;
        let timeout = match &self.timeout {
            Some(t) => Duration::from_nanos(parse_duration("--timeout", t, 1, HOUR_NS)?),
            None => default_timeout(duration_ns),
        };
        let mem_bytes = match self.mem {
            None => abi::memmap::GUEST_RAM_DEFAULT,
            Some(mib) => {
                let min = abi::memmap::GUEST_RAM_MIN >> 20;
                let max = vmm::vm::setup::MAX_RAM_BYTES >> 20;
                if mib < min || mib > max || mib % 2 != 0 {
                    return Err(Failure::usage(format!(
                        "--mem must be an even number of MiB between {min} and {max}, got {mib}"
                    )));
                }
                mib << 20
            }
        };
        let sched = self.sched.validate(slice_ns)?;
        let mut judge = self.judge.validate()?;
        judge.apply_promises(&sched.policy.name, sched.policy.promises);
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
            trace: match &self.trace {
                Some(f) => Some(crate::outputs::check_file("--trace", f)?),
                None => None,
            },
            timeline_window: match &self.timeline_window {
                Some(_) if self.out.is_none() => {
                    return Err(Failure::usage(
                        "--timeline-window applies to timeline.svg, which only --out DIR writes",
                    ));
                }
                Some(w) => Some(parse_window(w)?),
                None => None,
            },
            verbose: self.verbose,
            sched,
            judge,
        })
    }
}

/// `--timeline-window START..END` in ns, START < END.
pub fn parse_window(text: &str) -> Result<(u64, u64)> {
    const FLAG: &str = "--timeline-window";
    let Some((a, b)) = text.split_once("..") else {
        return Err(Failure::usage(format!(
            "{FLAG}: '{text}' is not START..END (e.g. 100ms..120ms, times since the run's first \
             event)"
        )));
    };
    let max = 24 * 3600 * NS_PER_SEC;
    // The run's very start is a fine START ("0", "0ms"); durations
    // elsewhere must be positive.
    let zero = {
        let t = a.trim();
        t.starts_with('0')
            && t.trim_start_matches(['0', '.'])
                .chars()
                .all(char::is_alphabetic)
    };
    let start = if zero {
        0
    } else {
        parse_duration(FLAG, a, 1, max)?
    };
    let end = parse_duration(FLAG, b, 1, max)?;
    if start >= end {
        return Err(Failure::usage(format!(
            "{FLAG}: '{text}' ends before it starts: give START..END with START < END"
        )));
    }
    Ok((start, end))
}

/// max(5 s, 2 x duration + 5 s): room for boot and reporting on a slow,
/// emulated CPL0 without letting a hung guest block a script for long.
pub fn default_timeout(duration_ns: u64) -> Duration {
    let ns = duration_ns.saturating_mul(2).saturating_add(5 * NS_PER_SEC);
    Duration::from_nanos(ns.max(5 * NS_PER_SEC))
}

/// Parse "200ms", "1s", "10us", "500ns", "2.5s", "1h" into nanoseconds,
/// exactly (no floating point), and check it lies in `[min_ns, max_ns]`.
/// Hours are accepted because the limits are written in them ("at most
/// 1h", which `fmt_ns` prints): a limit must be something one can type.
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
        "h" => HOUR_NS as u128,
        "" => {
            return Err(bad(
                "has no unit: write e.g. 200ms, 1s, 2.5s, 10us or 500ns",
            ));
        }
        _ => {
            return Err(bad(
                "has an unknown unit: use ns, us, ms, s or h (e.g. 200ms, 2.5s, 1h)",
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::operations::spin::SpinArgs;

    fn d(text: &str) -> std::result::Result<u64, String> {
        parse_duration("--duration", text, 1, HOUR_NS).map_err(|e| e.message)
    }

    #[test]
    fn a_timeline_window_is_start_before_end() {
        let w = |t: &str| parse_window(t).map_err(|e| e.message);
        assert_eq!(w("100ms..120ms"), Ok((100_000_000, 120_000_000)));
        assert_eq!(w("0ns..1us"), Ok((0, 1_000)));
        for bad in ["100ms", "120ms..100ms", "5ms..5ms", "a..b", "-1ms..2ms"] {
            let e = w(bad).unwrap_err();
            assert!(e.starts_with("--timeline-window: "), "{bad}: {e}");
        }
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
        assert_eq!(d("1h"), Ok(HOUR_NS), "the help says at most 1h");
        assert_eq!(d("0.5h"), Ok(HOUR_NS / 2));
    }

    #[test]
    fn bad_durations_name_the_flag_and_the_value() {
        assert_eq!(
            d("0ms").unwrap_err(),
            "--duration: '0ms' must be greater than zero"
        );
        assert!(d("-5ms").unwrap_err().contains("negative"));
        assert!(d("200").unwrap_err().contains("has no unit"));
        assert!(d("2d").unwrap_err().contains("unknown unit"));
        assert!(d("2h").unwrap_err().contains("the maximum is 1h"));
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
        let a: SpinArgs = crate::parse_args(&["schedlab", "spin", "--mem", "3"]);
        assert!(
            a.common
                .validate()
                .unwrap_err()
                .message
                .starts_with("--mem")
        );
        let a: SpinArgs = crate::parse_args(&["schedlab", "spin", "--slice", "2s"]);
        assert!(
            a.common
                .validate()
                .unwrap_err()
                .message
                .starts_with("--slice")
        );
        let a: SpinArgs =
            crate::parse_args(&["schedlab", "spin", "--timeout", "1s", "--mem", "128"]);
        let s = a.common.validate().unwrap();
        assert_eq!(s.timeout, Duration::from_secs(1));
        assert_eq!(s.mem_bytes, 128 << 20);
    }

    #[test]
    fn the_stall_threshold_covers_two_tick_periods() {
        let stall = |args: &[&str]| {
            let mut argv = vec!["schedlab", "spin"];
            argv.extend_from_slice(args);
            let a: SpinArgs = crate::parse_args(&argv);
            a.common.validate().unwrap().stall_threshold_ns()
        };
        assert_eq!(stall(&[]), 250_000_000, "the default at 1 kHz");
        assert_eq!(stall(&["--tick-hz", "1"]), 2 * NS_PER_SEC);
        assert_eq!(stall(&["--tick-hz", "4"]), 500_000_000);
        assert_eq!(
            stall(&["--stall-threshold", "5s", "--tick-hz", "1"]),
            5 * NS_PER_SEC
        );
    }
}
