//! Flags for the monitor and the verdict: how often the host samples the
//! guest's run queues, and the limits a run must stay within to pass.
//! Validated before any VM starts.

use super::policy::{Promises, Shares};
use super::{HOUR_NS, parse_duration};
use clap::{Args, ValueEnum};
use vmm::exit::{Failure, Result};

/// Highest sample rate accepted: well above what the monitor sustains here
/// (about 20 kHz), far below anything that would only burn a host CPU.
pub const MAX_SAMPLE_HZ: u32 = 100_000;

#[derive(Debug, Clone, Args)]
pub struct JudgeArgs {
    /// How often the host samples every vCPU's record from guest memory
    /// (no VM exit, no guest code runs for it); 0 turns sampling and the
    /// live checks off. Free while a host CPU is spare; when every host CPU
    /// runs a vCPU, each sample preempts one (measured here with 2 vCPUs on
    /// 2 host CPUs: 1 kHz costs nothing, 10 kHz about 25 % of the guest's
    /// throughput).
    #[arg(
        long,
        value_name = "HZ",
        default_value_t = 1000,
        allow_negative_numbers = true
    )]
    pub sample_hz: i64,
    /// An online vCPU whose clock (advanced by every tick, switch and idle
    /// wake-up) stops this long is reported stalled and the run ends
    /// (fail); never less than two tick periods (--tick-hz).
    #[arg(
        long,
        value_name = "DUR",
        default_value = "250ms",
        allow_hyphen_values = true
    )]
    pub stall_threshold: String,
    /// Longest a runnable task may wait for a CPU ("off" to not check); a
    /// task waiting longer ends the run early (fail).
    #[arg(
        long,
        value_name = "DUR|off",
        default_value = "100ms",
        allow_hyphen_values = true
    )]
    pub max_wait: String,
    /// Largest allowed |share / entitled share - 1| of any task, e.g. 0.10
    /// or 10% ("off" to not check).
    #[arg(
        long,
        value_name = "X|off",
        default_value = "0.10",
        allow_hyphen_values = true
    )]
    pub max_fairness_error: String,
    /// Largest allowed p99 wake-up latency, e.g. 2ms [default: off].
    #[arg(long, value_name = "DUR|off", allow_hyphen_values = true)]
    pub max_wake_p99: Option<String>,
    /// Also judge what the policy does not promise (`schedlab policies`
    /// lists the promises): shares (the fairness limit, against the
    /// weights) and wait (the runnable-wait limit). Unpromised ones are
    /// still measured and shown.
    #[arg(long, value_enum, value_name = "LIST", value_delimiter = ',')]
    pub check: Vec<Extra>,
}

/// What `--check` can add to a policy's promises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Extra {
    Shares,
    Wait,
}

/// A threshold that was measured but not judged, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unjudged {
    /// The check's name (`max_fairness_error`, `max_wait_ns`).
    pub check: &'static str,
    /// "fifo promises no fair shares; --check shares judges them"
    pub why: String,
}

/// Validated monitor and verdict settings.
#[derive(Debug, Clone, PartialEq)]
pub struct JudgeSettings {
    /// 0 = no sampling, no live checks.
    pub sample_hz: u32,
    pub stall_threshold_ns: u64,
    pub max_wait_ns: Option<u64>,
    pub max_fairness_error: Option<f64>,
    pub max_wake_p99_ns: Option<u64>,
    /// `--check`.
    pub extra: Vec<Extra>,
    /// The shares the run is held to (from the policy's promise, or
    /// weighted with `--check shares`); None: shares are not judged.
    pub shares: Option<Shares>,
    /// Waits are judged (and the live starvation check runs).
    pub wait_judged: bool,
    /// Thresholds measured but not judged.
    pub unjudged: Vec<Unjudged>,
}

