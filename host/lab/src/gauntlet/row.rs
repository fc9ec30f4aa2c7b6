//! One gauntlet run's line: its verdict and key metrics, read from the
//! JSON report the child printed, and the table of all of them.

use super::{GauntletReport, Job};
use crate::compare::value;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::fmt::Write as _;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RunRow {
    pub name: String,
    pub workload: String,
    pub policy: String,
    pub cpus: u32,
    /// The run's `--topology`, when the matrix is of topologies.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub topology: Option<String>,
    /// "pass", "fail", "inconclusive", "error" or "interrupted" (a
    /// signal stopped it; its numbers cover the part that ran).
    pub verdict: String,
    /// The child's exit code (-1 if it was killed by a signal; 129, 130 or
    /// 143 if a signal interrupted it).
    pub exit_code: i32,
    pub throughput: Option<f64>,
    pub fairness_error: Option<f64>,
    pub max_wait_ns: Option<f64>,
    pub wake_p99_ns: Option<f64>,
    /// The operation's own headline number (see [`key_result`]).
    pub key_result: Option<KeyResult>,
    /// Wall time of the child process.
    pub wall_ms: u64,
    /// Why it errored or failed (the first reason), if it did.
    pub note: Option<String>,
    /// The run's result.json.
    pub result: String,
    /// The child printed a JSON report (the row's numbers are its).
    #[serde(skip)]
    pub reported: bool,
}

/// One of the operation's result numbers, named as `schedlab compare`
/// names it (e.g. `result.rtt_p99_ns`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct KeyResult {
    pub metric: String,
    pub value: f64,
}

/// The operation's headline number: its first judged p99 (the tail is
/// what a scheduler comparison is usually about; not a p99.9, `p999_ns`,
/// which sorts first in a result's JSON), a wake-up p99 before any other
/// (schbench's `request` sorts before its `wakeup`, but wake-ups are what
/// it is quoted for), else its first judged number of any kind.
pub fn key_result(m: &[(String, f64)]) -> Option<KeyResult> {
    let judged = || {
        m.iter().filter(|(k, _)| {
            k.starts_with("result.")
                && crate::compare::spec_of(k).direction != crate::compare::Direction::Info
        })
    };
    let p99 = || judged().filter(|(k, _)| k.contains("p99_"));
    p99()
        .find(|(k, _)| k.contains("wake"))
        .or_else(|| p99().next())
        .or_else(|| judged().next())
        .map(|(k, v)| KeyResult {
            metric: k.clone(),
            value: *v,
        })
}

/// A metric of the compare table, by name.
fn metric(m: &[(String, f64)], name: &str) -> Option<f64> {
    m.iter().find(|(k, _)| k == name).map(|(_, v)| *v)
}

impl RunRow {
    /// The row for `job` from what its process printed. A report that is
    /// not there or not JSON makes an error row that says so, with the
    /// last line of the child's stderr.
    pub fn from_output(
        job: &Job,
        exit_code: i32,
        stdout: &str,
        stderr: &str,
        wall_ms: u64,
        result: String,
    ) -> RunRow {
        let mut row = RunRow {
            name: job.name.clone(),
            workload: job.workload.clone(),
            policy: job.policy.clone(),
            cpus: job.cpus,
            topology: job.topology.clone(),
            verdict: "error".into(),
            exit_code,
            throughput: None,
            fairness_error: None,
            max_wait_ns: None,
            wake_p99_ns: None,
            key_result: None,
            wall_ms,
            note: None,
            result,
            reported: false,
        };
        let v: Value = match serde_json::from_str(stdout) {
            Ok(v) => v,
            Err(_) => {
                let last = stderr.lines().rev().find(|l| !l.trim().is_empty());
                row.note = Some(format!(
                    "no JSON report (exit code {exit_code}){}",
                    last.map(|l| format!(": {}", l.trim())).unwrap_or_default()
                ));
                return row;
            }
        };
        row.reported = true;
        let m = crate::compare::extract(&v);
        row.throughput = metric(&m, "throughput");
        row.fairness_error = metric(&m, "fairness_error");
        row.max_wait_ns = metric(&m, "max_wait_ns");
        row.wake_p99_ns = metric(&m, "wake_p99_ns");
        row.key_result = key_result(&m);
        match v.get("status").and_then(Value::as_str) {
            Some("interrupted") => {
                row.verdict = "interrupted".into();
                row.note = v
                    .pointer("/interrupted/message")
                    .and_then(Value::as_str)
                    .map(str::to_string);
                return row;
            }
            Some("error") => {
                row.note = v
                    .pointer("/error/message")
                    .and_then(Value::as_str)
                    .map(str::to_string);
                return row;
            }
            _ => {}
        }
        row.verdict = v
            .pointer("/verdict/status")
            .and_then(Value::as_str)
            .unwrap_or("inconclusive")
            .to_string();
        if row.verdict != "pass" {
            row.note = v
                .pointer("/verdict/reasons/0")
                .and_then(Value::as_str)
                .map(str::to_string);
        }
        row
    }

