//! What the classic workloads (pingpong, fanout, periodic, mixed, schbench)
//! share on the host: bounded counts and optional limits from the command
//! line, a default timeout that leaves room for work not measured in
//! --duration, latency numbers for JSON and for people, the run
//! description every headline and config ends with, and the checks every
//! result needs.

use crate::settings::{HOUR_NS, RunSettings, parse_duration};
use analysis::Check;
use guest_protocol::LatencyStats;
use serde_json::{Value, json};
use std::time::Duration;
use vmm::exit::{ErrorKind, Failure, Result};
use vmm::vm::run::RunOutcome;

/// `value` as a count in `[min, max]`, or a usage error naming `flag`.
pub fn count(flag: &str, value: i64, min: u32, max: u32, why: &str) -> Result<u32> {
    if value < i64::from(min) || value > i64::from(max) {
        return Err(Failure::usage(format!(
            "{flag} must be between {min} and {max}{why}, got {value}"
        )));
    }
    Ok(value as u32)
}

/// "DUR" or "off" (also absent): a latency limit for a check.
pub fn limit(flag: &str, text: Option<&str>) -> Result<Option<u64>> {
    match text.map(str::trim) {
        None | Some("off") | Some("none") => Ok(None),
        Some(t) => parse_duration(flag, t, 1_000, HOUR_NS).map(Some),
    }
}

/// Raise the default timeout (max(5 s, 2 x duration + 5 s)) to cover
/// `work_ns` the workload is expected to take besides --duration, when
/// no --timeout was given. A run that needs more can say --timeout.
pub fn cover_work(settings: &mut RunSettings, timeout_given: bool, work_ns: u64) {
    if !timeout_given {
        let want = Duration::from_nanos(work_ns.min(HOUR_NS)) + Duration::from_secs(5);
        settings.timeout = settings.timeout.max(want);
    }
}

/// "on 2 vCPUs, policy rr, tick 1000 Hz, idle halt"
pub fn machine(s: &RunSettings) -> String {
    let sched = &s.sched;
    format!(
        "on {} vCPU{}, policy {}, tick {} Hz, idle {}",
        sched.cpus,
        if sched.cpus == 1 { "" } else { "s" },
        sched.policy.name,
        sched.tick_hz,
        sched.idle.name()
    )
}

pub fn latency_json(l: &LatencyStats) -> Value {
    json!({
        "count": l.count,
        "p50_ns": l.p50_ns,
        "p90_ns": l.p90_ns,
        "p99_ns": l.p99_ns,
        "p999_ns": l.p999_ns,
        "max_ns": l.max_ns,
        "mean_ns": l.mean_ns,
    })
}

/// A latency in µs below a millisecond, else in ms.
pub fn fmt_latency(ns: u64) -> String {
    if ns < 1_000_000 {
        format!("{:.1} µs", ns as f64 / 1e3)
    } else {
        format!("{:.2} ms", ns as f64 / 1e6)
    }
}

/// "p50 12.3 µs, p99 40.1 µs, max 120.0 µs, mean 14.0 µs (10000 samples)"
pub fn latency_text(l: &LatencyStats) -> String {
    format!(
        "p50 {}, p99 {}, max {}, mean {} ({} samples)",
        fmt_latency(l.p50_ns),
        fmt_latency(l.p99_ns),
        fmt_latency(l.max_ns),
        fmt_latency(l.mean_ns),
        l.count
    )
}

/// `n` per second over `elapsed_ns`, for people: "71.23 k".
pub fn rate(n: u64, elapsed_ns: u64) -> (f64, String) {
    let v = if elapsed_ns == 0 {
        0.0
    } else {
        n as f64 * 1e9 / elapsed_ns as f64
    };
    let text = if v >= 1e6 {
        format!("{:.2} M", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.2} k", v / 1e3)
    } else {
        format!("{v:.1}")
    };
    (v, text)
}