impl JudgeSettings {
    /// The thresholds the verdict applies: those asked for that the policy
    /// promises or `--check` adds.
    /// The unpromised ones are measured and shown, marked not judged.
    pub fn thresholds(&self) -> analysis::Thresholds {
        analysis::Thresholds {
            max_wait_ns: self.max_wait_ns,
            max_fairness_error: self.max_fairness_error,
            max_wake_p99_ns: self.max_wake_p99_ns,
            not_judged: self
                .unjudged
                .iter()
                .map(|u| (u.check, u.why.clone()))
                .collect(),
        }
    }

    /// The live starvation limit: only where waits are judged.
    pub fn live_max_wait_ns(&self) -> Option<u64> {
        self.max_wait_ns.filter(|_| self.wait_judged)
    }

    /// Hold the run to what policy `name` promises, plus `--check`.
    pub fn apply_promises(&mut self, name: &str, p: Promises) {
        let forced = |e| self.extra.contains(&e);
        self.shares = match p.shares {
            Shares::None if forced(Extra::Shares) => Some(Shares::Weighted),
            Shares::None => None,
            s => Some(s),
        };
        self.wait_judged = p.bounded_wait || forced(Extra::Wait);
        self.unjudged.clear();
        if self.max_fairness_error.is_some() && self.shares.is_none() {
            self.unjudged.push(Unjudged {
                check: "max_fairness_error",
                why: format!("{name} promises no fair shares; --check shares judges them"),
            });
        }
        if self.max_wait_ns.is_some() && !self.wait_judged {
            self.unjudged.push(Unjudged {
                check: "max_wait_ns",
                why: format!("{name} promises no bounded wait; --check wait judges it"),
            });
        }
    }
}

fn is_off(text: &str) -> bool {
    matches!(text.trim(), "off" | "none")
}

fn optional_duration(flag: &str, text: Option<&str>) -> Result<Option<u64>> {
    match text {
        None => Ok(None),
        Some(t) if is_off(t) => Ok(None),
        Some(t) => parse_duration(flag, t, 1_000, HOUR_NS).map(Some),
    }
}

/// "0.1", "10%", or "off".
fn parse_fraction(flag: &str, text: &str) -> Result<Option<f64>> {
    if is_off(text) {
        return Ok(None);
    }
    let t = text.trim();
    let (num, scale) = match t.strip_suffix('%') {
        Some(n) => (n.trim(), 100.0),
        None => (t, 1.0),
    };
    let v: f64 = num.parse().map_err(|_| {
        Failure::usage(format!(
            "{flag}: '{text}' is not a number (write e.g. 0.10, 10% or off)"
        ))
    })?;
    let v = v / scale;
    if !v.is_finite() || v <= 0.0 || v > 10.0 {
        return Err(Failure::usage(format!(
            "{flag}: '{text}' must be greater than 0 and at most 10 (1000%)"
        )));
    }
    Ok(Some(v))
}

