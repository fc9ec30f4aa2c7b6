//! `schedlab compare`'s tables for people: per pair, what differs in the
//! config, the verdicts, then one line per metric with both values, the
//! change and what it means; a summary line last.

use super::metrics::{Direction, Outcome, Row};
use super::{CompareReport, PairReport};
use serde_json::Value;
use std::fmt::Write as _;

/// A metric's value in its unit: `_ns` as a duration, fractions with three
/// decimals, whole numbers as such, others with four significant digits.
pub fn value(metric: &str, v: f64) -> String {
    if metric.ends_with("_ns") {
        return duration(v);
    }
    if metric.ends_with("_us") {
        return duration(v * 1e3);
    }
    let fraction = ["utilisation", "error", "imbalance", "share"]
        .iter()
        .any(|f| metric.contains(f));
    if fraction || (v.abs() < 10.0 && v.fract() != 0.0) {
        return format!("{v:.3}");
    }
    if v.abs() >= 1e6 {
        return format!("{:.3}M", v / 1e6);
    }
    if v.abs() >= 1e4 {
        return format!("{:.1}k", v / 1e3);
    }
    if v.fract() == 0.0 {
        return format!("{v:.0}");
    }
    format!("{v:.1}")
}

fn duration(ns: f64) -> String {
    let a = ns.abs();
    if a >= 1e9 {
        format!("{:.2}s", ns / 1e9)
    } else if a >= 1e6 {
        format!("{:.2}ms", ns / 1e6)
    } else if a >= 1e3 {
        format!("{:.1}us", ns / 1e3)
    } else {
        format!("{ns:.0}ns")
    }
}

fn change(r: &Row) -> String {
    match (r.change, r.a, r.b) {
        (Some(c), _, _) => format!("{:+.1}%", c * 100.0),
        (None, Some(_), Some(_)) => "from 0".into(),
        _ => String::new(),
    }
}

/// The limit; `*` marks one widened for a statistic of few samples.
fn limit(r: &Row) -> String {
    match r.direction {
        Direction::Info => String::new(),
        d => format!(
            "{}{:.0}%{}",
            if d == Direction::Lower { "+" } else { "-" },
            r.threshold * 100.0,
            if r.few_samples { "*" } else { "" }
        ),
    }
}

fn outcome(r: &Row) -> &'static str {
    match r.outcome {
        Outcome::Regressed => "REGRESSED",
        Outcome::Improved => "better",
        Outcome::Same => "ok",
        Outcome::Info => "",
        Outcome::Missing => "missing on one side",
    }
}