/// A latency limit on `l`'s p99 as a check ("off": no check).
pub fn latency_check(
    name: &str,
    what: &str,
    l: &LatencyStats,
    limit_ns: Option<u64>,
) -> Option<Check> {
    let limit = limit_ns?;
    Some(Check {
        name: name.into(),
        value: l.p99_ns as f64,
        limit: limit as f64,
        passed: l.p99_ns <= limit,
        detail: format!(
            "{what} p99 {}, max {} over {} samples (limit {})",
            fmt_latency(l.p99_ns),
            fmt_latency(l.max_ns),
            l.count,
            fmt_latency(limit)
        ),
        judged: true,
    })
}

/// The failure a finished run without the operation's result is, or one
/// whose operation exited with an error; None if neither.
pub fn result_failure(out: &RunOutcome, op: &str, have_result: bool) -> Option<Failure> {
    if out.failure.is_some() || !out.finished {
        return None;
    }
    if !have_result {
        return Some(Failure::new(
            ErrorKind::MissingResult,
            format!("the guest finished but sent no {op} result"),
        ));
    }
    out.complete.as_ref().filter(|c| c.exit_code != 0).map(|c| {
        Failure::new(
            ErrorKind::GuestFailed,
            format!("the {op} operation exited with code {}", c.exit_code),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_limits_name_their_flag() {
        assert_eq!(count("--pairs", 3, 1, 64, ""), Ok(3));
        let e = count("--pairs", 65, 1, 64, " (the guest's limit)").unwrap_err();
        assert_eq!(
            e.message,
            "--pairs must be between 1 and 64 (the guest's limit), got 65"
        );
        assert_eq!(e.exit_code(), 64);
        assert!(count("--pairs", -1, 1, 64, "").is_err());
        assert_eq!(limit("--max-rtt-p99", None), Ok(None));
        assert_eq!(limit("--max-rtt-p99", Some("off")), Ok(None));
        assert_eq!(limit("--max-rtt-p99", Some("2ms")), Ok(Some(2_000_000)));
        assert!(
            limit("--max-rtt-p99", Some("2"))
                .unwrap_err()
                .message
                .starts_with("--max-rtt-p99: '2'")
        );
    }

    #[test]
    fn latencies_read_in_the_right_unit() {
        assert_eq!(fmt_latency(12_345), "12.3 µs");
        assert_eq!(fmt_latency(2_500_000), "2.50 ms");
        let l = LatencyStats {
            count: 3,
            p50_ns: 1_000,
            p99_ns: 2_000,
            max_ns: 3_000_000,
            mean_ns: 1_500,
            ..Default::default()
        };
        assert_eq!(
            latency_text(&l),
            "p50 1.0 µs, p99 2.0 µs, max 3.00 ms, mean 1.5 µs (3 samples)"
        );
        assert_eq!(latency_json(&l)["max_ns"], 3_000_000);
        assert_eq!(rate(1500, 1_000_000_000).1, "1.50 k");
        assert_eq!(rate(5, 0).0, 0.0);
        let c = latency_check("x", "rtt", &l, Some(1_000)).unwrap();
        assert!(!c.passed);
        assert_eq!(
            c.detail,
            "rtt p99 2.0 µs, max 3.00 ms over 3 samples (limit 1.0 µs)"
        );
        assert!(latency_check("x", "rtt", &l, Some(2_000)).unwrap().passed);
        assert!(latency_check("x", "rtt", &l, None).is_none());
    }

    #[test]
    fn a_missing_result_or_a_bad_exit_code_is_a_failure() {
        let mut out = RunOutcome {
            finished: true,
            ..Default::default()
        };
        assert_eq!(
            result_failure(&out, "fanout", false).unwrap().kind,
            ErrorKind::MissingResult
        );
        assert!(result_failure(&out, "fanout", true).is_none());
        out.complete = Some(guest_protocol::Complete {
            exit_code: 3,
            ..Default::default()
        });
        let f = result_failure(&out, "fanout", true).unwrap();
        assert_eq!(f.kind, ErrorKind::GuestFailed);
        assert!(f.message.contains("code 3"));
        out.finished = false;
        assert!(result_failure(&out, "fanout", false).is_none());
    }
}