impl JudgeArgs {
    pub fn validate(&self) -> Result<JudgeSettings> {
        if self.sample_hz < 0 || self.sample_hz > MAX_SAMPLE_HZ as i64 {
            return Err(Failure::usage(format!(
                "--sample-hz must be between 0 (monitor off) and {MAX_SAMPLE_HZ}, got {}",
                self.sample_hz
            )));
        }
        let stall_threshold_ns = parse_duration(
            "--stall-threshold",
            &self.stall_threshold,
            1_000_000,
            HOUR_NS,
        )?;
        Ok(JudgeSettings {
            sample_hz: self.sample_hz as u32,
            stall_threshold_ns,
            max_wait_ns: optional_duration("--max-wait", Some(&self.max_wait))?,
            max_fairness_error: parse_fraction("--max-fairness-error", &self.max_fairness_error)?,
            max_wake_p99_ns: optional_duration("--max-wake-p99", self.max_wake_p99.as_deref())?,
            extra: self.check.clone(),
            // Until apply_promises knows the policy: everything asked for.
            shares: Some(Shares::Weighted),
            wait_judged: true,
            unjudged: Vec::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn judge(extra: &[&str]) -> Result<JudgeSettings> {
        let mut argv = vec!["schedlab", "spin"];
        argv.extend_from_slice(extra);
        let a: crate::operations::spin::SpinArgs = crate::parse_args(&argv);
        a.common.judge.validate()
    }

    #[test]
    fn a_run_is_held_to_what_its_policy_promises() {
        let by = |name| {
            let p = super::super::policy::Policy::builtin(name)
                .unwrap()
                .unwrap();
            (p.name, p.promises)
        };
        let mut j = judge(&[]).unwrap();
        let (n, p) = by("fifo");
        j.apply_promises(&n, p);
        assert_eq!(j.shares, None);
        assert!(!j.wait_judged);
        let t = j.thresholds();
        let skipped: Vec<&str> = t.not_judged.iter().map(|(c, _)| *c).collect();
        assert_eq!(skipped, ["max_fairness_error", "max_wait_ns"]);
        assert_eq!(j.live_max_wait_ns(), None, "no live starvation alarm");
        let names: Vec<&str> = j.unjudged.iter().map(|u| u.check).collect();
        assert_eq!(names, ["max_fairness_error", "max_wait_ns"]);
        assert!(
            j.unjudged[0].why.contains("--check shares"),
            "{:?}",
            j.unjudged
        );

        let (n, p) = by("rr");
        j.apply_promises(&n, p);
        assert_eq!(j.shares, Some(Shares::Equal));
        assert!(j.wait_judged && j.unjudged.is_empty());
        assert!(j.thresholds().not_judged.is_empty());
        let (n, p) = by("vtime");
        j.apply_promises(&n, p);
        assert_eq!(j.shares, Some(Shares::Weighted));

        let mut j = judge(&["--check", "shares,wait"]).unwrap();
        let (n, p) = by("fifo");
        j.apply_promises(&n, p);
        assert_eq!(j.shares, Some(Shares::Weighted));
        assert!(j.wait_judged && j.unjudged.is_empty());
        assert_eq!(j.thresholds().max_fairness_error, Some(0.10));
    }

    #[test]
    fn defaults_match_the_documented_thresholds() {
        let j = judge(&[]).unwrap();
        assert_eq!(j.sample_hz, 1000);
        assert_eq!(j.stall_threshold_ns, 250_000_000);
        assert_eq!(j.max_wait_ns, Some(100_000_000));
        assert_eq!(j.max_fairness_error, Some(0.10));
        assert_eq!(j.max_wake_p99_ns, None);
    }

    #[test]
    fn thresholds_parse_and_can_be_turned_off() {
        let j = judge(&[
            "--max-wait",
            "off",
            "--max-fairness-error",
            "5%",
            "--max-wake-p99",
            "2ms",
            "--sample-hz",
            "0",
        ])
        .unwrap();
        assert_eq!(j.max_wait_ns, None);
        assert!((j.max_fairness_error.unwrap() - 0.05).abs() < 1e-12);
        assert_eq!(j.max_wake_p99_ns, Some(2_000_000));
        assert_eq!(j.sample_hz, 0);
        let t = j.thresholds();
        assert_eq!(t.max_wake_p99_ns, Some(2_000_000));
        assert_eq!(
            judge(&["--max-fairness-error", "off"])
                .unwrap()
                .max_fairness_error,
            None
        );
    }

    #[test]
    fn bad_values_name_their_flag() {
        let m = |a: &[&str]| judge(a).unwrap_err().message;
        assert!(m(&["--sample-hz", "-1"]).starts_with("--sample-hz must be between 0"));
        assert!(m(&["--sample-hz", "100001"]).starts_with("--sample-hz"));
        assert!(m(&["--max-fairness-error", "x"]).starts_with("--max-fairness-error: 'x'"));
        assert!(m(&["--max-fairness-error", "0"]).starts_with("--max-fairness-error"));
        assert!(m(&["--max-fairness-error", "-1"]).starts_with("--max-fairness-error"));
        assert!(m(&["--max-wait", "0ms"]).starts_with("--max-wait: '0ms'"));
        assert!(m(&["--max-wake-p99", "abc"]).starts_with("--max-wake-p99: 'abc'"));
        assert!(m(&["--stall-threshold", "10us"]).starts_with("--stall-threshold: '10us'"));
    }
}