fn config_value(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

fn pair(out: &mut String, p: &PairReport) {
    let _ = writeln!(out, "== {} ({})", p.name, p.operation);
    if !p.config_changes.is_empty() {
        let changes: Vec<String> = p
            .config_changes
            .iter()
            .map(|(k, [a, b])| format!("{k} {} -> {}", config_value(a), config_value(b)))
            .collect();
        let _ = writeln!(out, "   config: {}", changes.join(", "));
    }
    let width = p
        .metrics
        .iter()
        .map(|r| r.metric.len())
        .max()
        .unwrap_or(0)
        .max("verdict".len());
    let _ = writeln!(
        out,
        "   {:<width$}  {:>12}  {:>12}  {:>9}  {:>6}",
        "metric", "A", "B", "change", "limit"
    );
    let verdict = format!(
        "   {:<width$}  {:>12}  {:>12}  {:>9}  {:>6}  {}",
        "verdict",
        p.verdict.a,
        p.verdict.b,
        "",
        "",
        if p.verdict.regressed { "REGRESSED" } else { "" }
    );
    let _ = writeln!(out, "{}", verdict.trim_end());
    for r in &p.metrics {
        let v = |x: Option<f64>| x.map_or("-".to_string(), |x| value(&r.metric, x));
        let line = format!(
            "   {:<width$}  {:>12}  {:>12}  {:>9}  {:>6}  {}",
            r.metric,
            v(r.a),
            v(r.b),
            change(r),
            limit(r),
            outcome(r)
        );
        let _ = writeln!(out, "{}", line.trim_end());
    }
    if p.omitted != [0, 0] {
        let _ = writeln!(
            out,
            "   not compared: {} values of A's result, {} of B's (over {} numbers, or names over \
             {} characters)",
            p.omitted[0],
            p.omitted[1],
            super::metrics::MAX_RESULT_METRICS,
            super::metrics::MAX_NAME_CHARS
        );
    }
    out.push('\n');
}

pub fn human(r: &CompareReport) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "compare: A = {}, B = {}\n", r.a, r.b);
    for p in &r.pairs {
        pair(&mut out, p);
    }
    for (side, keys) in [("A", &r.only_in_a), ("B", &r.only_in_b)] {
        if !keys.is_empty() {
            let _ = writeln!(out, "only in {side} (not compared): {}", keys.join(", "));
        }
    }
    // With one pair the metric names say it all; with several, which pair.
    let one = r.pairs.len() == 1;
    let regressed: Vec<String> = r
        .pairs
        .iter()
        .flat_map(|p| {
            let verdict = p.verdict.regressed.then_some("verdict");
            let metrics = p
                .metrics
                .iter()
                .filter(|m| m.outcome == Outcome::Regressed)
                .map(|m| m.metric.as_str());
            verdict.into_iter().chain(metrics).map(move |m| {
                if one {
                    m.to_string()
                } else {
                    format!("{}: {m}", p.name)
                }
            })
        })
        .collect();
    if r.pairs
        .iter()
        .flat_map(|p| &p.metrics)
        .any(|m| m.few_samples)
    {
        let _ = writeln!(
            out,
            "* fewer than {} samples on a side: counts only past a 4x change (and 1 ms)",
            super::metrics::MIN_SAMPLES
        );
    }
    let pairs = r.pairs.len();
    let s = if pairs == 1 { "" } else { "s" };
    if regressed.is_empty() {
        let _ = writeln!(out, "no regressions in {pairs} pair{s}");
    } else {
        let _ = writeln!(
            out,
            "{} regression{} in {pairs} pair{s}: {}",
            regressed.len(),
            if regressed.len() == 1 { "" } else { "s" },
            regressed.join("; ")
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::metrics::{Spec, judge};
    use super::super::{CompareReport, PairReport, VerdictChange};
    use super::*;

    fn report(a: f64, b: f64) -> CompareReport {
        let spec = Spec {
            direction: Direction::Lower,
            threshold: 0.25,
            floor: 0.0,
        };
        let rows = vec![judge("wake_p99_ns", Some(a), Some(b), spec)];
        let regressions = rows
            .iter()
            .filter(|r| r.outcome == Outcome::Regressed)
            .count();
        CompareReport {
            a: "A".into(),
            b: "B".into(),
            pairs: vec![PairReport {
                name: "spin-rr-1cpu".into(),
                a: "A/spin-rr-1cpu/result.json".into(),
                b: "B/spin-rr-1cpu/result.json".into(),
                operation: "spin".into(),
                config_changes: [("policy".to_string(), ["rr".into(), "fifo".into()])].into(),
                verdict: VerdictChange {
                    a: "pass".into(),
                    b: "pass".into(),
                    regressed: false,
                },
                metrics: rows,
                omitted: [0, 0],
                regressions,
            }],
            only_in_a: vec!["ipc-rr-1cpu".into()],
            only_in_b: vec![],
            regressions,
            status: "ok",
        }
    }

    #[test]
    fn the_table_shows_values_change_limit_and_outcome() {
        let t = human(&report(100_000.0, 400_000.0));
        let line = t
            .lines()
            .find(|l| l.trim_start().starts_with("wake_p99_ns"))
            .unwrap();
        for part in ["100.0us", "400.0us", "+300.0%", "+25%", "REGRESSED"] {
            assert!(line.contains(part), "{part} missing: {line}");
        }
        assert!(t.contains("config: policy rr -> fifo"), "{t}");
        assert!(t.contains("only in A (not compared): ipc-rr-1cpu"), "{t}");
        assert!(t.ends_with("1 regression in 1 pair: wake_p99_ns\n"), "{t}");
        let ok = human(&report(100_000.0, 110_000.0));
        assert!(ok.ends_with("no regressions in 1 pair\n"), "{ok}");
        assert!(ok.lines().all(|l| l == l.trim_end()), "no trailing blanks");
    }

    #[test]
    fn values_are_shown_in_their_units() {
        assert_eq!(value("wake_p99_ns", 45_100.0), "45.1us");
        assert_eq!(value("max_wait_ns", 2_500_000.0), "2.50ms");
        assert_eq!(value("result.rtt_p50_ns", 900.0), "900ns");
        assert_eq!(value("boot_us", 16_300.0), "16.30ms");
        assert_eq!(value("switches", 120.0), "120");
        assert_eq!(value("fairness_error", 0.0213), "0.021");
        assert_eq!(value("utilisation", 1.0), "1.000");
        assert_eq!(value("throughput", 2_345_678.9), "2.346M");
        assert_eq!(value("throughput", 518_502.2), "518.5k");
        assert_eq!(value("x", 123.45), "123.5");
        assert_eq!(value("x", 2.5), "2.500");
    }
}