    #[cfg(test)]
    pub fn for_test(verdict: &str) -> RunRow {
        RunRow {
            name: "x".into(),
            workload: "spin".into(),
            policy: "rr".into(),
            cpus: 1,
            topology: None,
            verdict: verdict.into(),
            exit_code: 0,
            throughput: None,
            fairness_error: None,
            max_wait_ns: None,
            wake_p99_ns: None,
            key_result: None,
            wall_ms: 0,
            note: None,
            result: String::new(),
            reported: true,
        }
    }
}

/// Notes longer than this are cut in the table (JSON has them whole).
const NOTE_MAX: usize = 70;

pub fn table(r: &GauntletReport) -> String {
    let mut out = String::new();
    let w = |f: fn(&RunRow) -> usize, min: usize| r.runs.iter().map(f).max().unwrap_or(0).max(min);
    let ww = w(|x| x.workload.len(), "workload".len());
    let pw = w(|x| x.policy.len(), "policy".len());
    // A topology column only when the matrix has shapes.
    let tw = r
        .runs
        .iter()
        .filter_map(|x| x.topology.as_ref().map(String::len))
        .max()
        .map(|n| n.max("topology".len()));
    let topo =
        |t: Option<&str>| tw.map_or(String::new(), |tw| format!("{:<tw$}  ", t.unwrap_or("-")));
    let _ = writeln!(
        out,
        "{:<ww$}  {:<pw$}  {}{:>4}  {:<12}  {:>4}  {:>10}  {:>8}  {:>9}  {:>9}  {:<26}  {:>6}  note",
        "workload",
        "policy",
        topo(Some("topology")),
        "cpus",
        "verdict",
        "exit",
        "throughput",
        "fairness",
        "max wait",
        "wake p99",
        "result",
        "time"
    );
    let opt = |name: &str, v: Option<f64>| v.map_or("-".to_string(), |v| value(name, v));
    for x in &r.runs {
        let mut note = x.note.clone().unwrap_or_default();
        if note.chars().count() > NOTE_MAX {
            note = note.chars().take(NOTE_MAX - 3).collect::<String>() + "...";
        }
        let line = format!(
            "{:<ww$}  {:<pw$}  {}{:>4}  {:<12}  {:>4}  {:>10}  {:>8}  {:>9}  {:>9}  {:<26}  {:>5.1}s  {}",
            x.workload,
            x.policy,
            topo(x.topology.as_deref()),
            x.cpus,
            x.verdict,
            x.exit_code,
            opt("throughput", x.throughput),
            opt("fairness_error", x.fairness_error),
            opt("max_wait_ns", x.max_wait_ns),
            opt("wake_p99_ns", x.wake_p99_ns),
            x.key_result.as_ref().map_or("-".to_string(), |k| format!(
                "{} {}",
                k.metric.trim_start_matches("result."),
                value(&k.metric, k.value)
            )),
            x.wall_ms as f64 / 1e3,
            note
        );
        let _ = writeln!(out, "{}", line.trim_end());
    }
    let interrupted = match r.interrupted {
        Some(sig) => format!(
            ", {} interrupted by {}{}",
            r.interrupted_runs,
            sig.name(),
            match r.not_started.len() {
                0 => String::new(),
                n => format!(" ({n} not started)"),
            }
        ),
        None => String::new(),
    };
    let _ = writeln!(
        out,
        "\n{} runs: {} pass, {} fail, {} inconclusive, {} error{interrupted}; outputs in {}",
        r.runs.len(),
        r.passed,
        r.failed,
        r.inconclusive,
        r.errors,
        r.out
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job() -> Job {
        Job {
            workload: "spin".into(),
            policy: "rr".into(),
            cpus: 2,
            topology: None,
            name: "spin-rr-2cpu".into(),
            args: vec![],
            deadline_ms: 10_000,
            deadline_why: "its default timeout 5s + 5s margin".into(),
        }
    }

    #[test]
    fn a_report_gives_verdict_and_metrics() {
        let stdout = r#"{"operation":"spin","status":"ok","totals":{"units_per_sec":5.0e6},
            "metrics":{"max_fairness_error":0.05,"wake_latency":{"count":0,"p99_ns":0},
            "tasks":[{"max_wait_ns":2000000}]},
            "verdict":{"status":"fail","reasons":["task 2 waited 2 ms"]}}"#;
        let r = RunRow::from_output(&job(), 1, stdout, "", 300, "d/result.json".into());
        assert_eq!(r.verdict, "fail");
        assert_eq!(r.throughput, Some(5e6));
        assert_eq!(r.max_wait_ns, Some(2e6));
        assert_eq!(r.wake_p99_ns, None, "no wake-ups, no latency");
        assert_eq!(r.note.as_deref(), Some("task 2 waited 2 ms"));
    }

    #[test]
    fn the_key_result_is_the_first_judged_p99() {
        let m = |names: &[&str]| -> Vec<(String, f64)> {
            names.iter().map(|n| (n.to_string(), 1.0)).collect()
        };
        let k = |names: &[&str]| key_result(&m(names)).map(|k| k.metric);
        assert_eq!(
            k(&[
                "wake_p99_ns",
                "result.rounds",
                "result.rtt_max_ns",
                "result.rtt_p99_ns"
            ]),
            Some("result.rtt_p99_ns".into())
        );
        assert_eq!(
            k(&[
                "result.rtt.p50_ns",
                "result.rtt.p999_ns",
                "result.rtt.p99_ns"
            ]),
            Some("result.rtt.p99_ns".into())
        );
        assert_eq!(
            k(&["result.request.p99_ns", "result.wakeup.p99_ns"]),
            Some("result.wakeup.p99_ns".into())
        );
        assert_eq!(
            k(&["result.rounds", "result.msgs_per_sec"]),
            Some("result.msgs_per_sec".into())
        );
        assert_eq!(k(&["result.rounds", "throughput"]), None);
    }

    #[test]
    fn an_error_or_no_report_is_an_error_row() {
        let stdout = r#"{"status":"error","error":{"kind":"guest_panic","message":"boom"}}"#;
        let r = RunRow::from_output(&job(), 70, stdout, "", 1, String::new());
        assert_eq!(
            (r.verdict.as_str(), r.note.as_deref()),
            ("error", Some("boom"))
        );
        let r = RunRow::from_output(&job(), -1, "", "x\nkilled\n\n", 1, String::new());
        assert_eq!(r.verdict, "error");
        assert_eq!(
            r.note.as_deref(),
            Some("no JSON report (exit code -1): killed")
        );
    }

    #[test]
    fn an_interrupted_child_is_an_interrupted_row_with_its_numbers() {
        let stdout = r#"{"operation":"spin","status":"interrupted",
            "interrupted":{"signal":"SIGINT","exit_code":130,"message":"interrupted by SIGINT after 1 s"},
            "metrics":{"max_fairness_error":0.05,"tasks":[{"max_wait_ns":2000000}]},
            "verdict":{"status":"inconclusive","reasons":["interrupted by SIGINT: judged"]}}"#;
        let r = RunRow::from_output(&job(), 130, stdout, "", 1000, String::new());
        assert_eq!(r.verdict, "interrupted");
        assert_eq!(r.exit_code, 130);
        assert_eq!(r.max_wait_ns, Some(2e6), "the partial numbers are kept");
        assert_eq!(r.note.as_deref(), Some("interrupted by SIGINT after 1 s"));
        assert!(r.reported);
        assert!(!RunRow::from_output(&job(), -1, "", "", 1, String::new()).reported);
    }

    #[test]
    fn the_table_has_a_header_and_one_line_per_run() {
        let runs = vec![RunRow::for_test("pass"), RunRow::for_test("fail")];
        let rep = GauntletReport::new("out".into(), 2, runs, Vec::new(), None, Vec::new());
        let t = table(&rep);
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[0].starts_with("workload"));
        assert_eq!(lines.iter().filter(|l| l.starts_with("spin ")).count(), 2);
        assert!(t.contains("2 runs: 1 pass, 1 fail, 0 inconclusive, 0 error"));
    }
}
